"""Moving an announced retirement date: checked, recorded with its reason, shown in the
catalog; the date-changed notice then tells everyone who was told the date before."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sunset.config import Settings
from sunset.errors import InputError
from sunset.ledger import (
    CatalogModel,
    Deprecation,
    DeprecationStage,
    Ledger,
    RetirementDateChange,
)
from sunset.runs.deprecation import latest_deprecation, record_in_catalog
from sunset.runs.notice_record import change_retirement_date, date_changes


@dataclass(frozen=True)
class Reschedule:
    """A checked request to move the retirement date of an announced deprecation."""

    deprecation: Deprecation
    retirement_on: date
    reason: str  # as recorded, and as users read it


def check_reschedule(
    ledger: Ledger,
    settings: Settings,
    model_id: str,
    retirement_on: date,
    *,
    reason: str,
    notice_override_reason: str | None,
    today: date,
) -> Reschedule:
    """Check that the model's announced retirement can move to ``retirement_on``.

    A date before the minimum notice counted from the first announcement needs
    ``notice_override_reason``, which is recorded with the reason. The same change asked
    again (its notices interrupted) is accepted, so its notices can be finished.

    Raises:
        InputError: no announced deprecation, a blank reason, a past date, the date
            already in force, or too little notice without an override.
    """
    reason, override = reason.strip(), (notice_override_reason or "").strip()
    if not reason:
        raise InputError("Say why the retirement date changes with --reason; users are told it.")
    with ledger.session() as db:
        model = db.get(CatalogModel, model_id)
    if model is None:
        raise InputError(f"Model {model_id!r} is not in the catalog.")
    deprecation = latest_deprecation(ledger, model_id)
    if deprecation is None or deprecation.stage != DeprecationStage.ANNOUNCED:
        raise InputError(_not_announced(model_id, deprecation))
    assert deprecation.announced_on is not None
    if retirement_on < today:
        raise InputError(
            f"Retirement on {retirement_on} is before today, {today}; users cannot be told "
            "of a retirement that is already past. Choose a later --retirement-date."
        )
    if retirement_on == deprecation.retirement_on:
        latest = next(reversed(date_changes(ledger, deprecation.id)), None)
        if latest is None or latest.retirement_on != retirement_on:
            raise InputError(
                f"The retirement of {model_id} is already on {retirement_on}; there is "
                "nothing to change."
            )
        return Reschedule(deprecation, retirement_on, latest.reason)
    minimum = settings.minimum_notice_for(model.model_class)
    notice_days = (retirement_on - deprecation.announced_on).days
    if notice_days < minimum:
        if not override:
            raise InputError(
                f"Retirement on {retirement_on} gives users {notice_days} days of notice from "
                f"the first announcement on {deprecation.announced_on}, fewer than the "
                f"required {minimum}; choose a later --retirement-date, or pass "
                "--notice-override REASON to record why less notice is acceptable."
            )
        reason += f" (notice shortened to {notice_days} of the required {minimum} days: {override})"
    return Reschedule(deprecation, retirement_on, reason)


def record_reschedule(
    ledger: Ledger, reschedule: Reschedule, changed_by: str | None
) -> RetirementDateChange:
    """Record the new date in the deprecation and the catalog; the same change recorded
    again is the same change."""
    change = change_retirement_date(
        ledger,
        reschedule.deprecation.id,
        reschedule.retirement_on,
        reason=reschedule.reason,
        changed_by=changed_by,
    )
    record_in_catalog(ledger, reschedule.deprecation.id)
    return change


def _not_announced(model_id: str, deprecation: Deprecation | None) -> str:
    if deprecation is None:
        return (
            f"{model_id} has no deprecation to reschedule; announce one with `sunset deprecate "
            f"{model_id} --retirement-date YYYY-MM-DD`."
        )
    if deprecation.stage == DeprecationStage.PLANNED:
        return (
            f"Nobody has been told a retirement date of {model_id} yet; run `sunset deprecate "
            f"{model_id}` with the --retirement-date you want."
        )
    return (
        f"The deprecation of {model_id} is {deprecation.stage.value.replace('_', ' ')}, "
        "so its retirement date cannot change any more."
    )
