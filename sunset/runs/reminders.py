"""Reminders of an announced retirement, a few days before it (``SUNSET_REMINDER_DAYS``).

Each day, every announced deprecation gets the reminder due that day: the latest of the
schedule's days whose date has come, so a reminder whose day was missed goes out late
unless a later one is due, and none goes out once the retirement date has passed. A
recipient gets only reminders dated after the day the announcement reached them. Each
reminder is one notice per retirement date and scheduled day, so running this twice a
day, or on the next day, sends nothing twice; a new retirement date starts the schedule
again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from sqlmodel import col, select

from sunset.config import Settings
from sunset.errors import TransientError
from sunset.ledger import Deprecation, DeprecationStage, Ledger
from sunset.notify.channels import Channel
from sunset.notify.message import NoticeKind
from sunset.notify.notices import NoticeSummary, first_reached, notify_recipients
from sunset.runs.notice_record import recipients_of
from sunset.runs.notices import deprecation_notice


@dataclass(frozen=True)
class Reminder:
    """The reminder one deprecation sent (or found sent) on one day."""

    model_id: str
    retirement_on: date
    reminder_days: int  # which reminder of the schedule
    days_left: int
    summary: NoticeSummary


def due_reminder(retirement_on: date, today: date, schedule: Sequence[int]) -> int | None:
    """The day of the schedule whose reminder is due ``today``: the latest one whose date
    has come, while the retirement date has not passed."""
    days_left = (retirement_on - today).days
    due = [days for days in schedule if days >= days_left]
    return min(due) if due and days_left >= 0 else None


def send_reminders(
    ledger: Ledger, channels: Sequence[Channel], settings: Settings, today: date
) -> list[Reminder]:
    """Send every announced deprecation's reminder due ``today`` to its recipients.

    Raises:
        TransientError: some reminders could not be delivered yet; the rest went out.
    """
    sent: list[Reminder] = []
    transient: list[str] = []
    for deprecation in _announced(ledger):
        days = due_reminder(deprecation.retirement_on, today, settings.reminder_days)
        if days is None:
            continue
        dated = deprecation.retirement_on - timedelta(days=days)
        announced = first_reached(ledger, deprecation.id, NoticeKind.ANNOUNCEMENT)
        recipients = [
            r
            for r in recipients_of(ledger, deprecation.id)
            if r.email in announced and announced[r.email].astimezone().date() < dated
        ]
        if not recipients:
            continue
        days_left = (deprecation.retirement_on - today).days
        notice = deprecation_notice(
            ledger,
            deprecation,
            NoticeKind.REMINDER,
            settings,
            reminder_days=days,
            days_left=days_left,
        )
        try:
            summary = notify_recipients(
                ledger, channels, run_id=None, notice=notice, recipients=recipients
            )
        except TransientError as exc:
            transient.append(f"{deprecation.model_id}: {exc}")
            continue
        sent.append(
            Reminder(deprecation.model_id, deprecation.retirement_on, days, days_left, summary)
        )
    if transient:
        raise TransientError(
            f"Reminders of {len(transient)} deprecation(s) could not all be delivered yet and "
            f"will be tried again: {'; '.join(transient)}"
        )
    return sent


def _announced(ledger: Ledger) -> list[Deprecation]:
    with ledger.session() as db:
        return list(
            db.exec(
                select(Deprecation)
                .where(Deprecation.stage == DeprecationStage.ANNOUNCED)
                .order_by(col(Deprecation.model_id))
            )
        )
