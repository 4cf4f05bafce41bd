"""How much notice a request gives: the retirement date, and from when the notice counts.

On a SQLite ledger in a temporary directory, with a weights directory and a recipients
file of a few bytes: the validation reads the files, so they are real, but small.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from sunset.config import Settings
from sunset.errors import InputError
from sunset.ledger import (
    CatalogModel,
    Deprecation,
    DeprecationStage,
    Ledger,
    ServingStatus,
    open_ledger,
)
from sunset.preservation.weights import WeightsReader
from sunset.runs.request import DeprecationRequest
from sunset.runs.validation import ValidatedRequest, validate_request

pytestmark = pytest.mark.unit

TODAY = date(2026, 3, 1)
MINIMUM = 90


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    ledger = open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    with ledger.session() as db:
        db.add(CatalogModel(id="m1", display_name="Model One"))
    yield ledger
    ledger.dispose()


def announce_deprecation(ledger: Ledger, days_ago: int, retirement_on: date | None = None) -> date:
    """Mark m1 deprecated, announced ``days_ago`` days before TODAY, retiring on
    ``retirement_on`` (default: TODAY)."""
    announced_on = TODAY - timedelta(days=days_ago)
    with ledger.session() as db:
        model = db.get(CatalogModel, "m1")
        assert model is not None
        model.serving_status = ServingStatus.DEPRECATED
        model.deprecation_announced_on = announced_on
        model.retirement_on = retirement_on or TODAY
        db.add(model)
        db.add(
            Deprecation(
                model_id="m1",
                stage=DeprecationStage.ANNOUNCED,
                announced_on=announced_on,
                retirement_on=model.retirement_on,
            )
        )
    return announced_on


def validate(ledger: Ledger, tmp_path: Path, **fields: Any) -> ValidatedRequest:
    weights = tmp_path / "weights"
    weights.mkdir(exist_ok=True)
    (weights / "config.json").write_text("{}")
    recipients = tmp_path / "users.csv"
    recipients.write_text("email,name\nada@example.org,Ada\n")
    request = DeprecationRequest(
        model_id="m1", weights=str(weights), recipients=str(recipients), **fields
    )
    settings = Settings(minimum_notice_days=MINIMUM, minimum_notice_days_by_class={})
    return validate_request(ledger, request, settings, weights=WeightsReader(None), today=TODAY)


def test_a_deprecation_without_a_date_announces_retirement_after_the_minimum_notice(
    ledger: Ledger, tmp_path: Path
) -> None:
    validated = validate(ledger, tmp_path)

    assert validated.retirement_on == TODAY + timedelta(days=MINIMUM)
    assert validated.announced_on == TODAY
    assert (validated.terms.notice_days, validated.terms.minimum_notice_days) == (MINIMUM, MINIMUM)
    assert validated.terms.override_reason is None


def test_retiring_an_active_model_now_without_a_reason_is_refused(
    ledger: Ledger, tmp_path: Path
) -> None:
    with pytest.raises(InputError, match=f"gives users 0 days of notice .* required {MINIMUM};"):
        validate(ledger, tmp_path, retire=True)


def test_the_notice_counts_from_the_announcement_of_the_deprecation_in_force(
    ledger: Ledger, tmp_path: Path
) -> None:
    announced_on = announce_deprecation(ledger, days_ago=100)

    # A reason given when the notice is long enough shortens nothing, so none is recorded.
    validated = validate(ledger, tmp_path, retire=True, notice_override_reason="just in case")

    assert validated.retirement_on == TODAY
    assert validated.announced_on == announced_on
    assert validated.terms.notice_days == 100
    assert validated.terms.override_reason is None
    assert "notice shortened" not in validated.flip_reason("run-1")


def test_a_notice_shorter_than_the_minimum_is_accepted_only_with_its_reason_recorded(
    ledger: Ledger, tmp_path: Path
) -> None:
    announce_deprecation(ledger, days_ago=30)

    with pytest.raises(InputError, match=f"gives users 30 days of notice .* required {MINIMUM};"):
        validate(ledger, tmp_path, retire=True)
    validated = validate(ledger, tmp_path, retire=True, notice_override_reason="security fix")

    assert (validated.terms.notice_days, validated.terms.override_reason) == (30, "security fix")
    assert validated.terms.columns()["notice_override_reason"] == "security fix"
    assert f"notice shortened to 30 of {MINIMUM} days: security fix" in validated.flip_reason(
        "run-1"
    )


@pytest.mark.parametrize("retirement_date", [TODAY - timedelta(days=1), date(1, 1, 1)])
def test_a_retirement_date_already_past_is_refused_even_with_an_override(
    ledger: Ledger, tmp_path: Path, retirement_date: date
) -> None:
    with pytest.raises(InputError) as refused:
        validate(
            ledger,
            tmp_path,
            retirement_date=retirement_date,
            notice_override_reason="security fix",
        )

    assert str(refused.value) == (
        f"Retirement on {retirement_date} is before today, {TODAY}, and users cannot be told "
        "of a retirement that is already past, even with --notice-override; choose a "
        f"--retirement-date of {TODAY} or later."
    )


def test_a_retirement_date_before_the_announcement_is_refused_even_with_an_override(
    ledger: Ledger, tmp_path: Path
) -> None:
    # An announcement dated after today (a clock set wrong, a ledger edited by hand): the
    # notice would count backwards.
    announced_on = announce_deprecation(
        ledger, days_ago=-10, retirement_on=TODAY + timedelta(days=100)
    )

    with pytest.raises(InputError) as refused:
        validate(ledger, tmp_path, retire=True, notice_override_reason="security fix")

    assert str(refused.value) == (
        f"Retirement on {TODAY} is before the announcement on {announced_on}, and users cannot "
        "be told of a retirement that is already past, even with --notice-override; choose a "
        f"--retirement-date of {announced_on} or later."
    )


def test_retiring_today_with_an_override_is_still_accepted(ledger: Ledger, tmp_path: Path) -> None:
    validated = validate(ledger, tmp_path, retire=True, notice_override_reason="security fix")

    assert (validated.retirement_on, validated.terms.notice_days) == (TODAY, 0)


def test_the_date_already_announced_stays_acceptable_after_it_passes(
    ledger: Ledger, tmp_path: Path
) -> None:
    # A run whose notices went out before it was interrupted is resumed as it was asked.
    announced_retirement = TODAY - timedelta(days=5)
    announce_deprecation(ledger, days_ago=100, retirement_on=announced_retirement)

    validated = validate(ledger, tmp_path, retire=True, retirement_date=announced_retirement)

    assert (validated.retirement_on, validated.terms.notice_days) == (announced_retirement, 95)
    with pytest.raises(InputError, match="is before today"):
        validate(ledger, tmp_path, retire=True, retirement_date=announced_retirement - timedelta(1))


def test_retiring_earlier_than_the_date_users_were_told_needs_a_reason(
    ledger: Ledger, tmp_path: Path
) -> None:
    # Enough notice by the minimum, but users were told a later date.
    announce_deprecation(ledger, days_ago=100, retirement_on=TODAY + timedelta(days=20))

    with pytest.raises(InputError) as refused:
        validate(ledger, tmp_path, retire=True)
    validated = validate(ledger, tmp_path, retire=True, notice_override_reason="security fix")

    assert str(refused.value) == (
        f"Retiring m1 on {TODAY} is earlier than {TODAY + timedelta(days=20)}, the retirement "
        "date its users were told; retire on that date, or pass --notice-override REASON to "
        "record why it comes earlier (users are told the reason when it is retired)."
    )
    assert validated.terms.override_reason == "security fix"
    assert validated.terms.notice_days == 100


def test_a_deprecation_run_keeps_the_date_users_were_told(ledger: Ledger, tmp_path: Path) -> None:
    # Its announcement went out, then the run stopped: a new request keeps the date.
    announced_retirement = TODAY + timedelta(days=80)
    announce_deprecation(ledger, days_ago=10, retirement_on=announced_retirement)

    kept = validate(ledger, tmp_path)
    with pytest.raises(InputError) as refused:
        validate(ledger, tmp_path, retirement_date=TODAY + timedelta(days=120))

    assert (kept.retirement_on, kept.terms.notice_days) == (announced_retirement, 90)
    assert str(refused.value) == (
        f"Users of m1 were told it retires on {announced_retirement}; move the date with "
        f"`sunset reschedule m1 --retirement-date {TODAY + timedelta(days=120)} --reason "
        "TEXT`, which tells them why."
    )
