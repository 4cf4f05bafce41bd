"""Changing the serving status: guarded, recorded, and undone when the check after it fails.

The moves themselves are the state machine in ``sunset.serving.lifecycle``. On top of it:

* every flip comes from a live run: in progress, holding its lease (not stale), not
  failed, superseded or rejected;
* deprecated only once the run's notices went out and its package (the one it made, or
  its deprecation's, which it reuses) verified;
* retired only once the package (the deprecation's, else the model's latest) passed
  verification and the report is sealed in that package (its users are told after the
  flip, when it is true), and no notice of the deprecation is of unknown delivery
  without a recorded decision (``sunset.runs.deliveries``);
* active or on_request (reinstatement) only once the run restored the snapshot and
  checked every restored file against the manifest;
* active again (cancellation) only while the run's deprecation is still in progress.

Each flip is a ``status_transitions`` row (who, when, why, which run). A flip whose
check failed is marked rolled back: it never took effect for users, and ``status_at``
(``sunset.serving.history``) skips it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, select

from sunset.errors import GatewayError, GuardRefused
from sunset.ledger import (
    Approval,
    AttemptState,
    CatalogModel,
    Deprecation,
    DeprecationRun,
    DeprecationStage,
    Ledger,
    Report,
    Restoration,
    RestorationState,
    RunState,
    ServingStatus,
    Snapshot,
    StatusTransition,
    StepAttempt,
    utcnow,
)
from sunset.preservation.standing import is_verified, latest_snapshot
from sunset.runs.deliveries import retirement_waits_sentence, unknown_deliveries
from sunset.runs.steps import NOTIFY_STEP
from sunset.serving.gateway import Route, ServingGateway, check_route
from sunset.serving.lifecycle import (
    CANCELLATION,
    DEPRECATED,
    DEPRECATION,
    RETIRED,
    check_move,
)


@dataclass(frozen=True)
class Flip:
    """A recorded status transition, in plain values."""

    transition_id: int
    run_id: str
    model_id: str
    from_status: ServingStatus
    to_status: ServingStatus

    @classmethod
    def of(cls, transition: StatusTransition) -> Flip:
        assert transition.id is not None and transition.run_id is not None
        return cls(
            transition.id,
            transition.run_id,
            transition.model_id,
            ServingStatus(transition.from_status),
            ServingStatus(transition.to_status),
        )


def flip_status(
    ledger: Ledger, *, run_id: str, target: ServingStatus, actor: str, reason: str
) -> Flip:
    """Move the run's model to ``target`` if every guard holds, and record the transition.

    A flip this run already made (and that was not rolled back) is returned as it is.

    Raises:
        GuardRefused: the run is not live, the move does not exist, or a precondition of
            the target does not hold. Nothing is changed.
    """
    with ledger.session() as db:
        run = _live_run(db, run_id)
        model = db.get(CatalogModel, run.model_id)
        assert model is not None
        done = _transition_by(db, model.id, run_id, target)
        if done is not None:  # a retried or resumed flip that already happened
            return Flip.of(done)
        current = ServingStatus(model.serving_status)
        check_move(current, target, run.kind)
        if run.kind == DEPRECATION:
            _guard_deprecation(ledger, db, run, model, target)
        elif run.kind == CANCELLATION:
            _guard_cancellation(db, run, model)
        else:
            _guard_reinstatement(ledger, db, run, model)
        transition = StatusTransition(
            model_id=model.id,
            from_status=current,
            to_status=target,
            run_id=run_id,
            actor=actor,
            reason=reason + _approved_by(db, run_id, target),
        )
        model.serving_status = target
        db.add(model)
        db.add(transition)
        db.flush()
        db.refresh(transition)
        return Flip.of(transition)


def rollback_flip(ledger: Ledger, transition_id: int, reason: str) -> None:
    """Undo a flip in the catalog and mark its transition rolled back (once)."""
    with ledger.session() as db:
        transition = db.get(StatusTransition, transition_id)
        assert transition is not None
        if transition.rolled_back_at is not None:
            return
        model = db.get(CatalogModel, transition.model_id)
        assert model is not None
        if model.serving_status == transition.to_status:
            model.serving_status = transition.from_status
            db.add(model)
        transition.rolled_back_at, transition.rollback_reason = utcnow(), reason
        db.add(transition)


def last_failure(ledger: Ledger, run_id: str) -> str | None:
    """The error of the run's most recent failed step attempt, if any."""
    with ledger.session() as db:
        failed = db.exec(
            select(StepAttempt)
            .where(StepAttempt.run_id == run_id, StepAttempt.state == AttemptState.FAILED)
            .order_by(StepAttempt.id.desc())  # type: ignore[union-attr]
        ).first()
    return failed.error if failed else None


def _live_run(db: Session, run_id: str) -> DeprecationRun:
    run = db.get(DeprecationRun, run_id)
    if run is None:
        raise GuardRefused(f"Run {run_id} is not in the ledger; no status was changed.")
    if run.state != RunState.RUNNING:
        raise GuardRefused(
            f"Run {run_id} is {run.state}; only a run in progress can change a serving status."
        )
    if run.lease_expires_at is None or run.lease_expires_at <= utcnow():
        raise GuardRefused(
            f"Run {run_id} is stale: no process has held it since "
            f"{run.lease_expires_at or run.started_at:%Y-%m-%d %H:%M:%S} UTC; start the same "
            "request again to resume it."
        )
    return run


def _guard_deprecation(
    ledger: Ledger, db: Session, run: DeprecationRun, model: CatalogModel, target: ServingStatus
) -> None:
    # A retirement is told after its flip held, when it is true.
    if target == DEPRECATED and not _step_completed(db, run.id, NOTIFY_STEP):
        raise GuardRefused(f"The notices for {model.id} have not all gone out in this run.")
    # The package is the deprecation's once one is recorded (a later run reuses it);
    # before that, the model's newest, which must be this run's.
    deprecation = db.get(Deprecation, run.deprecation_id) if run.deprecation_id else None
    recorded = deprecation.snapshot_id if deprecation else None
    snapshot = db.get(Snapshot, recorded) if recorded else latest_snapshot(db, model.id)
    if target == DEPRECATED and (snapshot is None or not (recorded or snapshot.run_id == run.id)):
        raise GuardRefused(
            f"{model.id} has no preservation package from this run; its status stays as it is."
        )
    if snapshot is None or not is_verified(ledger, snapshot.id):
        raise GuardRefused(
            f"The latest preservation package of {model.id} has not passed verification; "
            "its serving status stays as it is."
        )
    if target == RETIRED:
        sealed = db.exec(select(Report).where(Report.snapshot_id == snapshot.id)).first()
        if sealed is None:
            raise GuardRefused(
                f"{model.id} cannot be retired before its report is sealed in package "
                f"{snapshot.id}."
            )
        unknown = unknown_deliveries(ledger, deprecation_id=run.deprecation_id)
        if run.deprecation_id is not None and unknown:
            raise GuardRefused(retirement_waits_sentence(model.id, unknown))


def _guard_cancellation(db: Session, run: DeprecationRun, model: CatalogModel) -> None:
    deprecation = db.get(Deprecation, run.deprecation_id) if run.deprecation_id else None
    if deprecation is None or deprecation.stage not in (
        DeprecationStage.PLANNED,
        DeprecationStage.ANNOUNCED,
    ):
        raise GuardRefused(
            f"Run {run.id} cancels no deprecation of {model.id} in progress; its serving "
            "status stays as it is."
        )


def _guard_reinstatement(
    ledger: Ledger, db: Session, run: DeprecationRun, model: CatalogModel
) -> None:
    restoration = db.exec(
        select(Restoration).where(
            Restoration.run_id == run.id, Restoration.state == RestorationState.VERIFIED
        )
    ).first()
    if restoration is None:
        raise GuardRefused(
            f"{model.id} cannot be reinstated before this run restored its weights and "
            "checked every restored file against the manifest."
        )
    if not is_verified(ledger, restoration.snapshot_id):
        raise GuardRefused(
            f"Package {restoration.snapshot_id} of {model.id} has not passed verification; "
            "the model is not reinstated from it."
        )


def _approved_by(db: Session, run_id: str, target: ServingStatus) -> str:
    approvals = db.exec(
        select(Approval).where(
            Approval.run_id == run_id,
            Approval.target_status == target,
            Approval.decision == "approve",
            Approval.counted,
        )
    ).all()
    if not approvals:
        return ""
    return "; approved by " + ", ".join(f"{a.approver} ({a.reason})" for a in approvals)


def _transition_by(
    db: Session, model_id: str, run_id: str, target: ServingStatus
) -> StatusTransition | None:
    return db.exec(
        select(StatusTransition).where(
            StatusTransition.model_id == model_id,
            StatusTransition.run_id == run_id,
            StatusTransition.to_status == target,
            StatusTransition.rolled_back_at.is_(None),  # type: ignore[union-attr]
        )
    ).first()


def _step_completed(db: Session, run_id: str, step: str) -> bool:
    return (
        db.exec(
            select(StepAttempt).where(
                StepAttempt.run_id == run_id,
                StepAttempt.step == step,
                StepAttempt.state == AttemptState.COMPLETED,
            )
        ).first()
        is not None
    )


def apply_route(ledger: Ledger, gateway: ServingGateway, transition_id: int) -> Route | None:
    """Give the gateway the route of a flip; returns the route it had before (to undo)."""
    transition, model = _transition_and_model(ledger, transition_id)
    previous = gateway.read(model.id)
    gateway.write(model.id, Route(ServingStatus(transition.to_status), model.replacement_id))
    return previous


def check_flip(ledger: Ledger, gateway: ServingGateway, transition_id: int) -> None:
    """After a flip: the catalog and the gateway must both show the new status.

    Raises:
        GatewayError: either one shows something else.
    """
    transition, model = _transition_and_model(ledger, transition_id)
    target = ServingStatus(transition.to_status)
    if model.serving_status != target or transition.rolled_back_at is not None:
        raise GatewayError(
            f"After the flip, the catalog shows {model.id} as {model.serving_status}, not "
            f"{target.value}; the flip is rolled back."
        )
    check_route(gateway, model.id, Route(target, model.replacement_id))


def _transition_and_model(
    ledger: Ledger, transition_id: int
) -> tuple[StatusTransition, CatalogModel]:
    with ledger.session() as db:
        transition = db.get(StatusTransition, transition_id)
        assert transition is not None
        model = db.get(CatalogModel, transition.model_id)
        assert model is not None
    return transition, model
