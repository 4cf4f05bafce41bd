"""SMTP faults: temporary 4xx replies from a real SMTP server, and connections reset by a
relay in front of it before a message could be handed over. Whatever the retries, each
recipient gets exactly one message.

A connection lost after the whole message was sent is another matter: the relay may have
queued it, and no client can tell. Sunset then sends nothing twice and reports the
recipient as unconfirmed; tests/test_notify.py proves that.
"""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

import pytest
from sqlmodel import col, select

from sunset.errors import TransientError
from sunset.ledger import CatalogModel, Delivery, DeprecationRun, InterviewTurn, StepAttempt
from sunset.notify.channels import EmailChannel
from sunset.notify.email import SmtpMailer, SmtpRelay
from sunset.notify.message import Notice, NoticeKind, NoticeTemplates
from sunset.notify.notices import notify_recipients
from sunset.notify.recipients import load_recipients
from sunset.runs.deprecation import attach_run
from sunset.runs.steps import INTERVIEW_STEP, NOTIFY_STEP
from sunset_dev.devstack import ServiceHandle, start_smtp
from sunset_dev.example_model import EXAMPLE_MODEL_ID, EXAMPLE_REPLACEMENT_ID
from tests.conftest import Site
from tests.faults.tcp_relay import TcpRelay
from tests.reliability.conftest import SIX_USERS, Runner, write_recipients
from tests.reliability.tally import TALLY
from tests.reliability.world import (
    TURN_IDS,
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
    return {"smtp 451": log.count("refused a message on purpose")}


@SQLITE_ONLY
def test_refusals_and_dropped_connections_still_reach_each_recipient_exactly_once(
    site: Site, tmp_path: Path
) -> None:
    maildir = tmp_path / "mailbox"
    server = start_smtp(maildir, fail_first=3)
    relay = TcpRelay("127.0.0.1", server.port).start()
    relay.drop_next = 3
    domain = f"{site.marker}.example"
    recipients = load_recipients(write_recipients(tmp_path / "users.csv", domain, SIX_USERS))
    with site.ledger.session() as db:
        model = db.get(CatalogModel, EXAMPLE_MODEL_ID)
        replacement = db.get(CatalogModel, EXAMPLE_REPLACEMENT_ID)
        run = DeprecationRun(model_id=EXAMPLE_MODEL_ID)
        db.add(run)
    assert model is not None
    email = EmailChannel(
        SmtpMailer(SmtpRelay("127.0.0.1", relay.port, timeout_s=10)),
        NoticeTemplates(),
        "Sunset <sunset@localhost>",
    )
    deprecation = attach_run(site.ledger, run.id, date(2026, 6, 1))
    notice = Notice(
        NoticeKind.ANNOUNCEMENT,
        deprecation.id,
        model,
        replacement,
        date(2026, 1, 1),
        date(2026, 6, 1),
        "support@localhost",
    )
    failed_attempts = 0
    try:
        for _ in range(STEP_ATTEMPTS):  # what the step's retries do
            try:
                summary = notify_recipients(
                    site.ledger, [email], run_id=run.id, notice=notice, recipients=recipients
                )
                break
            except TransientError:
                failed_attempts += 1
        else:
            pytest.fail("notices still failing after every retry")
    finally:
        relay.stop()
        server.stop()
    faults = smtp_faults(server) | {"smtp connection reset": relay.dropped}
    for kind, count in faults.items():
        TALLY.fault(kind, count)

    assert faults == {"smtp 451": 3, "smtp connection reset": 3}
    assert failed_attempts >= 1 and summary.channels["email"].sent == len(SIX_USERS)
    received = World(site.ledger, site.store, maildir, domain).mails_by_recipient()
    lost = [r.email for r in recipients if received[r.email] == 0]
    TALLY.lost(lost)
    assert lost == []
    assert received == {r.email: 1 for r in recipients}
    with site.ledger.session() as db:
        deliveries = db.exec(select(Delivery)).all()
    assert {d.recipient: d.state for d in deliveries} == {r.email: "sent" for r in recipients}
    # Every refused message and every reset connection was tried again, and only those.
    assert sum(d.attempts for d in deliveries) == len(SIX_USERS) + 6


@SQLITE_ONLY
def test_a_run_through_flaky_mail_and_an_overloaded_api_tells_and_asks_each_only_once(
    site: Site, runner: Runner, tmp_path: Path
) -> None:
    maildir = tmp_path / "mailbox"
    server = start_smtp(maildir, fail_first=1)
    relay = TcpRelay("127.0.0.1", server.port).start()
    relay.spare_next = 2  # preflight's logins; the connection reset is a notice's
    relay.drop_next = 1
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
            SUNSET_SMTP_PORT=str(relay.port),
        )
    finally:
        relay.stop()
        server.stop()
    log = standin_requests(base, since, EXAMPLE_MODEL_ID)
    for kind, count in (smtp_faults(server) | {"smtp connection reset": relay.dropped}).items():
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
    # The refused message and the reset connection both fail the first attempt; the retry
    # sends just those two.
    assert per_step == {
        NOTIFY_STEP: ["failed", "completed"],
        INTERVIEW_STEP: ["failed", "completed"],
    }
    first_notify = next(a for a in attempts if a.step == NOTIFY_STEP)
    assert "2 notice(s) could not be delivered yet" in (first_notify.error or "")
    assert sorted(t.seq for t in turns) == list(range(1, len(TURN_IDS) + 1))
