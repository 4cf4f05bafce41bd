"""Steps of the notices that come between runs: a new retirement date, a cancellation,
the daily reminders.

A date change and the reminders are no run of their own: their record is the date change
and the deliveries (each once per recipient, channel and notice), so their steps are
neither cached nor recorded as attempts. A cancellation is a run, like a reinstatement.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from prefect import get_run_logger
from prefect.runtime import flow_run

from sunset.ledger import RetirementDateChange
from sunset.notify.notices import NoticeSummary
from sunset.runs.cancel import CancellationStart, announce_cancellation, begin_cancellation
from sunset.runs.notices import announce_date_change
from sunset.runs.reminders import Reminder, send_reminders
from sunset.runs.reschedule import check_reschedule, record_reschedule
from sunset.runs.steps import (
    CANCELLED_NOTICE_STEP,
    DATE_CHANGE_STEP,
    DATE_CHANGED_NOTICE_STEP,
    PREFLIGHT_STEP,
    REMINDERS_STEP,
    SITE_STEP,
)
from sunset.services import Services
from sunset.site.render import publish_site
from tasks.notify import log_summary
from tasks.step import step


# Not recorded (no run), not retried: it decides whether the date may change.
@step(DATE_CHANGE_STEP, recorded_in=None, retries=0, cache=False)
def record_date_change(
    services: Services,
    model_id: str,
    retirement_on: date,
    reason: str,
    notice_override_reason: str | None,
    requested_by: str | None,
) -> RetirementDateChange:
    """Check the new retirement date, then record it in the deprecation and the catalog."""
    checked = check_reschedule(
        services.ledger,
        services.settings,
        model_id,
        retirement_on,
        reason=reason,
        notice_override_reason=notice_override_reason,
        today=date.today(),
    )
    change = record_reschedule(services.ledger, checked, requested_by)
    get_run_logger().info(
        "%s: retirement moved from %s to %s", model_id, change.previous_on, change.retirement_on
    )
    return change


# Not recorded (no run): its deliveries are its record.
@step(DATE_CHANGED_NOTICE_STEP, recorded_in=None, cache=False)
def notify_date_changed(services: Services, change_id: int) -> NoticeSummary:
    """Tell everyone told of the deprecation the new date, the old one and why."""
    summary = announce_date_change(
        services.ledger, services.notice_channels(), services.settings, change_id
    )
    log_summary("Date-changed notices", summary)
    return summary


# Never cached nor retried: it decides, each time, whether the run may start or resume.
@step(PREFLIGHT_STEP, opens_run=True, retries=0, cache=False)
def begin_cancel(
    services: Services,
    model_id: str,
    reason: str,
    requested_by: str | None,
    orchestrator_lease_id: str | None = None,
) -> CancellationStart:
    """Check the cancellation, then start or resume its run."""
    return begin_cancellation(
        services.ledger,
        model_id,
        reason,
        flow_run_id=flow_run.get_id(),
        lease_seconds=services.settings.run_lease_seconds,
        requested_by=requested_by,
        orchestrator_lease_id=orchestrator_lease_id,
    )


@step(CANCELLED_NOTICE_STEP)
def notify_cancelled(services: Services, run_id: str, reason: str) -> NoticeSummary:
    """Cancel the deprecation and tell everyone told of it, with the reason."""
    summary = announce_cancellation(
        services.ledger, services.notice_channels(), services.settings, run_id=run_id, reason=reason
    )
    log_summary("Cancellation notices", summary)
    return summary


# Not recorded (no run): its deliveries are its record, which also keeps it from sending
# anything twice however often it runs.
@step(REMINDERS_STEP, recorded_in=None, cache=False)
def send_due_reminders(services: Services, today: date) -> list[Reminder]:
    """Send each announced deprecation's reminder due today."""
    reminders = send_reminders(
        services.ledger, services.notice_channels(), services.settings, today
    )
    logger = get_run_logger()
    for reminder in reminders:
        logger.info(
            "%s: the %d-day reminder (%d days left until %s)",
            reminder.model_id,
            reminder.reminder_days,
            reminder.days_left,
            reminder.retirement_on,
        )
        log_summary("Reminders", reminder.summary)
    if not reminders:
        logger.info("No reminder is due on %s", today)
    return reminders


# Not recorded (no run), nor cached: each day writes the page the ledger holds then.
@step(SITE_STEP, recorded_in=None, cache=False)
def publish_deprecations_page(services: Services, out: Path) -> int:
    """Write the public deprecations page and its feed from the ledger; how many models."""
    published = publish_site(services.ledger, services.settings, out)
    get_run_logger().info(
        "Deprecations page republished in %s: %d model(s) listed",
        published.directory,
        len(published.entries),
    )
    return len(published.entries)
