"""SMTP faults from a real SMTP server: temporary 4xx replies and connections dropped after
DATA. Whatever the retries, each recipient gets exactly one message."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

import pytest
from sqlmodel import col, select

from sunset.devstack import ServiceHandle, start_smtp
from sunset.errors import TransientError
from sunset.example_model import EXAMPLE_MODEL_ID, EXAMPLE_REPLACEMENT_ID
from sunset.ledger import CatalogModel, Delivery, DeprecationRun, InterviewTurn, StepAttempt
from sunset.notify.email import SmtpMailer, SmtpRelay
from sunset.notify.notices import notify_recipients
from sunset.notify.recipients import load_recipients
from sunset.runs import INTERVIEW_STEP, NOTIFY_STEP
from tests.conftest import Site
from tests.reliability.conftest import SIX_USERS, Runner, write_recipients
from tests.reliability.tally import TALLY
from tests.reliability.world import (
    PROTOCOL_TURNS,
    World,
    answered_once,
    standin,
    standin_faults,
    standin_requests,
)

SQLITE_ONLY = pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
STEP_ATTEMPTS = 4  # what @step allows: the first attempt and three retries


def smtp_faults(server: ServiceHandle) -> dict[str, int]:
    """What the server really did, from its own log."""
    log = server.log_path.read_text()
    return {
        "smtp 451": log.count("refused a message on purpose"),
        "smtp dropped after DATA": log.count("dropped a connection on purpose"),
    }


@SQLITE_ONLY
def test_refusals_and_dropped_connections_still_reach_each_recipient_exactly_once(
    site: Site, tmp_path: Path
) -> None:
    maildir = tmp_path / "mailbox"
    server = start_smtp(maildir, fail_first=3, drop_first=3)
    domain = f"{site.marker}.example"
    recipients = load_recipients(write_recipients(tmp_path / "users.csv", domain, SIX_USERS))
    with site.ledger.session() as db:
        model = db.get(CatalogModel, EXAMPLE_MODEL_ID)
        replacement = db.get(CatalogModel, EXAMPLE_REPLACEMENT_ID)
        run = DeprecationRun(model_id=EXAMPLE_MODEL_ID)
        db.add(run)
    assert model is not None
    mailer = SmtpMailer(SmtpRelay("127.0.0.1", server.port, timeout_s=10))
    failed_attempts = 0
    try:
        for _ in range(STEP_ATTEMPTS):  # what the step's retries do
            try:
                summary = notify_recipients(
                    site.ledger,
                    mailer,
                    run_id=run.id,
                    model=model,
                    replacement=replacement,
                    recipients=recipients,
                    announced_on=date(2026, 1, 1),
                    retirement_on=date(2026, 6, 1),
                    mail_from="Sunset <sunset@localhost>",
                    support_contact="support@localhost",
                )
                break
            except TransientError:
                failed_attempts += 1
        else:
            pytest.fail("notices still failing after every retry")
    finally:
        server.stop()
    faults = smtp_faults(server)
    for kind, count in faults.items():
        TALLY.fault(kind, count)

    assert faults == {"smtp 451": 3, "smtp dropped after DATA": 3}
    assert failed_attempts >= 1 and summary.sent + summary.skipped == len(SIX_USERS)
    received = World(site.ledger, site.store, maildir, domain).mails_by_recipient()
    lost = [r.email for r in recipients if received[r.email] == 0]
    TALLY.lost(lost)
    assert lost == []
    assert received == {r.email: 1 for r in recipients}
    with site.ledger.session() as db:
        deliveries = db.exec(select(Delivery)).all()
    assert {d.recipient: d.state for d in deliveries} == {r.email: "sent" for r in recipients}
    # Every refused or dropped message was tried again, and only those.
    assert sum(d.attempts for d in deliveries) == len(SIX_USERS) + 6


@SQLITE_ONLY
def test_a_run_through_flaky_mail_and_an_overloaded_api_tells_and_asks_each_only_once(
    site: Site, runner: Runner, tmp_path: Path
) -> None:
    maildir = tmp_path / "mailbox"
    server = start_smtp(maildir, fail_first=1, drop_first=1)
    base = site.stack.endpoints.messages_base_url
    # Question 3 meets one overload more than the SDK retries: the step stops and resumes.
    overloaded = {"status": 529, "retry_after": 0.01}
    standin(base, "POST", "/_standin/faults", [{"delay": 0}] * 2 + [overloaded] * 3)
    since = time.time()
    try:
        child = runner.run(
            "flaky-mail-and-api",
            "deprecate",
            EXAMPLE_MODEL_ID,
            "--weights",
            str(site.weights),
            "--recipients",
            str(site.recipients),
            SUNSET_SMTP_PORT=str(server.port),
        )
    finally:
        server.stop()
    log = standin_requests(base, since, EXAMPLE_MODEL_ID)
    for kind, count in smtp_faults(server).items():
        TALLY.fault(kind, count)
    TALLY.faults.update(standin_faults(log))

    assert child.returncode() == 0, child.output()[-3000:]
    domain = f"{site.marker}.example"
    received = World(site.ledger, site.store, maildir, domain).mails_by_recipient()
    expected = [line.split(",")[0] for line in site.recipients.read_text().splitlines()[1:]]
    TALLY.lost([email for email in expected if not received[email]])
    assert received == {email: 1 for email in expected}
    assert set(answered_once(log).values()) == {1}
    with site.ledger.session() as db:
        attempts = db.exec(select(StepAttempt).order_by(col(StepAttempt.id))).all()
        turns = db.exec(select(InterviewTurn)).all()
    per_step = {
        step: [a.state for a in attempts if a.step == step]
        for step in (NOTIFY_STEP, INTERVIEW_STEP)
    }
    # The refused message and the dropped one both fail the first attempt; the retry sends
    # just those two.
    assert per_step == {
        NOTIFY_STEP: ["failed", "completed"],
        INTERVIEW_STEP: ["failed", "completed"],
    }
    first_notify = next(a for a in attempts if a.step == NOTIFY_STEP)
    assert "2 of 3 notices could not be delivered yet" in (first_notify.error or "")
    assert sorted(t.seq for t in turns) == list(range(1, len(PROTOCOL_TURNS) + 1))
