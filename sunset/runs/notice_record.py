"""Who was told of a deprecation, and the date they were told: the recipients every later
notice goes to, and each move of the retirement date after the announcement.

Kept apart from ``sunset.runs.deprecation`` so that reading where a deprecation stands
(`sunset status`) does not build the recipients' and the date changes' tables.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime

from sqlmodel import col, select

from sunset.errors import InputError
from sunset.ledger import (
    Deprecation,
    DeprecationStage,
    Ledger,
    NoticeRecipient,
    RetirementDateChange,
    utcnow,
)
from sunset.notify.recipients import Recipient
from sunset.runs.deprecation import move_stage, record_in_catalog


def change_retirement_date(
    ledger: Ledger,
    deprecation_id: str,
    retirement_on: date,
    *,
    reason: str,
    changed_by: str | None,
) -> RetirementDateChange:
    """Record that the retirement date users were told moves, and why; the same change
    recorded again (a retried step) is the same change."""
    with ledger.session() as db:
        deprecation = db.get(Deprecation, deprecation_id)
        assert deprecation is not None
        if deprecation.retirement_on == retirement_on:
            earlier = db.exec(
                select(RetirementDateChange)
                .where(RetirementDateChange.deprecation_id == deprecation_id)
                .order_by(col(RetirementDateChange.id).desc())
            ).first()
            if earlier is None or earlier.retirement_on != retirement_on:
                raise InputError(
                    f"The retirement date is already {retirement_on}; there is nothing to change."
                )
            return earlier
        change = RetirementDateChange(
            deprecation_id=deprecation_id,
            previous_on=deprecation.retirement_on,
            retirement_on=retirement_on,
            reason=reason,
            changed_by=changed_by,
        )
        deprecation.retirement_on, deprecation.updated_at = retirement_on, utcnow()
        db.add(deprecation)
        db.add(change)
        db.flush()
        db.refresh(change)
        return change


def date_changes(ledger: Ledger, deprecation_id: str) -> list[RetirementDateChange]:
    """Every move of the retirement date, oldest first."""
    with ledger.session() as db:
        return list(
            db.exec(
                select(RetirementDateChange)
                .where(RetirementDateChange.deprecation_id == deprecation_id)
                .order_by(col(RetirementDateChange.id))
            ).all()
        )


def add_recipients(ledger: Ledger, deprecation_id: str, recipients: Iterable[Recipient]) -> None:
    """Remember who is told of the deprecation; someone already known keeps their row."""
    with ledger.session() as db:
        known = set(
            db.exec(
                select(NoticeRecipient.email).where(
                    NoticeRecipient.deprecation_id == deprecation_id
                )
            ).all()
        )
        for recipient in recipients:
            if recipient.email not in known:
                known.add(recipient.email)
                db.add(
                    NoticeRecipient(
                        deprecation_id=deprecation_id,
                        email=recipient.email,
                        name=recipient.name,
                        webhook_url=recipient.webhook_url,
                        usage=recipient.usage,
                    )
                )


def recipients_of(ledger: Ledger, deprecation_id: str) -> list[Recipient]:
    """Everyone told of the deprecation, in the order they were added."""
    with ledger.session() as db:
        rows = db.exec(
            select(NoticeRecipient)
            .where(NoticeRecipient.deprecation_id == deprecation_id)
            .order_by(col(NoticeRecipient.id))
        ).all()
    return [Recipient(r.email, r.name, r.webhook_url, r.usage) for r in rows]


def record_retirement(
    ledger: Ledger,
    deprecation_id: str,
    retired_on: date,
    *,
    retired_at: datetime,
    reason: str | None,
    changed_by: str | None,
) -> RetirementDateChange | None:
    """The model was retired (its flip at ``retired_at`` held): the deprecation is retired,
    on ``retired_on``. Returns the change of the date users were told that the retirement
    made, if it came on another day than announced; the same call again (a retried step)
    finds the change it made.
    """
    with ledger.session() as db:
        made = db.exec(
            select(RetirementDateChange)
            .where(
                RetirementDateChange.deprecation_id == deprecation_id,
                col(RetirementDateChange.changed_at) >= retired_at,
            )
            .order_by(col(RetirementDateChange.id))
        ).first()
        deprecation = db.get(Deprecation, deprecation_id)
        assert deprecation is not None
        moved = made is None and deprecation.retirement_on != retired_on
        if moved and deprecation.stage != DeprecationStage.ANNOUNCED:
            deprecation.retirement_on = retired_on  # nobody was told another date
            db.add(deprecation)
    if moved and deprecation.stage == DeprecationStage.ANNOUNCED:
        earlier = retired_on < deprecation.retirement_on
        made = change_retirement_date(
            ledger,
            deprecation_id,
            retired_on,
            reason=(reason or "retired earlier than announced")
            if earlier
            else "retired after the announced date",
            changed_by=changed_by,
        )
    move_stage(ledger, deprecation_id, DeprecationStage.RETIRED)
    record_in_catalog(ledger, deprecation_id)
    return made
