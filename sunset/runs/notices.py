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
from datetime import date
from typing import Any

from sqlmodel import col, select

from sunset.config import Settings
from sunset.errors import InputError
from sunset.ledger import (
    CatalogModel,
    Delivery,
    Deprecation,
    DeprecationRun,
    DeprecationStage,
    Ledger,
    Report,
    RetirementDateChange,
    ServingStatus,
    Snapshot,
    StatusTransition,
)
from sunset.notify.channels import Channel
from sunset.notify.message import Notice, NoticeKind, NoticeTemplates
from sunset.notify.notices import NoticeSummary, first_reached, notify_recipients
from sunset.notify.recipients import Recipient
from sunset.runs.deprecation import (
    deprecation_of_run,
    mark_announced,
    move_stage,
    package_of_run,
    record_in_catalog,
)
from sunset.runs.notice_record import add_recipients, recipients_of, record_retirement
from sunset.runs.validation import ValidatedRequest
from sunset.site.entries import transition_page_url

# The stages of a deprecation whose model was retired, and a reinstatement can bring back.
RETIRED_STAGES = (DeprecationStage.RETIRED, DeprecationStage.ON_REQUEST)


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
        "transition_page": transition_page_url(settings, deprecation.model_id),
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
    package = package_of_run(ledger, run_id)
    notice = deprecation_notice(
        ledger,
        deprecation,
        NoticeKind.RETIRED,
        settings,
        retirement_on=retired_on,
        previous_retirement_on=change.previous_on if change and earlier else None,
        reason=change.reason if change and earlier else validated.terms.override_reason,
        package_id=package.id,
        report=report_location(ledger, package),
    )
    return notify_recipients(
        ledger,
        channels,
        run_id=run_id,
        notice=notice,
        recipients=recipients_of(ledger, deprecation.id),
    )


def report_location(ledger: Ledger, package: Snapshot) -> str:
    """Where the package's report is kept: its object in the primary bucket."""
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


def told_recipients(ledger: Ledger, deprecation_id: str) -> list[Recipient]:
    """The deprecation's recipients whom one of its notices reached (or may have)."""
    reached = first_reached(ledger, deprecation_id)
    return [r for r in recipients_of(ledger, deprecation_id) if r.email in reached]


def announce_date_change(
    ledger: Ledger, channels: Sequence[Channel], settings: Settings, change_id: int
) -> NoticeSummary:
    """Tell everyone told of the deprecation that its retirement date moved: the new date,
    the one before, and the recorded reason."""
    notice = _date_change_notice(ledger, settings, change_id)
    return notify_recipients(
        ledger,
        channels,
        run_id=None,
        notice=notice,
        recipients=told_recipients(ledger, notice.deprecation_id),
    )


def _date_change_notice(ledger: Ledger, settings: Settings, change_id: int) -> Notice:
    with ledger.session() as db:
        change = db.get(RetirementDateChange, change_id)
        assert change is not None
        deprecation = db.get(Deprecation, change.deprecation_id)
        assert deprecation is not None
    return deprecation_notice(
        ledger,
        deprecation,
        NoticeKind.DATE_CHANGED,
        settings,
        retirement_on=change.retirement_on,
        previous_retirement_on=change.previous_on,
        reason=change.reason,
        change_id=change.id,
    )


def notice_of_delivery(ledger: Ledger, settings: Settings, delivery: Delivery) -> Notice:
    """The notice of ``delivery`` composed again, as true now, to send it once more: the
    announcement (with the deprecation's dates as they stand) or a date change.

    Raises:
        InputError: a notice of another kind, whose details the ledger does not keep.
    """
    with ledger.session() as db:
        deprecation = db.get(Deprecation, delivery.deprecation_id)
    if deprecation is not None and delivery.kind == NoticeKind.ANNOUNCEMENT:
        return deprecation_notice(
            ledger,
            deprecation,
            NoticeKind.ANNOUNCEMENT,
            settings,
            announced_on=deprecation.announced_on,
        )
    if deprecation is not None and delivery.kind == NoticeKind.DATE_CHANGED:
        return _date_change_notice(ledger, settings, int(delivery.notice_key.rsplit(":", 1)[1]))
    raise InputError(
        f"Sunset cannot compose the {delivery.kind} notice to {delivery.recipient} again; "
        "ask the recipient whether it arrived and count it as delivered with "
        "--count-as-delivered."
    )


def check_templates(
    ledger: Ledger, settings: Settings, model_id: str, kinds: Sequence[NoticeKind], today: date
) -> None:
    """Render the templates of ``kinds`` for the model once, before anyone is told.

    Raises:
        InputError: a template is missing, malformed or uses a name it is not given.
    """
    with ledger.session() as db:
        model = db.get(CatalogModel, model_id)
        assert model is not None
        replacement = db.get(CatalogModel, model.replacement_id) if model.replacement_id else None
    NoticeTemplates(settings.notice_templates_dir).check_kinds(
        kinds, model, replacement, settings.support_contact, today
    )


def reinstatement_kind(target: ServingStatus) -> NoticeKind:
    """The notice a reinstatement to ``target`` sends."""
    return NoticeKind.ON_REQUEST if target == ServingStatus.ON_REQUEST else NoticeKind.REINSTATED


def announce_reinstatement(
    ledger: Ledger,
    channels: Sequence[Channel],
    settings: Settings,
    *,
    run_id: str,
    target: ServingStatus,
    reason: str,
) -> NoticeSummary:
    """The reinstatement's flip held: the deprecation that retired the model moves on (to
    on request, or reinstated), and everyone told of it hears so, with the reason."""
    with ledger.session() as db:
        run = db.get(DeprecationRun, run_id)
        assert run is not None
        # The deprecation it brings back: found before (a retried step), or the latest
        # that retired the model.
        deprecation = (
            db.get(Deprecation, run.deprecation_id)
            if run.deprecation_id
            else db.exec(
                select(Deprecation)
                .where(
                    Deprecation.model_id == run.model_id,
                    col(Deprecation.stage).in_(RETIRED_STAGES),
                )
                .order_by(col(Deprecation.opened_at).desc())
            ).first()
        )
        if deprecation is None:  # retired before deprecations were recorded: nobody to tell
            return NoticeSummary(0, {}, [])
        run.deprecation_id = deprecation.id
        db.add(run)
    kind = reinstatement_kind(target)
    stage = (
        DeprecationStage.ON_REQUEST
        if kind == NoticeKind.ON_REQUEST
        else DeprecationStage.REINSTATED
    )
    move_stage(ledger, deprecation.id, stage, reason)
    notice = deprecation_notice(ledger, deprecation, kind, settings, reason=reason)
    return notify_recipients(
        ledger,
        channels,
        run_id=run_id,
        notice=notice,
        recipients=told_recipients(ledger, deprecation.id),
    )
