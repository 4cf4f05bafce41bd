"""Notices over real SMTP (aiosmtpd) and a real webhook receiver: each told exactly once."""

from __future__ import annotations

import json
import smtplib
import subprocess
import sys
import time
from dataclasses import replace
from datetime import date, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlmodel import select

from sunset.config import Settings
from sunset.errors import InputError, TransientError
from sunset.ledger import CatalogModel, Delivery, DeliverySummary, DeprecationRun, ModelUser
from sunset.notify.email import SmtpMailer, SmtpRelay, compose_notice
from sunset.notify.message import Notice, NoticeKind, NoticeTemplates, sample_notice
from sunset.notify.recipients import Recipient, load_recipients
from sunset.notify.users import import_users, load_users
from sunset.notify.webhook import sign, verify_signature
from sunset.runs.deprecation import attach_run, deprecation_of_run
from sunset.runs.reminders import due_reminder
from sunset_dev.devstack import ServiceHandle, read_mailbox, start_smtp
from sunset_dev.example_model import EXAMPLE_MODEL_ID
from tests.conftest import Site
from tests.http_receivers import copied_verify_function, webhook_receiver
from tests.notify_worker import notify

SECRET = "webhook-secret-for-tests"
ROOT = Path(__file__).resolve().parent.parent
TODAY = date.today()


def start_run(site: Site) -> str:
    """A deprecation run, a step of a deprecation of its own."""
    with site.ledger.session() as db:
        run = DeprecationRun(model_id=EXAMPLE_MODEL_ID, parameters={})
        db.add(run)
    attach_run(site.ledger, run.id, TODAY + timedelta(days=90))
    return run.id


def write_recipients(site: Site, path: Path, hooks: str, count: int = 5) -> Path:
    """``count`` users at the test's own mail domain; the even ones also have a webhook."""
    rows = ["email,name,webhook_url,usage"]
    for n in range(1, count + 1):
        hook = f"{hooks}/hooks/user{n}" if n % 2 == 0 else ""
        rows.append(f"user{n}@{site.marker}.example,User {n},{hook},{n * 10}/day")
    path.write_text("\n".join(rows) + "\n")
    return path


def config(site: Site, run_id: str, recipients: Path, smtp_port: int) -> dict[str, Any]:
    return {
        "ledger_url": site.env["SUNSET_DATABASE_URL"],
        "model_id": EXAMPLE_MODEL_ID,
        "run_id": run_id,
        "deprecation_id": deprecation_of_run(site.ledger, run_id).id,
        "smtp_port": smtp_port,
        "webhook_secret": SECRET,
        "recipients": str(recipients),
        "announced_on": TODAY.isoformat(),
        "retirement_on": (TODAY + timedelta(days=90)).isoformat(),
    }


def recipients_of(mails: list[Any]) -> list[str]:
    return sorted(str(m["To"]).split("<")[1].rstrip(">") for m in mails)


def summaries(site: Site, run_id: str) -> dict[str, dict[str, int]]:
    with site.ledger.session() as db:
        rows = db.exec(select(DeliverySummary).where(DeliverySummary.run_id == run_id)).all()
    fields = ("recipients", "sent", "sent_before", "failed", "unconfirmed", "skipped")
    return {row.channel: {f: getattr(row, f) for f in fields} for row in rows}


@pytest.mark.unit
def test_a_signature_verifies_only_for_the_same_secret_body_and_a_recent_timestamp() -> None:
    body, now = b'{"model":"m"}', time.time()
    stamp = str(int(now))
    signature = sign(SECRET.encode(), stamp, body)
    copied = copied_verify_function()  # the receiver's copy, run with the stdlib alone

    for verify in (verify_signature, copied):
        assert verify(SECRET.encode(), stamp, body, signature)
        assert verify(SECRET.encode(), stamp, body, f"v1=00, {signature}")  # secret rotation
        assert not verify(SECRET.encode(), stamp, body + b" ", signature)
        assert not verify(b"another secret", stamp, body, signature)
        assert not verify(SECRET.encode(), str(int(now) + 1), body, signature)
        assert not verify(SECRET.encode(), stamp, body, signature, now=now + 301)
        assert not verify(SECRET.encode(), "yesterday", body, signature)


def test_every_recipient_gets_one_email_and_one_signed_webhook(site: Site, tmp_path: Path) -> None:
    run_id = start_run(site)
    with webhook_receiver(SECRET.encode()) as receiver:
        csv = write_recipients(site, tmp_path / "users.csv", receiver.url)
        settings = config(site, run_id, csv, site.stack.endpoints.smtp_port)

        first = notify(settings)
        again = notify(settings)  # a retried or resumed step

    expected = [f"user{n}@{site.marker}.example" for n in range(1, 6)]
    mails = site.mailbox()
    assert recipients_of(mails) == expected
    hooks = receiver.log
    assert sorted(h.path for h in hooks) == ["/hooks/user2", "/hooks/user4"]
    assert all(h.verified and h.status == 200 for h in hooks)
    assert first.channels["email"].sent == 5 and first.channels["webhook"].sent == 2
    assert again.channels["email"].sent_before == 5 and again.channels["webhook"].sent_before == 2
    assert summaries(site, run_id) == {
        "email": {
            "recipients": 5,
            "sent": 5,
            "sent_before": 5,
            "failed": 0,
            "unconfirmed": 0,
            "skipped": 0,
        },
        "webhook": {
            "recipients": 2,
            "sent": 2,
            "sent_before": 2,
            "failed": 0,
            "unconfirmed": 0,
            "skipped": 3,
        },
    }
    # The message: dates, successor, migration guide and help, in both parts and the hook.
    retirement = (TODAY + timedelta(days=90)).isoformat()
    mail = mails[0]
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    for part in (text, html):
        assert retirement in part and TODAY.isoformat() in part
        assert "sunset-example-2" in part and "help@example.org" in part
    assert 'Replace the model id "sunset-example-1" with "sunset-example-2"' in text
    assert "<code>sunset-example-2</code>" in html
    payload = hooks[0].payload
    assert payload["retirement_on"] == retirement
    assert payload["replacement"] == {"id": "sunset-example-2", "name": "Sunset Example 2"}
    assert "sunset-example-2" in payload["migration_guide"]
    assert payload["delivery"] == hooks[0].delivery


def test_failures_for_some_recipients_are_retried_and_reported_without_holding_up_the_others(
    site: Site, tmp_path: Path
) -> None:
    run_id = start_run(site)
    # user2's receiver is down once (503, worth retrying); user4's is gone for good (410).
    plan = {"/hooks/user2": [503], "/hooks/user4": [410, 410]}
    with webhook_receiver(SECRET.encode(), plan) as receiver:
        csv = write_recipients(site, tmp_path / "users.csv", receiver.url)
        settings = config(site, run_id, csv, site.stack.endpoints.smtp_port)

        with pytest.raises(TransientError, match=r"1 notice\(s\) could not be delivered yet"):
            notify(settings)
        after_first = summaries(site, run_id)["webhook"]
        second = notify(settings)

    assert len(site.mailbox()) == 5  # every email went out in the first attempt already
    assert after_first == {
        "recipients": 2,
        "sent": 0,
        "sent_before": 0,
        "failed": 2,
        "unconfirmed": 0,
        "skipped": 3,
    }
    assert [(h.path, h.status) for h in receiver.log] == [
        ("/hooks/user2", 503),
        ("/hooks/user4", 410),
        ("/hooks/user2", 200),  # retried; user4 is not: a 410 is final
    ]
    assert second.channels["webhook"].sent == 1 and second.channels["webhook"].failed == 1
    assert second.problems == [
        f"user4@{site.marker}.example (webhook): refused for good: {receiver.url} answered 410"
    ]
    with site.ledger.session() as db:
        states = {
            d.recipient: d.state
            for d in db.exec(select(Delivery).where(Delivery.channel == "webhook"))
        }
    assert states == {
        f"user2@{site.marker}.example": "sent",
        f"user4@{site.marker}.example": "rejected",
    }


@pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize(
    ("stall", "state_at_kill", "email_outcome"),
    [
        ("stall_rcpt_at", "sending", {"sent": 5, "unconfirmed": 0}),
        ("stall_reply_at", "handover", {"sent": 4, "unconfirmed": 1}),
    ],
)
def test_a_notifier_killed_mid_send_and_rerun_sends_every_notice_exactly_once(
    site: Site, tmp_path: Path, stall: str, state_at_kill: str, email_outcome: dict[str, int]
) -> None:
    # The relay holds the third message: before it was handed over (RCPT), or after it
    # was stored but before the client heard so (DATA). The notifier is SIGKILLed there.
    smtp = start_smtp(tmp_path / "mailbox", **{stall: 3})
    run_id = start_run(site)
    try:
        with webhook_receiver(SECRET.encode()) as receiver:
            csv = write_recipients(site, tmp_path / "users.csv", receiver.url)
            settings = config(site, run_id, csv, smtp.port)
            (tmp_path / "notify.json").write_text(json.dumps(settings))
            worker = subprocess.Popen(
                [sys.executable, "-m", "tests.notify_worker", str(tmp_path / "notify.json")],
                cwd=ROOT,
            )
            try:
                wait_for_log(smtp, "stalling message 3")
            finally:
                worker.kill()  # SIGKILL: no cleanup, no last ledger write
                worker.wait()
            assert worker.returncode == -9
            with site.ledger.session() as db:
                third = db.exec(
                    select(Delivery).where(Delivery.recipient == f"user3@{site.marker}.example")
                ).one()
            assert third.state == state_at_kill

            rerun = notify(settings)
    finally:
        smtp.stop()

    expected = [f"user{n}@{site.marker}.example" for n in range(1, 6)]
    assert recipients_of(read_mailbox(tmp_path / "mailbox")) == expected
    assert sorted(h.path for h in receiver.log) == ["/hooks/user2", "/hooks/user4"]
    assert all(h.verified for h in receiver.log)
    email = rerun.channels["email"]
    assert {"sent": email.sent, "unconfirmed": email.unconfirmed} == email_outcome
    assert summaries(site, run_id)["email"]["unconfirmed"] == email_outcome["unconfirmed"]


def wait_for_log(service: ServiceHandle, text: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in service.log_path.read_text(errors="replace"):
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never appeared in {service.log_path}")


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_the_mailer_logs_in_to_a_relay_that_requires_it(site: Site, tmp_path: Path) -> None:
    guarded = start_smtp(tmp_path / "mailbox", require_auth=("sunset", "right"))
    try:
        relay = SmtpRelay("127.0.0.1", guarded.port, username="sunset", password=SecretStr("right"))
        SmtpMailer(relay).send(example_message(site))
        wrong = SmtpRelay("127.0.0.1", guarded.port, username="sunset", password=SecretStr("wrong"))
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            SmtpMailer(wrong).send(example_message(site))
    finally:
        guarded.stop()

    assert refused.value.smtp_code == 535
    assert len(read_mailbox(tmp_path / "mailbox")) == 1


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_a_deployment_brings_its_own_migration_guide_and_a_broken_one_is_refused(
    site: Site, tmp_path: Path
) -> None:
    guides = tmp_path / "templates"
    guides.mkdir()
    (guides / "migration_guide.txt.j2").write_text(
        "Point your client at https://llm.internal/{{ replacement.id }} before {{ retirement }}.\n"
    )
    (guides / "migration_guide.html.j2").write_text(
        "<p>Point your client at <b>{{ replacement.id }}</b>.</p>\n"
    )

    message = example_message(site, NoticeTemplates(guides))

    text = message.get_body(("plain",)).get_content()
    assert "https://llm.internal/sunset-example-2 before" in text
    assert "Dear Ada" in text  # the rest comes from the bundled notice
    assert "<b>sunset-example-2</b>" in message.get_body(("html",)).get_content()
    (guides / "migration_guide.txt.j2").write_text("Step one.\nStep {{ two }.\n")
    with pytest.raises(InputError, match="migration_guide.txt.j2 line 2 is not valid Jinja2"):
        NoticeTemplates(guides).check([notice_for(site)], Recipient("a@example.org", "A"))
    (guides / "migration_guide.txt.j2").write_text("{{ unknown_name }}\n")
    with pytest.raises(InputError, match="'unknown_name' is undefined"):
        NoticeTemplates(guides).check([notice_for(site)], Recipient("a@example.org", "A"))


def test_users_are_imported_into_the_ledger_and_an_invalid_file_imports_nobody(
    site: Site, tmp_path: Path
) -> None:
    good = tmp_path / "users.csv"
    good.write_text(
        "email,name,webhook_url\nada@example.org,Ada,https://hooks.example.org/ada\n"
        "alan@example.org,Alan,\n"
    )
    done = import_users(site.ledger, EXAMPLE_MODEL_ID, load_recipients(good))
    good.write_text("email,name\nada@example.org,Ada L.\ngrace@example.org,Grace\n")
    again = import_users(site.ledger, EXAMPLE_MODEL_ID, load_recipients(good), replace=True)
    bad = tmp_path / "bad.csv"
    bad.write_text("email,name\nzoe@example.org,Zoe\nnot-an-address,Bob\nyan@example.org,\n")

    with pytest.raises(InputError, match="line 3: 'not-an-address'.*; line 4: the name is empty"):
        import_users(site.ledger, EXAMPLE_MODEL_ID, load_recipients(bad))

    assert (done.added, done.updated, done.removed) == (2, 0, 0)
    assert (again.added, again.updated, again.removed) == (1, 1, 1)
    users = load_users(site.ledger, EXAMPLE_MODEL_ID)
    assert [(u.email, u.name, u.webhook_url) for u in users] == [
        ("ada@example.org", "Ada L.", None),
        ("grace@example.org", "Grace", None),
    ]
    with site.ledger.session() as db:
        assert len(db.exec(select(ModelUser)).all()) == 2  # no Zoe: the bad file added nobody


def notice_for(site: Site) -> Notice:
    with site.ledger.session() as db:
        model = db.get(CatalogModel, EXAMPLE_MODEL_ID)
        assert model is not None and model.replacement_id is not None
        replacement = db.get(CatalogModel, model.replacement_id)
    return Notice(
        NoticeKind.ANNOUNCEMENT,
        "deprecation-1",
        model,
        replacement,
        TODAY,
        TODAY + timedelta(days=60),
        "help@example.org",
    )


def example_message(site: Site, templates: NoticeTemplates | None = None) -> EmailMessage:
    return compose_notice(
        templates or NoticeTemplates(),
        notice_for(site),
        Recipient(f"ada@{site.marker}.example", "Ada"),
        mail_from="Sunset <sunset@example.org>",
        message_id="<notice-1@sunset.test>",
    )


@pytest.mark.unit
def test_each_kind_of_notice_has_its_own_key_subject_templates_and_webhook_type() -> None:
    model = CatalogModel(id="m1", display_name="Model One")
    replacement = CatalogModel(id="m2", display_name="Model Two")
    templates, recipient = NoticeTemplates(), Recipient("ada@example.org", "Ada")
    notices = [
        sample_notice(kind, model, replacement, "help@example.org", TODAY) for kind in NoticeKind
    ]

    templates.check(notices, recipient)
    assert len({n.key for n in notices}) == len(NoticeKind)
    assert len({n.subject for n in notices}) == len(NoticeKind)
    for notice in notices:
        payload = templates.webhook_payload(notice, recipient, "d1")
        assert payload["type"] == f"model.{notice.kind}"
        assert payload["deprecation"] == "sample"
        assert "Dear Ada" in templates.text(notice, recipient)
        assert "Model One" in templates.html(notice, recipient)
    # A reminder is one per retirement date and number of days left.
    reminder = notices[list(NoticeKind).index(NoticeKind.REMINDER)]
    assert reminder.key == f"reminder:sample:{reminder.retirement_on}:7"
    assert replace(reminder, reminder_days=1).key != reminder.key
    assert replace(reminder, days_left=5).key == reminder.key  # the same reminder, sent late
    assert replace(reminder, retirement_on=TODAY).key != reminder.key


@pytest.mark.unit
def test_a_template_of_the_former_single_notice_is_refused_with_its_new_name(
    tmp_path: Path,
) -> None:
    (tmp_path / "notice.txt.j2").write_text("Dear {{ recipient.name }}\n")

    with pytest.raises(InputError, match=r"notice.txt.j2 is no longer read.*announcement.txt.j2"):
        NoticeTemplates(tmp_path)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("days_left", "due"),
    [
        (60, None),
        (31, None),
        (30, 30),
        (29, 30),
        (8, 30),
        (7, 7),
        (5, 7),
        (1, 1),
        (0, 1),
        (-1, None),
    ],
)
def test_the_reminder_due_is_the_latest_whose_day_came_until_the_retirement_date_passes(
    days_left: int, due: int | None
) -> None:
    assert due_reminder(TODAY + timedelta(days=days_left), TODAY, [30, 7, 1]) == due


@pytest.mark.unit
@pytest.mark.parametrize(
    ("setting", "days"), [("30,7,1", [30, 7, 1]), ("[1, 14, 14]", [14, 1]), (" ", [])]
)
def test_reminder_days_are_set_as_a_list_or_in_json(
    monkeypatch: pytest.MonkeyPatch, setting: str, days: list[int]
) -> None:
    monkeypatch.setenv("SUNSET_REMINDER_DAYS", setting)

    assert Settings().reminder_days == days
    assert Settings(**{"reminder_days": days}).as_environment()["SUNSET_REMINDER_DAYS"] == (
        json.dumps(days)
    )
