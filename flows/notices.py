"""The notices between runs: a new retirement date, a cancellation, the daily reminders.

reschedule_retirement: record the date change -> tell everyone told before.
cancel_deprecation: begin the cancellation run -> (flip back to active) -> tell everyone.
send_reminders: each announced deprecation's reminder due today (deployment
``send-reminders/daily``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from prefect import flow
from prefect.runtime import flow_run

from flows.limits import one_deprecation_per_model
from flows.serving import close_ledger_run, flip_serving, tag_with_model
from sunset.config import Settings
from sunset.notify.notices import NoticeSummary
from sunset.runs.lifecycle import run_lease
from sunset.runs.reminders import Reminder
from sunset.services import connect
from sunset.serving.lifecycle import ACTIVE
from tasks.notices import (
    begin_cancel,
    notify_cancelled,
    notify_date_changed,
    publish_deprecations_page,
    record_date_change,
    send_due_reminders,
)


@dataclass(frozen=True)
class DateChangeOutcome:
    """What the terminal shows after a date change."""

    model_id: str
    previous_on: date
    retirement_on: date
    reason: str
    notices: NoticeSummary


@dataclass(frozen=True)
class CancellationOutcome:
    """What the terminal shows after a cancellation."""

    run_id: str
    model_id: str
    status: str
    notices: NoticeSummary


@flow(name="reschedule-retirement", flow_run_name="reschedule-{model_id}")
def reschedule_retirement(
    model_id: str,
    retirement_date: date,
    reason: str,
    notice_override_reason: str | None = None,
    requested_by: str | None = None,
) -> DateChangeOutcome:
    """Move the announced retirement date of a model, and tell its users.

    Args:
        model_id: The model whose deprecation was announced.
        retirement_date: The new retirement date.
        reason: Why the date moves; recorded, and told to users.
        notice_override_reason: Why less than the minimum notice (counted from the first
            announcement) is acceptable; needed only then.
        requested_by: Who moved the date; recorded with the change.
    """
    tag_with_model(model_id)
    services = connect(Settings())
    change = record_date_change(
        services, model_id, retirement_date, reason, notice_override_reason, requested_by
    )
    assert change.id is not None
    notices = notify_date_changed(services, change.id)
    return DateChangeOutcome(
        model_id, change.previous_on, change.retirement_on, change.reason, notices
    )


@flow(
    name="cancel-deprecation",
    flow_run_name="cancel-{model_id}",
    on_completion=[close_ledger_run],
    on_failure=[close_ledger_run],
)
def cancel_deprecation(
    model_id: str, reason: str, requested_by: str | None = None
) -> CancellationOutcome:
    """Call off a model's deprecation before it is retired: the model serves as before.

    Args:
        model_id: The model whose deprecation is called off.
        reason: Why; recorded, and told to everyone who was told of the deprecation.
        requested_by: Who cancelled it; recorded with the status transition.
    """
    tag_with_model(model_id)
    services = connect(Settings())
    lease_seconds = services.settings.run_lease_seconds
    with one_deprecation_per_model(model_id, services.ledger, lease_seconds) as slot_lease:
        start = begin_cancel(services, model_id, reason, requested_by, slot_lease)
        with run_lease(services.ledger, start.run_id, lease_seconds):
            if start.flip:
                flip_serving(
                    services,
                    start.run_id,
                    ACTIVE,
                    actor=requested_by or "unnamed requester",
                    reason=f"cancellation run {start.run_id}: {reason}",
                )
            notices = notify_cancelled(services, start.run_id, reason)
    return CancellationOutcome(start.run_id, model_id, str(ACTIVE), notices)


def _reminder_run_name() -> str:
    on = flow_run.parameters.get("on") or date.today()
    return f"remind-{on}"


@flow(name="send-reminders", flow_run_name=_reminder_run_name)
def send_reminders(on: date | None = None) -> list[Reminder]:
    """Send each announced deprecation's reminder due today (SUNSET_REMINDER_DAYS before
    its retirement date); run it daily. Running it again sends nothing twice. With
    SUNSET_SITE_DIR set, the public deprecations page is republished there too.

    Args:
        on: The day to send for; default: today.
    """
    services = connect(Settings())
    reminders = send_due_reminders(services, on or date.today())
    if services.settings.site_dir is not None:
        publish_deprecations_page(services, services.settings.site_dir)
    return reminders
