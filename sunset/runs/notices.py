"""Which notice a deprecation sends at each stage, to whom, and what it records.

Each notice says only what is true when it is sent. A deprecation run announces the
retirement (preservation and the interview still ahead); a retirement run tells nothing
before its flip held, then sends the retired notice (the package verified, the report
sealed). Whoever was told once is a recipient of the deprecation and hears of every later
change. The mechanics of sending (channels, one delivery per recipient, channel and
notice) are in ``sunset.notify``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlmodel import col, select

from sunset.config import Settings
from sunset.ledger import (
    CatalogModel,
    Deprecation,
    Ledger,
    Report,
    ServingStatus,
    StatusTransition,
)
from sunset.notify.channels import Channel
from sunset.notify.message import Notice, NoticeKind
from sunset.notify.notices import NoticeSummary, first_reached, notify_recipients
from sunset.runs.deprecation import (
    add_recipients,
    deprecation_of_run,
    mark_announced,
    package_of_run,
    recipients_of,
    record_in_catalog,
    record_retirement,
)
from sunset.runs.request import ValidatedRequest


def deprecation_notice(
    ledger: Ledger, deprecation: Deprecation, kind: NoticeKind, settings: Settings, **details: Any
) -> Notice:
    """A notice of ``kind`` about the deprecation: its model, successor and dates as the
    ledger holds them, with the details of the kind."""
    with ledger.session() as db:
        model = db.get(CatalogModel, deprecation.model_id)
        assert model is not None
        replacement = (
            db.get(CatalogModel, deprecation.replacement_id) if deprecation.replacement_id else None
        )
    facts: dict[str, Any] = {
        "announced_on": deprecation.announced_on,
        "retirement_on": deprecation.retirement_on,
    }
    return Notice(
        kind=kind,
        deprecation_id=deprecation.id,
        model=model,
        replacement=replacement,
        support_contact=settings.support_contact,
        **(facts | details),
    )


def announce(
    ledger: Ledger,
    channels: Sequence[Channel],
    settings: Settings,
    *,
    run_id: str,
    validated: ValidatedRequest,
) -> NoticeSummary:
    """Tell the run's recipients that the model will be retired, and on which date.

    Everyone it is sent to becomes a recipient of the deprecation first, so a later
    change reaches them even if this process dies mid-send. Once any of them was
    reached, the deprecation is announced (from that day) and the catalog shows its dates.
    """
    deprecation = deprecation_of_run(ledger, run_id)
    add_recipients(ledger, deprecation.id, validated.recipients)
    notice = deprecation_notice(
        ledger,
        deprecation,
        NoticeKind.ANNOUNCEMENT,
        settings,
        announced_on=deprecation.announced_on or validated.announced_on,
    )
    try:
        return notify_recipients(
            ledger, channels, run_id=run_id, notice=notice, recipients=validated.recipients
        )
    finally:
        reached = first_reached(ledger, deprecation.id, NoticeKind.ANNOUNCEMENT)
        if reached:
            mark_announced(ledger, deprecation.id, min(reached.values()).astimezone().date())
            record_in_catalog(ledger, deprecation.id)


def announce_retirement(
    ledger: Ledger,
    channels: Sequence[Channel],
    settings: Settings,
    *,
    run_id: str,
    validated: ValidatedRequest,
    requested_by: str | None,
) -> NoticeSummary:
    """The run's flip to retired held: record the retirement in the deprecation and the
    catalog, and tell everyone told before and the run's recipients.

    A retirement earlier than the date users were told moves that date now, not before,
    and the notice says so, with the reason the run recorded for the shortened notice.
    """
    deprecation = deprecation_of_run(ledger, run_id)
    flip = _retirement_flip(ledger, run_id)
    retired_on = flip.at.astimezone().date()
    change = record_retirement(
        ledger,
        deprecation.id,
        retired_on,
        retired_at=flip.at,
        reason=validated.terms.override_reason,
        changed_by=requested_by,
    )
    add_recipients(ledger, deprecation.id, validated.recipients)
    earlier = change is not None and change.previous_on > retired_on
    notice = deprecation_notice(
        ledger,
        deprecation,
        NoticeKind.RETIRED,
        settings,
        retirement_on=retired_on,
        previous_retirement_on=change.previous_on if change and earlier else None,
        reason=change.reason if change and earlier else validated.terms.override_reason,
        package_id=package_of_run(ledger, run_id).id,
        report=report_location(ledger, run_id),
    )
    return notify_recipients(
        ledger,
        channels,
        run_id=run_id,
        notice=notice,
        recipients=recipients_of(ledger, deprecation.id),
    )


def report_location(ledger: Ledger, run_id: str) -> str:
    """Where the report of the run's package is kept: its object in the primary bucket."""
    package = package_of_run(ledger, run_id)
    with ledger.session() as db:
        report = db.exec(
            select(Report)
            .where(Report.snapshot_id == package.id)
            .order_by(col(Report.sealed_at).desc())
        ).first()
    assert report is not None, f"package {package.id} has no sealed report"
    return f"s3://{package.bucket}/{report.key}"


def _retirement_flip(ledger: Ledger, run_id: str) -> StatusTransition:
    with ledger.session() as db:
        flip = db.exec(
            select(StatusTransition).where(
                StatusTransition.run_id == run_id,
                StatusTransition.to_status == ServingStatus.RETIRED,
                col(StatusTransition.rolled_back_at).is_(None),
            )
        ).first()
    assert flip is not None, f"run {run_id} has not retired its model"
    return flip
