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

from sqlmodel import Session, select

from sunset.errors import InputError, RunConflict
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
from sunset.notify.recipients import Recipient, load_recipients
from sunset.report.inputs import read_report_input
from sunset.weights import SourceFile, scan_weights_dir

PREFLIGHT_STEP = "preflight"
NOTIFY_STEP = "notify_users"
SNAPSHOT_STEP = "snapshot_weights"
VERIFY_STEP = "verify_preservation"
INTERVIEW_STEP = "run_interviews"
REPORT_STEP = "assemble_report"
FLIP_STEP = "flip_serving_status"

MODEL_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class DeprecationRequest:
    """What a release manager asks for; plain values, so it can travel as flow parameters."""

    model_id: str
    weights: str
    recipients: str
    retire: bool = False
    retirement_date: date | None = None
    protocol: str | None = None
    sessions: int = 1
    notice_override_reason: str | None = None
    deployment_summary: str | None = None
    operator_analysis: str | None = None

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
    retirement_on: date
    report_inputs: dict[str, str]


def check_model_id(model_id: str) -> str:
    """Refuse model ids that could escape a path or a shell."""
    if not MODEL_ID.match(model_id):
        raise InputError(
            f"Model id {model_id!r} is not valid: use 1-128 lowercase letters, digits, '.', "
            "'_' or '-', starting with a letter or digit."
        )
    return model_id


def validate_request(
    ledger: Ledger, request: DeprecationRequest, *, minimum_notice_days: int, today: date
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
    # Retiring means retiring now, unless a date was given; deprecating announces a date.
    default = today if request.retire else today + timedelta(days=minimum_notice_days)
    retirement_on = request.retirement_date or default
    announced_on = model.deprecation_announced_on or today
    notice_days = (retirement_on - announced_on).days
    override = (request.notice_override_reason or "").strip()  # blank is no reason
    if notice_days < minimum_notice_days and not override:
        raise InputError(
            f"Retirement on {retirement_on} gives users {notice_days} days of notice from the "
            f"announcement on {announced_on}, fewer than the required {minimum_notice_days}; "
            "choose a later --retirement-date, deprecate first and retire after the notice "
            "period, or pass --notice-override REASON to record why less notice is acceptable."
        )
    return ValidatedRequest(
        request=request,
        model=model,
        replacement=replacement,
        sources=scan_weights_dir(Path(request.weights)),
        recipients=load_recipients(Path(request.recipients)),
        protocol=load_protocol(Path(request.protocol) if request.protocol else None),
        retirement_on=retirement_on,
        report_inputs={
            kind: read_report_input(Path(path), kind)
            for kind, path in (
                ("deployment_summary", request.deployment_summary),
                ("operator_analysis", request.operator_analysis),
            )
            if path
        },
    )


def begin_run(
    ledger: Ledger, request: DeprecationRequest, *, flow_run_id: str | None, lease_seconds: int
) -> DeprecationRun:
    """Start a run for the request, or resume the unfinished one with the same parameters.

    Raises:
        RunConflict: another run for the same model holds a live lease.
    """
    parameters = request.parameters()
    now = utcnow()
    with ledger.session() as db:
        unfinished = db.exec(
            select(DeprecationRun).where(
                DeprecationRun.model_id == request.model_id,
                DeprecationRun.state.in_([RunState.RUNNING, RunState.FAILED]),  # type: ignore[attr-defined]
            )
        ).all()
        lease = now + timedelta(seconds=lease_seconds)
        for run in unfinished:
            held = run.lease_expires_at is not None and run.lease_expires_at > now
            if run.state == RunState.RUNNING and held and run.flow_run_id != flow_run_id:
                raise RunConflict(
                    f"Run {run.id} for {request.model_id} is still in progress (flow run "
                    f"{run.flow_run_id}); wait for it to finish, or, if its process died, "
                    f"retry after its lease lapses at {run.lease_expires_at:%H:%M:%S} UTC."
                )
            if run.parameters == parameters:
                run.state, run.flow_run_id, run.error = RunState.RUNNING, flow_run_id, None
                run.lease_expires_at = lease
                db.add(run)
                _close_abandoned_attempts(db, run.id, flow_run_id)
                return run
            run.state = RunState.SUPERSEDED
            db.add(run)
        model = db.get(CatalogModel, request.model_id)
        assert model is not None
        target = target_status(request)
        if model.serving_status == target or model.serving_status == ServingStatus.RETIRED:
            raise InputError(
                f"{model.id} is already {model.serving_status}; there is nothing to "
                f"{'retire' if request.retire else 'deprecate'}."
            )
        run = DeprecationRun(
            model_id=request.model_id,
            parameters=parameters,
            flow_run_id=flow_run_id,
            lease_expires_at=lease,
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


def record_announcement(ledger: Ledger, model_id: str, retirement_on: date, today: date) -> None:
    """Write the announced dates into the catalog, once the notices are out."""
    with ledger.session() as db:
        model = db.get(CatalogModel, model_id)
        assert model is not None
        model.deprecation_announced_on = model.deprecation_announced_on or today
        model.retirement_on = retirement_on
        db.add(model)


def finish_run(ledger: Ledger, run_id: str, *, error: str | None = None) -> None:
    """Mark a run completed, or failed with the error that stopped it."""
    with ledger.session() as db:
        run = db.get(DeprecationRun, run_id)
        assert run is not None
        run.state = RunState.FAILED if error else RunState.COMPLETED
        run.error, run.finished_at, run.lease_expires_at = error, utcnow(), None
        db.add(run)


def target_status(request: DeprecationRequest) -> ServingStatus:
    return ServingStatus.RETIRED if request.retire else ServingStatus.DEPRECATED
