"""Deliveries that end known, on the real local services: a notice whose hand-over was
cut short is sent again where the receiver recognises it (a webhook), and otherwise named
in the run's outcome and decided by a person, recorded, before the model is retired."""

from __future__ import annotations

import getpass
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from prefect.settings import PREFECT_API_URL
from sqlmodel import select

from flows import deprecate as deprecate_flow
from sunset.errors import GuardRefused
from sunset.ledger import (
    CatalogModel,
    Delivery,
    DeliveryDecision,
    DeliveryDecisionKind,
    DeliveryState,
    DeprecationRun,
)
from sunset.runs.request import DeprecationRequest
from sunset.services import Services
from sunset_dev.devstack import read_mailbox, start_smtp
from sunset_dev.example_model import EXAMPLE_MODEL_ID
from tests.conftest import Site
from tests.http_receivers import webhook_receiver
from tests.notices import announce, run_flow, users
from tests.notify_worker import notify
from tests.test_notify import SECRET, config, start_run, wait_for_log, write_recipients

ROOT = Path(__file__).resolve().parent.parent
RETIRE_EARLY = "a security flaw in it"


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_a_webhook_cut_short_mid_handover_is_sent_again_with_the_same_delivery_id(
    site: Site, tmp_path: Path
) -> None:
    run_id = start_run(site)
    second = f"user2@{site.marker}.example"
    with webhook_receiver(SECRET.encode()) as receiver:
        csv = write_recipients(site, tmp_path / "users.csv", receiver.url)
        settings = config(site, run_id, csv, site.stack.endpoints.smtp_port)
        notify(settings)
        # What a process killed once user2's request had begun to leave leaves behind.
        with site.ledger.session() as db:
            hook = db.exec(
                select(Delivery).where(Delivery.channel == "webhook", Delivery.recipient == second)
            ).one()
            hook.state = DeliveryState.HANDOVER
            db.add(hook)
        rerun = notify(settings)

    to_second = [h for h in receiver.log if h.path == "/hooks/user2"]
    assert [(h.delivery, h.status) for h in to_second] == [(hook.message_id, 200)] * 2
    assert all(h.verified for h in to_second)
    assert (rerun.channels["webhook"].sent, rerun.channels["webhook"].unconfirmed) == (2, 0)
    assert rerun.channels["email"].sent_before == 5 and len(site.mailbox()) == 5
    with site.ledger.session() as db:
        again = db.get(Delivery, hook.id)
    assert again is not None and (again.state, again.attempts) == (DeliveryState.SENT, 2)


def sunset(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "sunset.cli", *argv]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)


def addressee(mail: Any) -> str:
    return str(mail["To"]).split("<")[1].rstrip(">")


def one_line(text: str) -> str:
    return " ".join(text.split())  # the terminal wraps long sentences


@pytest.mark.usefixtures("prefect_server")
@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_an_email_cut_short_mid_handover_holds_the_retirement_until_a_recorded_resend(
    site: Site, tmp_path: Path
) -> None:
    # The relay stores the second announcement, then holds its answer; the announcing
    # run is killed there, so nobody can know whether that recipient has it.
    held = start_smtp(tmp_path / "held", stall_reply_at=2)
    announce = ["deprecate", EXAMPLE_MODEL_ID, "--weights", str(site.weights)]
    announce += ["--recipients", str(site.recipients)]
    env = os.environ | {"PREFECT_API_URL": str(PREFECT_API_URL.value()), "PYTHONPATH": str(ROOT)}
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "sunset.cli", *announce],
            cwd=ROOT,
            env=env | {"SUNSET_SMTP_PORT": str(held.port)},
        )
        try:
            wait_for_log(held, "stalling message 2", timeout=180)
        finally:
            child.kill()
            child.wait()
    finally:
        held.stop()
    [kept] = [m for m in read_mailbox(tmp_path / "held") if users(site)[1] in str(m["To"])]
    time.sleep(6)  # the killed run's lease (SUNSET_RUN_LEASE_SECONDS=5) lapses

    # The rerun finishes the announcement and says which notice nobody knows arrived.
    request = DeprecationRequest(
        model_id=EXAMPLE_MODEL_ID, weights=str(site.weights), recipients=str(site.recipients)
    )
    final = deprecate_flow.deprecate_model(request, "rm", return_state=True)
    outcome = final.result()
    second = users(site)[1]
    assert outcome.status == "deprecated"
    assert f"{second} (email, announcement)" in outcome.unknown_deliveries
    assert f"sunset deliveries decide {EXAMPLE_MODEL_ID}" in outcome.unknown_deliveries
    assert final.is_completed() and final.message == outcome.unknown_deliveries
    report = one_line(Path(outcome.report).read_text())
    assert f"with no decision yet: {second} (email, announcement)." in report
    assert f"`sunset deliveries decide {EXAMPLE_MODEL_ID} --resend|" in report
    # The first user heard through the held relay, the second maybe, the third now.
    assert [addressee(m) for m in site.mailbox()] == [users(site)[2]]

    # A retirement is refused before anything changes, naming the notice and the command.
    retire = [*announce, "--retire", "--notice-override", RETIRE_EARLY]
    refused = sunset(*retire, env=env)
    assert refused.returncode == 1
    said = one_line(refused.stderr)
    assert f"{EXAMPLE_MODEL_ID} is not retired while 1 notice(s)" in said
    assert f"{second} (email, announcement)" in said and "sunset deliveries decide" in said
    with site.ledger.session() as db:
        assert len(db.exec(select(DeprecationRun)).all()) == 1
        model = db.get(CatalogModel, EXAMPLE_MODEL_ID)
        assert model is not None and model.serving_status == "deprecated"

    # The decision is recorded, and sends the notice once: a second decide finds nothing.
    reason = "the relay's log shows no delivery for its Message-ID"
    decided = sunset(
        "deliveries", "decide", EXAMPLE_MODEL_ID, "--resend", "--reason", reason, env=env
    )
    assert decided.returncode == 0, decided.stderr
    assert f"{second} (email, announcement): sent again" in one_line(decided.stdout)
    again = sunset(
        "deliveries", "decide", EXAMPLE_MODEL_ID, "--resend", "--reason", reason, env=env
    )
    assert again.returncode == 0, again.stderr
    assert "nothing to decide" in one_line(again.stdout)
    [resent] = [m for m in site.mailbox() if second in str(m["To"])]
    assert resent["Message-ID"] == kept["Message-ID"]  # a mail client can tell it is the same
    with site.ledger.session() as db:
        [decision] = db.exec(select(DeliveryDecision)).all()
        delivery = db.get(Delivery, decision.delivery_id)
    assert delivery is not None and (delivery.recipient, delivery.state) == (second, "sent")
    assert (decision.decision, decision.reason, decision.outcome) == (
        DeliveryDecisionKind.RESEND,
        reason,
        DeliveryState.SENT,
    )
    assert decision.decided_by == getpass.getuser() and decision.decided_at is not None

    # Now the retirement goes on, and its report shows the decision.
    retired = run_flow(site, retire=True, notice_override_reason=RETIRE_EARLY)
    assert retired.status == "retired" and retired.unknown_deliveries is None
    report = Path(retired.report).read_text()
    assert f"| {second} | announcement | email | resend | {reason} | sent |" in report
    assert "with no decision yet" not in report


@pytest.mark.usefixtures("prefect_server")
@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_the_flip_to_retired_is_refused_while_a_notice_is_of_unknown_fate(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    announce(site)
    first = users(site)[0]
    sealed = deprecate_flow.assemble_report

    def report_while_a_handover_is_cut_short(services: Services, run_id: str, v: Any) -> Any:
        # Past preflight's check: a hand-over to the first user is cut short meanwhile.
        report = sealed(services, run_id, v)
        with site.ledger.session() as db:
            delivery = db.exec(select(Delivery).where(Delivery.recipient == first)).one()
            delivery.state = DeliveryState.UNCONFIRMED
            db.add(delivery)
        return report

    monkeypatch.setattr(deprecate_flow, "assemble_report", report_while_a_handover_is_cut_short)
    with pytest.raises(GuardRefused, match=f"not retired while 1 notice.*{first} \\(email"):
        run_flow(site, retire=True, notice_override_reason=RETIRE_EARLY)

    with site.ledger.session() as db:
        model = db.get(CatalogModel, EXAMPLE_MODEL_ID)
        retired = db.exec(select(Delivery).where(Delivery.kind == "retired")).all()
    assert model is not None and model.serving_status == "deprecated" and retired == []
