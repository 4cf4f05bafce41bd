"""A deprecation's record: which one a run carries forward, its package, its stage.

A model has at most one deprecation in progress (planned or announced). A deprecation run
joins it, or opens one when there is none; the announcement makes it announced; the first
package a run of it stores and verifies becomes its package, which every later run reuses
(unless the release manager asks a later run for a new one, with a reason); its runs
share one interview; the retirement, a reinstatement or a cancellation moves it on.
Everything a run did can be found from the deprecation: its runs, its package, its
interview, its recipients and date changes (``sunset.runs.notice_record``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import TYPE_CHECKING

from sqlmodel import Session, col, select

from sunset.errors import InputError
from sunset.ledger import (
    CatalogModel,
    Deprecation,
    DeprecationRun,
    DeprecationStage,
    Ledger,
    Snapshot,
    utcnow,
)
from sunset.serving.lifecycle import DEPRECATION

if TYPE_CHECKING:
    from sunset.ledger import InterviewSession

IN_PROGRESS = (DeprecationStage.PLANNED, DeprecationStage.ANNOUNCED)


def in_progress(db: Session, model_id: str) -> Deprecation | None:
    """The model's deprecation that is planned or announced, if there is one."""
    return db.exec(
        select(Deprecation)
        .where(Deprecation.model_id == model_id, col(Deprecation.stage).in_(IN_PROGRESS))
        .order_by(col(Deprecation.opened_at).desc())
    ).first()


def latest_deprecation(ledger: Ledger, model_id: str) -> Deprecation | None:
    """The model's most recent deprecation, whatever its stage."""
    with ledger.session() as db:
        return db.exec(
            select(Deprecation)
            .where(Deprecation.model_id == model_id)
            .order_by(col(Deprecation.opened_at).desc())
        ).first()


def attach_run(ledger: Ledger, run_id: str, retirement_on: date) -> Deprecation:
    """Make the run a step of the model's deprecation in progress, opening a planned one
    when there is none. A run already attached keeps its deprecation (a resumed run).

    While nobody has been told, the planned date follows the latest request; once the
    deprecation is announced its date changes only through a recorded date change.
    """
    with ledger.session() as db:
        run = db.get(DeprecationRun, run_id)
        assert run is not None
        if run.deprecation_id is not None:
            attached = db.get(Deprecation, run.deprecation_id)
            assert attached is not None
            return attached
        model = db.get(CatalogModel, run.model_id)
        assert model is not None
        deprecation = in_progress(db, run.model_id) or Deprecation(
            model_id=run.model_id, retirement_on=retirement_on
        )
        if deprecation.stage == DeprecationStage.PLANNED:
            deprecation.retirement_on = retirement_on
            deprecation.replacement_id = model.replacement_id
        deprecation.updated_at = utcnow()
        db.add(deprecation)
        db.flush()
        run.deprecation_id = deprecation.id
        db.add(run)
        db.refresh(deprecation)
        return deprecation


def deprecation_of_run(ledger: Ledger, run_id: str) -> Deprecation:
    """The deprecation a run belongs to.

    Raises:
        InputError: the run is not a step of any deprecation.
    """
    with ledger.session() as db:
        run = db.get(DeprecationRun, run_id)
        deprecation = (
            db.get(Deprecation, run.deprecation_id) if run and run.deprecation_id else None
        )
    if deprecation is None:
        raise InputError(f"Run {run_id} belongs to no deprecation; `sunset runs` lists them.")
    return deprecation


def runs_of(ledger: Ledger, deprecation_id: str) -> list[DeprecationRun]:
    """The deprecation's runs, oldest first."""
    with ledger.session() as db:
        return list(
            db.exec(
                select(DeprecationRun)
                .where(DeprecationRun.deprecation_id == deprecation_id)
                .order_by(col(DeprecationRun.started_at))
            ).all()
        )


def package_of_run(ledger: Ledger, run_id: str) -> Snapshot:
    """The package a run works on: its deprecation's package, or the one it is making.

    Raises:
        InputError: neither the run nor its deprecation has a package yet.
    """
    with ledger.session() as db:
        run = db.get(DeprecationRun, run_id)
        deprecation = (
            db.get(Deprecation, run.deprecation_id) if run and run.deprecation_id else None
        )
        snapshot = (
            db.get(Snapshot, deprecation.snapshot_id)
            if deprecation and deprecation.snapshot_id
            else db.exec(select(Snapshot).where(Snapshot.run_id == run_id)).first()
        )
    if snapshot is None:
        raise InputError(f"Run {run_id} has no preservation package yet; snapshot it first.")
    return snapshot


def record_package(ledger: Ledger, run_id: str, snapshot_id: str) -> None:
    """Once a run verified a package, make it the run's deprecation's package: the first
    one stored, or a new one the release manager asked this run for (with a reason), in
    place of the earlier one. A package the run reuses is the deprecation's already."""
    with ledger.session() as db:
        run = db.get(DeprecationRun, run_id)
        snapshot = db.get(Snapshot, snapshot_id)
        assert run is not None and snapshot is not None
        deprecation = db.get(Deprecation, run.deprecation_id) if run.deprecation_id else None
        if deprecation is None or deprecation.snapshot_id == snapshot_id:
            return
        if deprecation.snapshot_id is None or (
            snapshot.run_id == run_id and new_snapshot_reason(run) is not None
        ):
            deprecation.snapshot_id, deprecation.updated_at = snapshot_id, utcnow()
            db.add(deprecation)


def continued(db: Session, model_id: str) -> Deprecation | None:
    """The deprecation a request for the model continues: the one in progress, or a
    retired one (only a retirement run resumed after its flip continues that; any other
    request for a retired model is refused when its run would begin)."""
    latest = db.exec(
        select(Deprecation)
        .where(Deprecation.model_id == model_id)
        .order_by(col(Deprecation.opened_at).desc())
    ).first()
    if latest is None or latest.stage not in (*IN_PROGRESS, DeprecationStage.RETIRED):
        return None
    return latest


def package_in_force(db: Session, model_id: str) -> Snapshot | None:
    """The package of the deprecation a request for the model continues, if it has one."""
    deprecation = continued(db, model_id)
    if deprecation is None or deprecation.snapshot_id is None:
        return None
    return db.get(Snapshot, deprecation.snapshot_id)


def package_to_reuse(ledger: Ledger, run_id: str) -> Snapshot | None:
    """The package a run takes over from an earlier run of its deprecation instead of
    making one; None when the run makes its own: the deprecation has no package yet, the
    run made it, or the release manager asked this run for a new one."""
    with ledger.session() as db:
        run = db.get(DeprecationRun, run_id)
        assert run is not None
        deprecation = db.get(Deprecation, run.deprecation_id) if run.deprecation_id else None
        if deprecation is None or deprecation.snapshot_id is None:
            return None
        snapshot = db.get(Snapshot, deprecation.snapshot_id)
        assert snapshot is not None
    if snapshot.run_id == run_id or new_snapshot_reason(run) is not None:
        return None
    return snapshot


def new_snapshot_reason(run: DeprecationRun) -> str | None:
    """Why the release manager asked this run for a new package, if they did."""
    reason = run.parameters.get("new_snapshot_reason")
    return str(reason) if reason else None


def run_purpose(run: DeprecationRun) -> str:
    """What a run did for its deprecation, in one word: announce, retire or reinstate."""
    if run.kind != DEPRECATION:
        return "reinstate"
    return "retire" if run.parameters.get("retire") else "announce"


def fellow_run_ids(db: Session, run_id: str) -> list[str]:
    """The ids of the runs of the run's deprecation, oldest first; just its own when it
    belongs to none (a run begun outside a deprecation)."""
    run = db.get(DeprecationRun, run_id)
    if run is None or run.deprecation_id is None:
        return [run_id]
    return list(
        db.exec(
            select(DeprecationRun.id)
            .where(DeprecationRun.deprecation_id == run.deprecation_id)
            .order_by(col(DeprecationRun.started_at))
        ).all()
    )


def interview_of(
    db: Session, run_ids: Iterable[str], as_of: datetime | None = None
) -> list[InterviewSession]:
    """The deprecation's one interview: the sessions its runs held (begun by ``as_of``),
    by session index.

    Ledgers from before one interview per deprecation can hold a session index twice
    (each run interviewed anew): the later session stands for that index.
    """
    # Here, not at the top: `sunset status` reads deprecations but not interviews, and
    # building the interview's tables costs it about 25 ms.
    from sunset.ledger import InterviewSession

    query = select(InterviewSession).where(col(InterviewSession.run_id).in_(list(run_ids)))
    if as_of is not None:
        query = query.where(col(InterviewSession.started_at) <= as_of)
    by_index = {
        session.session_index: session
        for session in db.exec(query.order_by(col(InterviewSession.started_at)))
    }
    return [by_index[index] for index in sorted(by_index)]


def mark_announced(ledger: Ledger, deprecation_id: str, announced_on: date) -> None:
    """The announcement went out: the deprecation is announced from that day on."""
    with ledger.session() as db:
        deprecation = db.get(Deprecation, deprecation_id)
        assert deprecation is not None
        if deprecation.stage == DeprecationStage.PLANNED:
            deprecation.stage = DeprecationStage.ANNOUNCED
            deprecation.announced_on = announced_on
            deprecation.updated_at = utcnow()
            db.add(deprecation)


def move_stage(
    ledger: Ledger, deprecation_id: str, stage: DeprecationStage, reason: str | None = None
) -> None:
    """Move the deprecation to a later stage (retired, on request, reinstated, cancelled)."""
    with ledger.session() as db:
        deprecation = db.get(Deprecation, deprecation_id)
        assert deprecation is not None
        deprecation.stage, deprecation.updated_at = stage, utcnow()
        if reason is not None:
            deprecation.reason = reason
        db.add(deprecation)


def record_in_catalog(ledger: Ledger, deprecation_id: str) -> None:
    """Show the deprecation's dates in the catalog: the announcement and the retirement
    date users were last told, or none once it is cancelled."""
    with ledger.session() as db:
        deprecation = db.get(Deprecation, deprecation_id)
        assert deprecation is not None
        model = db.get(CatalogModel, deprecation.model_id)
        assert model is not None
        if deprecation.stage == DeprecationStage.CANCELLED:
            model.deprecation_announced_on = model.retirement_on = None
        elif deprecation.stage != DeprecationStage.PLANNED:
            model.deprecation_announced_on = deprecation.announced_on
            model.retirement_on = deprecation.retirement_on
        db.add(model)
