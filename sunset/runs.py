"""Deprecation runs: the request, its validation, and the run's life in the ledger.

One model has at most one live run. A run that stopped before it finished (a crash, a
failed step) is resumed by the next request with the same parameters: it keeps its id,
so every step finds the work it already did and does only the rest.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from sunset.config import Settings
from sunset.errors import GuardRefused, InputError, RunConflict
from sunset.interview.protocol import LoadedProtocol, load_protocol
from sunset.ledger import (
    AttemptState,
    CatalogModel,
    DeprecationRun,
    Ledger,
    RunState,
    ServingStatus,
    StepAttempt,
    utcnow,
)
from sunset.lifecycle import DEPRECATED, DEPRECATION, RETIRED, check_move
from sunset.local_model import find_model_files, require_runtime
from sunset.notify.message import Notice, NoticeTemplates
from sunset.notify.recipients import Recipient, load_recipients
from sunset.notify.users import load_users
from sunset.report.inputs import read_report_input
from sunset.weights import SourceFile, WeightsReader

PREFLIGHT_STEP = "preflight"
NOTIFY_STEP = "notify_users"
SNAPSHOT_STEP = "snapshot_weights"
VERIFY_STEP = "verify_preservation"
FINGERPRINT_STEP = "record_fingerprint"
INTERVIEW_STEP = "run_interviews"
REPORT_STEP = "assemble_report"
FLIP_STEP = "flip_serving_status"
ROUTE_STEP = "route_gateway"
CHECK_STEP = "check_serving"
APPROVAL_STEP = "request_approval"
DECISION_STEP = "record_decision"
RESTORE_STEP = "restore_snapshot"
RESTORE_CHECK_STEP = "verify_restoration"
MAX_APPROVERS = 2
DRILL_STEP = "resurrection_drill"

MODEL_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class DeprecationRequest:
    """What a release manager asks for; plain values, so it can travel as flow parameters."""

    model_id: str
    weights: str
    recipients: str | None = None
    retire: bool = False
    retirement_date: date | None = None
    protocol: str | None = None
    sessions: int = 1
    notice_override_reason: str | None = None
    deployment_summary: str | None = None
    operator_analysis: str | None = None
    recipients_from_ledger: bool = False
    approvals: int = 0
    fingerprint: bool = False

    def parameters(self) -> dict[str, object]:
        values = asdict(self)
        values["retirement_date"] = self.retirement_date and self.retirement_date.isoformat()
        return values


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
    notice: Notice
    terms: NoticeTerms

    @property
    def retirement_on(self) -> date:
        return self.notice.retirement_on

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
    """The notice a run gives, against the minimum for the model's class."""

    notice_days: int
    minimum_notice_days: int
    override_reason: str | None  # set only when the notice is shorter than the minimum

    def columns(self) -> dict[str, Any]:
        """The run's ledger columns that record these terms."""
        return {
            "notice_days": self.notice_days,
            "minimum_notice_days": self.minimum_notice_days,
            "notice_override_reason": self.override_reason,
        }


def check_model_id(model_id: str) -> str:
    """Refuse model ids that could escape a path or a shell."""
    if not MODEL_ID.match(model_id):
        raise InputError(
            f"Model id {model_id!r} is not valid: use 1-128 lowercase letters, digits, '.', "
            "'_' or '-', starting with a letter or digit."
        )
    return model_id


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
    check_model_id(request.model_id)
    with ledger.session() as db:
        model = db.get(CatalogModel, request.model_id)
        if model is None:
            raise InputError(
                f"Model {request.model_id!r} is not in the catalog; add it first with "
                f"`sunset register {request.model_id} --name NAME`."
            )
        replacement = db.get(CatalogModel, model.replacement_id) if model.replacement_id else None
    if not 1 <= request.sessions <= 20:
        raise InputError(f"Sessions must be between 1 and 20, not {request.sessions}.")
    if not 0 <= request.approvals <= MAX_APPROVERS:
        raise InputError(
            f"Approvals must be 0 (none), 1 or {MAX_APPROVERS} distinct approvers, "
            f"not {request.approvals}."
        )
    notice, terms = _notice_terms(request, model, replacement, settings, today)
    recipients = _recipients(ledger, request)
    if settings.webhook_secret is None and any(r.webhook_url for r in recipients):
        raise InputError(
            "Some recipients have a webhook_url but no signing secret is set; set "
            "SUNSET_WEBHOOK_SECRET so that receivers can verify the notices."
        )
    NoticeTemplates(settings.notice_templates_dir).check(notice, recipients[0])
    validated = ValidatedRequest(
        request=request,
        model=model,
        replacement=replacement,
        sources=weights.scan(request.weights),
        recipients=recipients,
        protocol=load_protocol(Path(request.protocol) if request.protocol else None),
        notice=notice,
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
    if request.fingerprint:  # the model must run here, from its own files
        require_runtime()
        find_model_files(Path(request.weights))
    return validated


def _notice_terms(
    request: DeprecationRequest,
    model: CatalogModel,
    replacement: CatalogModel | None,
    settings: Settings,
    today: date,
) -> tuple[Notice, NoticeTerms]:
    minimum = settings.minimum_notice_for(model.model_class)
    # Retiring means retiring now, unless a date was given; deprecating announces a date.
    default = today if request.retire else today + timedelta(days=minimum)
    retirement_on = request.retirement_date or default
    # Notice counts from the announcement of the deprecation in force, if there is one.
    announced_on = (
        model.deprecation_announced_on
        if model.serving_status == DEPRECATED and model.deprecation_announced_on
        else today
    )
    notice_days = (retirement_on - announced_on).days
    shortened = notice_days < minimum
    override = (request.notice_override_reason or "").strip()  # a blank reason is no reason
    if shortened and not override:
        of_class = f" for model class {model.model_class!r}" if model.model_class else ""
        raise InputError(
            f"Retirement on {retirement_on} gives users {notice_days} days of notice from the "
            f"announcement on {announced_on}, fewer than the required {minimum}{of_class}; "
            "choose a later --retirement-date, deprecate first and retire after the notice "
            "period, or pass --notice-override REASON to record why less notice is acceptable."
        )
    notice = Notice(model, replacement, announced_on, retirement_on, settings.support_contact)
    reason = override if shortened else None
    return notice, NoticeTerms(notice_days, minimum, reason)


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


def begin_run(
    ledger: Ledger,
    *,
    model_id: str,
    kind: str,
    parameters: dict[str, Any],
    target: ServingStatus,
    flow_run_id: str | None,
    lease_seconds: int,
    details: dict[str, Any] | None = None,
) -> DeprecationRun:
    """Start a run, or resume the unfinished one of the same kind with the same parameters.

    ``details`` are further columns of the run (who asked, the notice terms), written on
    a new run and refreshed on a resumed one.

    Raises:
        RunConflict: another run for the same model holds a live lease.
        InputError: the model cannot move to ``target`` from its current status.
    """
    now = utcnow()
    with ledger.session() as db:
        unfinished = db.exec(
            select(DeprecationRun).where(
                DeprecationRun.model_id == model_id,
                DeprecationRun.state.in_([RunState.RUNNING, RunState.FAILED]),  # type: ignore[attr-defined]
            )
        ).all()
        lease = now + timedelta(seconds=lease_seconds)
        for run in unfinished:
            held = run.lease_expires_at is not None and run.lease_expires_at > now
            if run.state == RunState.RUNNING and held and run.flow_run_id != flow_run_id:
                raise RunConflict(
                    f"Run {run.id} for {model_id} is still in progress (flow run "
                    f"{run.flow_run_id}); wait for it to finish, or, if its process died, "
                    f"retry after its lease lapses at {run.lease_expires_at:%H:%M:%S} UTC."
                )
            if run.kind == kind and run.parameters == parameters:
                run.state, run.flow_run_id, run.error = RunState.RUNNING, flow_run_id, None
                run.lease_expires_at = lease
                run.sqlmodel_update(details or {})
                db.add(run)
                _close_abandoned_attempts(db, run.id, flow_run_id)
                return run
            run.state = RunState.SUPERSEDED
            db.add(run)
        model = db.get(CatalogModel, model_id)
        assert model is not None
        if model.serving_status == target:
            raise InputError(f"{model.id} is already {target.value}; there is nothing to do.")
        try:
            check_move(ServingStatus(model.serving_status), target, kind)
        except GuardRefused as exc:
            raise InputError(str(exc)) from None
        run = DeprecationRun(
            model_id=model_id,
            kind=kind,
            parameters=parameters,
            flow_run_id=flow_run_id,
            lease_expires_at=lease,
            **(details or {}),
        )
        db.add(run)
        return run


def _close_abandoned_attempts(db: Session, run_id: str, flow_run_id: str | None) -> None:
    # An attempt still marked running belongs to a process that stopped without closing it
    # (its lease lapsed): say so, instead of leaving it running in the record for ever.
    abandoned = db.exec(
        select(StepAttempt).where(
            StepAttempt.run_id == run_id, StepAttempt.state == AttemptState.RUNNING
        )
    )
    for attempt in abandoned:
        attempt.state, attempt.finished_at = AttemptState.FAILED, utcnow()
        attempt.error = (
            "Abandoned: the process running this attempt stopped before it finished; "
            f"the run was resumed by flow run {flow_run_id}."
        )
        db.add(attempt)


@contextmanager
def run_lease(ledger: Ledger, run_id: str, lease_seconds: int) -> Iterator[None]:
    """Keep renewing the run's lease from a background thread while the block runs."""
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(lease_seconds / 3):
            with ledger.session() as db:
                run = db.get(DeprecationRun, run_id)
                if run is not None and run.state == RunState.RUNNING:
                    run.lease_expires_at = utcnow() + timedelta(seconds=lease_seconds)
                    db.add(run)

    thread = threading.Thread(target=renew, name=f"lease-{run_id[:8]}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def record_announcement(ledger: Ledger, notice: Notice) -> None:
    """Write the announced dates into the catalog, once the notices are out."""
    with ledger.session() as db:
        model = db.get(CatalogModel, notice.model.id)
        assert model is not None
        model.deprecation_announced_on = notice.announced_on
        model.retirement_on = notice.retirement_on
        db.add(model)


def finish_run(ledger: Ledger, run_id: str, *, error: str | None = None) -> None:
    """Mark a run completed, or failed with the error that stopped it.

    A run an approver rejected stays rejected: it ended as it should.
    """
    with ledger.session() as db:
        run = db.get(DeprecationRun, run_id)
        assert run is not None
        if run.state == RunState.REJECTED:
            return
        run.state = RunState.FAILED if error else RunState.COMPLETED
        run.error, run.finished_at, run.lease_expires_at = error, utcnow(), None
        db.add(run)


def target_status(request: DeprecationRequest) -> ServingStatus:
    return RETIRED if request.retire else DEPRECATED


def begin_deprecation(
    ledger: Ledger,
    validated: ValidatedRequest,
    *,
    flow_run_id: str | None,
    lease_seconds: int,
    requested_by: str | None,
    orchestrator_lease_id: str | None = None,
) -> DeprecationRun:
    """Start or resume the deprecation run of a validated request.

    ``orchestrator_lease_id`` is the lease this process holds on the model's one
    deprecation slot, recorded so that whoever resumes the run after a crash can free it.
    """
    request = validated.request
    return begin_run(
        ledger,
        model_id=request.model_id,
        kind=DEPRECATION,
        parameters=request.parameters(),
        target=target_status(request),
        flow_run_id=flow_run_id,
        lease_seconds=lease_seconds,
        details={"requested_by": requested_by, "orchestrator_lease_id": orchestrator_lease_id}
        | validated.terms.columns(),
    )


def take_abandoned_orchestrator_leases(ledger: Ledger, model_id: str) -> list[str]:
    """Orchestrator leases recorded by runs of the model whose process has died, forgotten
    as they are returned (whoever takes them frees them).

    A run is abandoned when it is still marked running but its ledger lease (renewed while
    its process lives) has lapsed: that process holds nothing any more, whatever the
    orchestrator believes.
    """
    now = utcnow()
    taken: list[str] = []
    with ledger.session() as db:
        runs = db.exec(
            select(DeprecationRun).where(
                DeprecationRun.model_id == model_id,
                DeprecationRun.state == RunState.RUNNING,
                col(DeprecationRun.orchestrator_lease_id).is_not(None),
            )
        ).all()
        for run in runs:
            if run.orchestrator_lease_id and (
                run.lease_expires_at is None or run.lease_expires_at <= now
            ):
                taken.append(run.orchestrator_lease_id)
                run.orchestrator_lease_id = None
                db.add(run)
    return taken
