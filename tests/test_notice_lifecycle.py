"""A deprecation's notices from announcement to retirement, on the real local services:
each true when it is sent, each reaching each recipient once per channel."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect.settings import PREFECT_API_URL
from sqlmodel import select

from deployments.approvals import submit_decision
from flows import deprecate as deprecate_flow
from sunset.errors import PreservationError
from sunset.ledger import (
    Delivery,
    Deprecation,
    DeprecationStage,
    RetirementDateChange,
    StatusTransition,
)
from sunset.report.assemble import render_report
from sunset.runs.deprecation import package_of_run
from sunset.runs.steps import SNAPSHOT_STEP
from sunset.services import Services
from sunset_dev.devstack import read_mailbox, start_smtp
from sunset_dev.example_model import EXAMPLE_MODEL_ID
from tasks.step import step
from tests.conftest import Site
from tests.http_receivers import WebhookReceiver, webhook_receiver
from tests.notices import (
    TODAY,
    announce,
    catalog_dates,
    deprecation,
    hook_second_user,
    mail_text,
    received,
    run_flow,
    users,
)
from tests.paused_runs import in_background, wait_for_pause
from tests.test_notify import wait_for_log

pytestmark = [
    pytest.mark.usefixtures("prefect_server"),
    pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True),
]

SECRET = "notice-lifecycle-secret"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def hooks(site: Site, monkeypatch: pytest.MonkeyPatch) -> Iterator[WebhookReceiver]:
    monkeypatch.setenv("SUNSET_WEBHOOK_SECRET", SECRET)
    with webhook_receiver(SECRET.encode()) as receiver:
        hook_second_user(site, receiver)
        yield receiver


def test_an_announced_model_retired_early_hears_of_it_once_and_only_after_the_flip(
    site: Site, hooks: WebhookReceiver
) -> None:
    retirement = announce(site)
    text = mail_text(site, "ada@", f"Sunset Example 1 will be retired on {retirement}")
    assert "will be preserved and verified" in text and "will be interviewed" in text
    assert "are preserved" not in text and "was interviewed" not in text
    assert deprecation(site).stage == DeprecationStage.ANNOUNCED
    assert catalog_dates(site) == (TODAY, retirement)

    outcome = run_flow(site, retire=True, notice_override_reason="a security flaw in it")

    assert outcome.status == "retired"
    retired = f"Sunset Example 1 was retired on {TODAY}"
    announced = f"Sunset Example 1 will be retired on {retirement}"
    assert received(site) == Counter(
        {(user, subject): 1 for user in users(site) for subject in (announced, retired)}
    )
    assert [h.payload["type"] for h in hooks.accepted()] == ["model.announcement", "model.retired"]
    assert all(h.verified and h.path == "/hooks/2" for h in hooks.log)
    with site.ledger.session() as db:
        flip = db.exec(
            select(StatusTransition).where(StatusTransition.to_status == "retired")
        ).one()
        sent = db.exec(select(Delivery).where(Delivery.kind == "retired")).all()
        [change] = db.exec(select(RetirementDateChange)).all()
    assert len(sent) == 4 and all(d.updated_at > flip.at for d in sent)
    text = mail_text(site, "ada@", retired)
    record = deprecation(site)
    assert f"earlier than the retirement date we announced, {retirement}" in text
    assert "Why: a security flaw in it" in text
    package = package_of_run(site.ledger, outcome.run_id).id
    assert f"preservation package {package}" in text
    assert f"{outcome.package}data/report/report.md" in text
    assert "made available on request" in text
    assert hooks.accepted()[1].payload["previous_retirement_on"] == retirement.isoformat()
    assert (record.stage, record.announced_on, record.retirement_on) == (
        DeprecationStage.RETIRED,
        TODAY,
        TODAY,
    )
    assert (change.previous_on, change.retirement_on, change.reason, change.changed_by) == (
        retirement,
        TODAY,
        "a security flaw in it",
        "rm",
    )
    assert catalog_dates(site) == (TODAY, TODAY)


def test_a_rejected_retirement_tells_nobody_anything_and_keeps_the_announced_date(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    retirement = announce(site)
    before = received(site)
    monkeypatch.setenv("SUNSET_APPROVAL_POLL_S", "1")

    with in_background(
        run_flow, site=site, retire=True, approvals=1, notice_override_reason="cost"
    ) as running:
        run = wait_for_pause(site.ledger, running)
        assert received(site) == before  # nothing said while the approvers decide
        assert run.flow_run_id is not None
        submit_decision(
            UUID(run.flow_run_id),
            approver="dana",
            identity="login:dana",
            decision="reject",
            reason="not yet",
        )
        outcome = running.result(timeout=120)

    assert outcome.rejected_by == "dana"
    assert received(site) == before
    record = deprecation(site)
    assert (record.stage, record.retirement_on) == (DeprecationStage.ANNOUNCED, retirement)
    assert catalog_dates(site) == (TODAY, retirement)
    with site.ledger.session() as db:
        assert db.exec(select(RetirementDateChange)).first() is None


def test_a_retirement_whose_snapshot_fails_tells_nobody_anything(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    retirement = announce(site)
    before = received(site)

    @step(SNAPSHOT_STEP, retries=0)
    def broken_snapshot(services: Services, run_id: str, validated: Any) -> Any:
        raise PreservationError("the store lost the upload")

    monkeypatch.setattr(deprecate_flow, "snapshot_weights", broken_snapshot)
    with pytest.raises(PreservationError, match="lost the upload"):
        run_flow(site, retire=True, notice_override_reason="cost")

    assert received(site) == before
    record = deprecation(site)
    assert (record.stage, record.retirement_on) == (DeprecationStage.ANNOUNCED, retirement)
    assert catalog_dates(site) == (TODAY, retirement)


def test_a_retirement_killed_while_telling_users_resumes_and_tells_each_of_them_once(
    site: Site, tmp_path: Path
) -> None:
    # No announcement before: the model is retired at once, with the reason recorded.
    smtp = start_smtp(tmp_path / "mailbox", stall_reply_at=2)
    command = [sys.executable, "-m", "sunset.cli", "deprecate", EXAMPLE_MODEL_ID]
    command += ["--weights", str(site.weights), "--recipients", str(site.recipients)]
    command += ["--retire", "--notice-override", "a security flaw in it"]
    env = os.environ | {
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "SUNSET_SMTP_PORT": str(smtp.port),
        "PYTHONPATH": str(ROOT),
    }
    try:
        child = subprocess.Popen(command, cwd=ROOT, env=env)
        try:
            wait_for_log(smtp, "stalling message 2", timeout=180)
        finally:
            child.kill()  # SIGKILL in the middle of the retired notices
            child.wait()
        time.sleep(6)  # the run's lease (SUNSET_RUN_LEASE_SECONDS=5) lapses
        resumed = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    finally:
        smtp.stop()

    assert resumed.returncode == 0, resumed.stderr
    mails = read_mailbox(tmp_path / "mailbox")
    assert sorted(str(m["To"]).split("<")[1].rstrip(">") for m in mails) == sorted(users(site))
    text = mails[0].get_body(("plain",)).get_content()
    assert "retired without an announcement beforehand" in text
    with site.ledger.session() as db:
        assert len(db.exec(select(StatusTransition)).all()) == 1
        states = Counter(d.state for d in db.exec(select(Delivery)))
    assert states == Counter({"sent": 2, "unconfirmed": 1})  # the held one is not resent
    assert deprecation(site).stage == DeprecationStage.RETIRED


def test_the_report_counts_each_users_notice_from_the_announcement_that_reached_them(
    site: Site,
) -> None:
    announce(site)
    # As if the announcement went out 40 days ago.
    weeks_ago = TODAY - timedelta(days=40)
    with site.ledger.session() as db:
        record = db.exec(select(Deprecation)).one()
        record.announced_on = weeks_ago
        db.add(record)
        for delivery in db.exec(select(Delivery)):
            delivery.updated_at -= timedelta(days=40)
            db.add(delivery)
    # The retirement run names one more user, whom no announcement reached.
    late_user = f"linus@{site.marker}.example"
    with site.recipients.open("a") as csv:
        csv.write(f"{late_user},Linus,1/day\n")

    outcome = run_flow(site, retire=True, notice_override_reason="a security flaw in it")

    final = Path(outcome.report).read_text()  # the version sealed after the users were told
    assert render_report(site.ledger, outcome.run_id) == final
    notice = f"Users were given 40 days of notice, from {weeks_ago} to {TODAY}."
    assert notice in final
    section = final.split("## 3. Notices to users")[1].split("## 4.")[0]
    assert "1 recipient(s) received no announcement before the retirement." in section
    ada = f"ada@{site.marker}.example"
    announced = f"announcement {weeks_ago} (email)"
    assert f"| {ada} | {weeks_ago} | 40 | {announced}; retired {TODAY} (email) |" in section
    assert f"| {late_user} | none | none | retired {TODAY} (email) |" in section
    moved = f"- on {TODAY}, from {TODAY + timedelta(days=60)} to {TODAY}: a security flaw in it"
    assert moved in section
    assert f"| {ada} | retired | email | sent | {TODAY} | 1 |  |" in section
