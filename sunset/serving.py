"""The serving status: a small state machine whose every transition is guarded and recorded.

    active ──► deprecated ──► retired
       └──────────────────────►┘
    (reinstatement, back to active, is a later, separately guarded path)

A model is deprecated only after its notices went out and its package verified; it is
retired only when, in addition, the post-deployment report is sealed in the package.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, select

from sunset.errors import GuardRefused
from sunset.ledger import (
    AttemptState,
    CatalogModel,
    DeprecationRun,
    Ledger,
    Report,
    RunState,
    ServingStatus,
    Snapshot,
    StatusTransition,
    StepAttempt,
)
from sunset.preserve import is_verified
from sunset.runs import NOTIFY_STEP

ALLOWED = {
    ServingStatus.ACTIVE: {ServingStatus.DEPRECATED, ServingStatus.RETIRED},
    ServingStatus.DEPRECATED: {ServingStatus.RETIRED},
    ServingStatus.RETIRED: set(),
}


def flip_status(
    ledger: Ledger, *, run_id: str, target: ServingStatus, actor: str, reason: str
) -> StatusTransition:
    """Move the run's model to ``target`` if every guard holds, and record the transition.

    Raises:
        GuardRefused: the transition is not allowed from the current status, the run is
            not live, the notices did not all go out, the package is not verified, or
            (for retirement) the report is not sealed. Nothing is changed.
    """
    with ledger.session() as db:
        run = db.get(DeprecationRun, run_id)
        if run is None or run.state != RunState.RUNNING:
            raise GuardRefused(f"Run {run_id} is not in progress; only a live run can flip.")
        model = db.get(CatalogModel, run.model_id)
        assert model is not None
        current = ServingStatus(model.serving_status)
        done = _transition_by(db, model.id, run_id, target)
        if done is not None:  # a retried or resumed flip that already happened
            return done
        if target not in ALLOWED[current]:
            raise GuardRefused(
                f"{model.id} is {current.value}; it cannot move to {target.value} from there."
            )
        if not _step_completed(db, run_id, NOTIFY_STEP):
            raise GuardRefused(f"The notices for {model.id} have not all gone out in this run.")
        snapshot = db.exec(select(Snapshot).where(Snapshot.run_id == run_id)).first()
        if snapshot is None or not is_verified(ledger, snapshot.id):
            raise GuardRefused(
                f"{model.id} has no verified preservation package from this run; "
                "its serving status stays as it is."
            )
        if target == ServingStatus.RETIRED:
            sealed = db.exec(select(Report).where(Report.snapshot_id == snapshot.id)).first()
            if sealed is None:
                raise GuardRefused(
                    f"{model.id} cannot be retired before its report is sealed in the package."
                )
        transition = StatusTransition(
            model_id=model.id,
            from_status=current,
            to_status=target,
            run_id=run_id,
            actor=actor,
            reason=reason,
        )
        model.serving_status = target
        db.add(model)
        db.add(transition)
        return transition


def status_at(ledger: Ledger, model_id: str, moment: datetime) -> ServingStatus | None:
    """The serving status ``model_id`` had at ``moment``, from its recorded transitions."""
    with ledger.session() as db:
        model = db.get(CatalogModel, model_id)
        if model is None or model.created_at > moment:
            return None
        last = db.exec(
            select(StatusTransition)
            .where(StatusTransition.model_id == model_id, StatusTransition.at <= moment)
            .order_by(StatusTransition.at.desc(), StatusTransition.id.desc())  # type: ignore[union-attr]
        ).first()
        first = db.exec(
            select(StatusTransition)
            .where(StatusTransition.model_id == model_id)
            .order_by(StatusTransition.at, StatusTransition.id)
        ).first()
    if last is not None:
        return ServingStatus(last.to_status)
    return ServingStatus(first.from_status) if first else ServingStatus(model.serving_status)


def _transition_by(
    db: Session, model_id: str, run_id: str, target: ServingStatus
) -> StatusTransition | None:
    return db.exec(
        select(StatusTransition).where(
            StatusTransition.model_id == model_id,
            StatusTransition.run_id == run_id,
            StatusTransition.to_status == target,
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
