"""A run's life in the ledger: begin or resume, hold the lease, finish.

One model has at most one live run. A run that stopped before it finished (a crash, a
failed step) is resumed by the next request with the same parameters: it keeps its id,
so every step finds the work it already did and does only the rest.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlmodel import Session, col, select

from sunset.errors import GuardRefused, InputError, NothingToDo, RunConflict
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
from sunset.runs.deprecation import attach_run
from sunset.runs.validation import ValidatedRequest, target_status
from sunset.serving.lifecycle import DEPRECATION, check_move


def begin_run(
    ledger: Ledger,
    *,
    model_id: str,
    kind: str,
    parameters: dict[str, Any],
    target: ServingStatus | None,
    flow_run_id: str | None,
    lease_seconds: int,
    details: dict[str, Any] | None = None,
) -> DeprecationRun:
    """Start a run, or resume the unfinished one of the same kind with the same parameters.

    ``target`` is the serving status the run moves the model to; None for a run that
    moves none (the cancellation of a deprecation nobody was told of). ``details`` are
    further columns of the run (who asked, the notice terms), written on a new run and
    refreshed on a resumed one.

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
        if target is not None:
            if model.serving_status == target:
                raise NothingToDo(f"{model.id} is already {target.value}; there is nothing to do.")
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


def load_run(ledger: Ledger, run_id: str) -> DeprecationRun:
    """The ledger's record of a run.

    Raises:
        InputError: no run has this id.
    """
    with ledger.session() as db:
        run = db.get(DeprecationRun, run_id)
    if run is None:
        raise InputError(f"No run {run_id} in the ledger; `sunset runs` lists them.")
    return run


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


def finish_run_of_flow_run(ledger: Ledger, flow_run_id: str, *, error: str | None) -> None:
    """Finish the run that the flow run drives, if it began one (one that stopped in
    preflight did not)."""
    with ledger.session() as db:
        run = db.exec(
            select(DeprecationRun).where(DeprecationRun.flow_run_id == flow_run_id)
        ).first()
    if run is not None:
        finish_run(ledger, run.id, error=error)


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
    run = begin_run(
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
    run.deprecation_id = attach_run(ledger, run.id, validated.retirement_on).id
    return run


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
