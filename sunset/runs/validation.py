"""A deprecation request validated: every input read, and refused whole if wrong.

``validate_request`` reads what a ``DeprecationRequest`` names (the catalog, the weights,
the recipients, the protocol, the report inputs, the notice terms) before any side
effect, and returns a ``ValidatedRequest`` the steps work from.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sunset.config import Settings
from sunset.errors import InputError
from sunset.interview.protocol import LoadedProtocol, load_protocol
from sunset.ledger import (
    CatalogModel,
    Deprecation,
    DeprecationStage,
    Ledger,
    ServingStatus,
)
from sunset.local_model import find_model_files, require_runtime
from sunset.notify.message import NoticeKind, NoticeTemplates
from sunset.notify.recipients import Recipient, load_recipients
from sunset.notify.users import load_users
from sunset.preservation.drill import drill_workdir
from sunset.preservation.weights import SourceFile, WeightsReader, require_room
from sunset.report.inputs import read_report_input
from sunset.runs.continuation import check_continuation
from sunset.runs.deliveries import retirement_waits_sentence, unknown_deliveries
from sunset.runs.deprecation import latest_deprecation
from sunset.runs.request import DeprecationRequest
from sunset.serving.lifecycle import DEPRECATED, RETIRED


@dataclass(frozen=True)
class ValidatedRequest:
    """A request whose every input was read and found valid."""

    request: DeprecationRequest
    model: CatalogModel
    replacement: CatalogModel | None
    sources: list[SourceFile]
    recipients: list[Recipient]
    protocol: LoadedProtocol
    report_inputs: dict[str, str]
    terms: NoticeTerms

    @property
    def retirement_on(self) -> date:
        return self.terms.retirement_on

    @property
    def announced_on(self) -> date:
        """The day the notice counts from: the announcement in force, or today's."""
        return self.terms.announced_on

    def flip_reason(self, run_id: str) -> str:
        """Why the run changes the serving status, as recorded with the transition."""
        reason = f"deprecation run {run_id}, retirement on {self.retirement_on.isoformat()}"
        if self.terms.override_reason:
            reason += (
                f"; notice shortened to {self.terms.notice_days} of "
                f"{self.terms.minimum_notice_days} days: {self.terms.override_reason}"
            )
        return reason


@dataclass(frozen=True)
class NoticeTerms:
    """The notice a run gives: from when, until when, and how long against the minimum
    for the model's class."""

    announced_on: date
    retirement_on: date
    notice_days: int
    minimum_notice_days: int
    override_reason: str | None  # set only when the notice is shorter than the minimum

    def columns(self) -> dict[str, Any]:
        """The run's ledger columns that record these terms."""
        return {
            "retirement_on": self.retirement_on,
            "notice_days": self.notice_days,
            "minimum_notice_days": self.minimum_notice_days,
            "notice_override_reason": self.override_reason,
        }


def validate_request(
    ledger: Ledger,
    request: DeprecationRequest,
    settings: Settings,
    *,
    weights: WeightsReader,
    today: date,
) -> ValidatedRequest:
    """Read every input of a request and refuse it whole if anything is wrong.

    Raises:
        InputError: with one sentence naming the problem and what to do about it.
    """
    with ledger.session() as db:
        model = db.get(CatalogModel, request.model_id)
        if model is None:
            raise InputError(
                f"Model {request.model_id!r} is not in the catalog; add it first with "
                f"`sunset register {request.model_id} --name NAME`."
            )
        replacement = db.get(CatalogModel, model.replacement_id) if model.replacement_id else None
    told = told_deprecation(ledger, model.id)
    terms = _notice_terms(request, model, told, settings, today)
    # Before its flip (a resumed retirement past it tells the retired notices, which do
    # not hold it up), a retirement waits for a decision on each notice of unknown fate.
    if request.retire and told is not None and told.stage == DeprecationStage.ANNOUNCED:
        unknown = unknown_deliveries(ledger, deprecation_id=told.id)
        if unknown:
            raise InputError(retirement_waits_sentence(model.id, unknown))
    recipients = _recipients(ledger, request)
    if settings.webhook_secret is None and any(r.webhook_url for r in recipients):
        raise InputError(
            "Some recipients have a webhook_url but no signing secret is set; set "
            "SUNSET_WEBHOOK_SECRET so that receivers can verify the notices."
        )
    NoticeTemplates(settings.notice_templates_dir).check_kinds(
        notice_kinds(request), model, replacement, settings.support_contact, today
    )
    sources = weights.scan(request.weights)
    # Every file the snapshot will lock is read now (its first and last bytes), so that
    # one it cannot read stops the run before a notice goes out or a byte is locked.
    weights.check_readable(sources)
    validated = ValidatedRequest(
        request=request,
        model=model,
        replacement=replacement,
        sources=sources,
        recipients=recipients,
        protocol=load_protocol(Path(request.protocol) if request.protocol else None),
        terms=terms,
        report_inputs={
            kind: read_report_input(Path(path), kind)
            for kind, path in (
                ("deployment_summary", request.deployment_summary),
                ("operator_analysis", request.operator_analysis),
            )
            if path
        },
    )
    check_continuation(ledger, request, validated.sources, validated.protocol)
    if request.fingerprint:  # the model must run here, from its own files
        require_runtime()
        find_model_files(Path(request.weights))
        # The only local copy a run makes: the drill restores the whole package here.
        require_room(
            drill_workdir(settings),
            sum(source.size for source in sources),
            "the resurrection drill restores the package there",
        )
    return validated


def notice_kinds(request: DeprecationRequest) -> tuple[NoticeKind, ...]:
    """The kinds of notice a run of this request may send: a deprecation announces, a
    retirement tells after its flip that the model is retired."""
    return (NoticeKind.RETIRED,) if request.retire else (NoticeKind.ANNOUNCEMENT,)


def told_deprecation(ledger: Ledger, model_id: str) -> Deprecation | None:
    """The model's deprecation whose dates its users were told, if they were: the one
    announced, or the one retired (a retirement run resumed after its flip)."""
    latest = latest_deprecation(ledger, model_id)
    told = (DeprecationStage.ANNOUNCED, DeprecationStage.RETIRED)
    return latest if latest is not None and latest.stage in told else None


def _notice_terms(
    request: DeprecationRequest,
    model: CatalogModel,
    told: Deprecation | None,
    settings: Settings,
    today: date,
) -> NoticeTerms:
    minimum = settings.minimum_notice_for(model.model_class)
    # Notice counts from the announcement of the deprecation users were told of, if any.
    announced_in_force = told.announced_on if told else None
    announced_on = announced_in_force or today
    already_announced = told.retirement_on if told and announced_in_force else None
    # Retiring means retiring now, unless a date was given; deprecating announces a date,
    # or keeps the one announced (it moves only with `sunset reschedule`).
    if request.retire:
        default = today
    elif already_announced is not None:
        if request.retirement_date not in (None, already_announced):
            raise InputError(
                f"Users of {model.id} were told it retires on {already_announced}; move the "
                f"date with `sunset reschedule {model.id} --retirement-date "
                f"{request.retirement_date} --reason TEXT`, which tells them why."
            )
        default = already_announced
    else:
        default = today + timedelta(days=minimum)
    retirement_on = request.retirement_date or default
    _refuse_a_passed_date(retirement_on, announced_on, today, already_announced=already_announced)
    notice_days = (retirement_on - announced_on).days
    # A retirement run retires the model when it ends, whatever date it names.
    retiring_on = today if request.retire else retirement_on
    earlier = already_announced is not None and retiring_on < already_announced
    shortened = notice_days < minimum or earlier
    if shortened and not request.notice_override_reason:
        if earlier:
            raise InputError(
                f"Retiring {model.id} on {retiring_on} is earlier than {already_announced}, "
                "the retirement date its users were told; retire on that date, or pass "
                "--notice-override REASON to record why it comes earlier (users are told "
                "the reason when it is retired)."
            )
        of_class = f" for model class {model.model_class!r}" if model.model_class else ""
        raise InputError(
            f"Retirement on {retirement_on} gives users {notice_days} days of notice from the "
            f"announcement on {announced_on}, fewer than the required {minimum}{of_class}; "
            "choose a later --retirement-date, deprecate first and retire after the notice "
            "period, or pass --notice-override REASON to record why less notice is acceptable."
        )
    reason = request.notice_override_reason if shortened else None
    return NoticeTerms(announced_on, retirement_on, notice_days, minimum, reason)


def _refuse_a_passed_date(
    retirement_on: date, announced_on: date, today: date, *, already_announced: date | None
) -> None:
    """Refuse a retirement date before today or before the announcement, override or not:
    the override shortens the notice, it cannot tell users of a retirement already past.

    The date the deprecation in force already announced stays acceptable after it passes,
    so that a run interrupted after its notices went out can be resumed as it was asked.
    """
    earliest = max(today, announced_on)
    if retirement_on >= earliest or retirement_on == already_announced:
        return
    before = f"the announcement on {announced_on}" if announced_on > today else f"today, {today}"
    raise InputError(
        f"Retirement on {retirement_on} is before {before}, and users cannot be told of a "
        "retirement that is already past, even with --notice-override; choose a "
        f"--retirement-date of {earliest} or later."
    )


def _recipients(ledger: Ledger, request: DeprecationRequest) -> list[Recipient]:
    if request.recipients_from_ledger == bool(request.recipients):
        raise InputError(
            "Say who to notify in exactly one way: --recipients FILE.csv, or "
            "--recipients-from-ledger for the users imported with `sunset users import`."
        )
    if request.recipients_from_ledger:
        return load_users(ledger, request.model_id)
    assert request.recipients is not None
    return load_recipients(Path(request.recipients))


def target_status(request: DeprecationRequest) -> ServingStatus:
    return RETIRED if request.retire else DEPRECATED
