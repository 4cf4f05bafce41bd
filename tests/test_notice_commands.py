"""`sunset reschedule`, `sunset cancel` and `sunset remind` on the real local services:
what each tells the users of an announced deprecation, once each, and what it refuses."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select
from typer.testing import CliRunner, Result

from flows.notices import send_reminders
from sunset.cli import app
from sunset.ledger import (
    CatalogModel,
    DeprecationRun,
    DeprecationStage,
    RetirementDateChange,
    ServingStatus,
    StatusTransition,
)
from sunset_dev.example_model import EXAMPLE_MODEL_ID
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
    users,
)

pytestmark = [
    pytest.mark.usefixtures("prefect_server"),
    pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True),
]

SECRET = "notice-commands-secret"


@pytest.fixture
def hooks(site: Site, monkeypatch: pytest.MonkeyPatch) -> Iterator[WebhookReceiver]:
    monkeypatch.setenv("SUNSET_WEBHOOK_SECRET", SECRET)
    with webhook_receiver(SECRET.encode()) as receiver:
        hook_second_user(site, receiver)
        yield receiver


def sunset(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "240"})


def told(site: Site, subject: str) -> Counter[str]:
    """How often each user got the notice of ``subject``."""
    return Counter(user for user, got in received(site).elements() if got == subject)


def test_a_new_date_is_told_once_to_everyone_told_before_with_both_dates_and_the_reason(
    site: Site, hooks: WebhookReceiver
) -> None:
    refused = sunset("reschedule", EXAMPLE_MODEL_ID, "--retirement-date", "2099-01-01")
    assert refused.exit_code == 2  # no --reason: a usage mistake
    nothing = sunset(
        "reschedule", EXAMPLE_MODEL_ID, "--retirement-date", "2099-01-01", "--reason", "r"
    )
    assert nothing.exit_code == 1
    assert "sunset-example-1 has no deprecation to reschedule" in nothing.output
    announced = announce(site)
    later, sooner = announced + timedelta(days=30), TODAY + timedelta(days=10)
    for date_given, refusal in [
        (sooner, "gives users 10 days of notice from the first announcement on"),
        (TODAY - timedelta(days=1), "is before today"),
        (announced, "is already on"),
    ]:
        result = sunset(
            "reschedule", EXAMPLE_MODEL_ID, "--retirement-date", str(date_given), "--reason", "r"
        )
        assert result.exit_code == 1 and refusal in result.output, result.output

    moved = sunset(
        "reschedule",
        EXAMPLE_MODEL_ID,
        "--retirement-date",
        str(later),
        "--reason",
        "customers asked for more time",
    )
    again = sunset(  # its notices interrupted, say: asked again, nobody is told twice
        "reschedule",
        EXAMPLE_MODEL_ID,
        "--retirement-date",
        str(later),
        "--reason",
        "customers asked for more time",
    )

    assert moved.exit_code == 0, moved.output
    assert "email: 3 sent" in moved.output and "webhook: 1 sent" in moved.output
    assert again.exit_code == 0 and "email: 0 sent, 3 earlier" in again.output
    subject = f"Sunset Example 1: the retirement moves from {announced} to {later}"
    assert told(site, subject) == Counter(users(site))
    text = mail_text(site, "ada@", subject)
    assert f"New retirement date:      {later}" in text
    assert f"Retirement date before:   {announced}" in text
    assert "Why: customers asked for more time" in text
    payload = hooks.accepted()[-1].payload
    assert (payload["type"], payload["previous_retirement_on"], payload["retirement_on"]) == (
        "model.date-changed",
        str(announced),
        str(later),
    )
    assert len(hooks.accepted()) == 2  # the announcement, the date change
    assert deprecation(site).retirement_on == later
    assert catalog_dates(site) == (TODAY, later)
    with site.ledger.session() as db:
        [change] = db.exec(select(RetirementDateChange)).all()
    assert (change.previous_on, change.retirement_on) == (announced, later)

    # Less notice than the minimum, with the reason why recorded and told.
    shortened = sunset(
        "reschedule",
        EXAMPLE_MODEL_ID,
        "--retirement-date",
        str(sooner),
        "--reason",
        "a security flaw",
        "--notice-override",
        "it cannot wait",
    )
    assert shortened.exit_code == 0, shortened.output
    text = mail_text(
        site, "ada@", f"Sunset Example 1: the retirement moves from {later} to {sooner}"
    )
    assert (
        "Why: a security flaw (notice shortened to 10 of the required 60 days: it cannot wait)"
        in text
    )


def test_a_cancelled_deprecation_puts_the_model_back_and_tells_everyone_once(
    site: Site, hooks: WebhookReceiver
) -> None:
    retirement = announce(site)

    cancelled = sunset("cancel", EXAMPLE_MODEL_ID, "--reason", "the successor is not ready")

    assert cancelled.exit_code == 0, cancelled.output
    assert "email: 3 sent" in cancelled.output
    subject = "Sunset Example 1 will not be retired: its deprecation is cancelled"
    assert told(site, subject) == Counter(users(site))
    text = mail_text(site, "grace@", subject)
    assert f"will not\nbe retired on {retirement}, as we announced on {TODAY}" in text
    assert "Why: the successor is not ready" in text
    assert [h.payload["type"] for h in hooks.accepted()] == [
        "model.announcement",
        "model.cancelled",
    ]
    record = deprecation(site)
    assert (record.stage, record.reason) == (
        DeprecationStage.CANCELLED,
        "the successor is not ready",
    )
    assert catalog_dates(site) == (None, None)
    routing = json.loads((site.data_dir / "routing.json").read_text())
    assert routing["models"][EXAMPLE_MODEL_ID]["status"] == "active"
    with site.ledger.session() as db:
        model = db.get(CatalogModel, EXAMPLE_MODEL_ID)
        back = db.exec(select(StatusTransition).where(StatusTransition.to_status == "active")).one()
        run = db.get(DeprecationRun, back.run_id)
    assert model is not None and model.serving_status == ServingStatus.ACTIVE
    assert run is not None and (run.kind, run.state, run.deprecation_id) == (
        "cancellation",
        "completed",
        record.id,
    )
    assert "the successor is not ready" in back.reason

    again = sunset("cancel", EXAMPLE_MODEL_ID, "--reason", "once more")
    assert again.exit_code == 1
    assert "sunset-example-1 has no deprecation in progress; there is nothing to cancel." in (
        again.output
    )
    with site.ledger.session() as db:
        model = db.get(CatalogModel, EXAMPLE_MODEL_ID)
        assert model is not None
        model.serving_status = ServingStatus.RETIRED
        db.add(model)
    retired = sunset("cancel", EXAMPLE_MODEL_ID, "--reason", "too late")
    assert retired.exit_code == 1 and "bring the model back with `sunset reinstate" in (
        retired.output
    )


def test_each_reminder_reaches_each_user_once_however_often_the_reminders_run(
    site: Site, hooks: WebhookReceiver
) -> None:
    retirement = announce(site)
    thirty_days = retirement - timedelta(days=30)

    first = sunset("remind", "--date", str(thirty_days))
    again = sunset("remind", "--date", str(thirty_days))  # the deployment ran twice
    next_day = send_reminders(thirty_days + timedelta(days=1))  # still the 30-day one
    late = send_reminders(retirement - timedelta(days=5))  # the 7-day one, two days late
    on_the_day = send_reminders(retirement)  # the 1-day one, late: "retired today"
    after = send_reminders(retirement + timedelta(days=1))

    assert first.exit_code == 0, first.output
    assert (
        f"sunset-example-1: the 30-day reminder (30 days left until {retirement}): "
        "email: 3 sent; webhook: 1 sent"
    ) in first.output
    assert "email: 0 sent, 3 earlier" in again.output
    assert [r.summary.channels["email"].sent_before for r in next_day] == [3]
    assert [(r.reminder_days, r.days_left) for r in late + on_the_day] == [(7, 5), (1, 0)]
    assert after == []
    reminders = [
        f"Reminder: Sunset Example 1 will be retired in 30 days, on {retirement}",
        f"Reminder: Sunset Example 1 will be retired in 5 days, on {retirement}",
        f"Reminder: Sunset Example 1 is retired today, {retirement}",
    ]
    for subject in reminders:
        assert told(site, subject) == Counter(users(site)), subject
    assert [h.payload["type"] for h in hooks.accepted()] == ["model.announcement"] + [
        "model.reminder"
    ] * 3
    assert [h.payload["days_left"] for h in hooks.accepted()[1:]] == [30, 5, 0]


def test_no_reminder_is_dated_before_the_announcement_reached_its_user(site: Site) -> None:
    # Announced with 20 days of notice: the 30-day reminder would be dated before it.
    retirement = announce(
        site, retirement_date=TODAY + timedelta(days=20), notice_override_reason="test"
    )

    today = send_reminders(TODAY)
    seven_days = send_reminders(retirement - timedelta(days=7))

    assert today == []
    assert [(r.reminder_days, r.summary.channels["email"].sent) for r in seven_days] == [(7, 3)]


def test_the_daily_reminders_republish_the_deprecations_page_where_it_is_set(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    announce(site)
    public = tmp_path / "public"
    send_reminders(TODAY)
    assert not public.exists()  # no SUNSET_SITE_DIR: no page

    monkeypatch.setenv("SUNSET_SITE_DIR", str(public))
    send_reminders(TODAY)

    feed = json.loads((public / "deprecations.json").read_text())
    assert [(e["model_id"], e["status"]) for e in feed["deprecations"]] == [
        (EXAMPLE_MODEL_ID, "deprecated")
    ]
    assert (public / "models" / f"{EXAMPLE_MODEL_ID}.html").is_file()
