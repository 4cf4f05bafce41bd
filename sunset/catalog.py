"""The model catalog: which models Sunset knows, and everything recorded about one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import func
from sqlmodel import col, select

from sunset.errors import InputError
from sunset.ledger import (
    Approval,
    CatalogModel,
    DeliverySummary,
    Deprecation,
    DeprecationRun,
    DrillEvent,
    Fingerprint,
    Ledger,
    Report,
    RunState,
    Snapshot,
    SnapshotFile,
    SnapshotState,
    StatusTransition,
)
from sunset.preservation.standing import is_verified, latest_fingerprint, latest_snapshot
from sunset.runs.deprecation import latest_deprecation, runs_of
from sunset.runs.request import check_model_id
from sunset.serving.history import history


@dataclass(frozen=True)
class PackageStanding:
    """How far a package got: the files stored of those it must hold, whether all were
    stored and its manifests written, whether it stands verified, and how its run ended."""

    snapshot: Snapshot
    files_stored: int
    files_expected: int
    stored: bool
    verified: bool
    run_state: RunState


@dataclass(frozen=True)
class DeprecationRecord:
    """A model's latest deprecation: its stage and dates, its package, and the runs that
    carry it (announcement, retirement), oldest first."""

    deprecation: Deprecation
    package: Snapshot | None
    runs: list[DeprecationRun]


@dataclass(frozen=True)
class ModelRecord:
    """A model's catalog entry with what its runs left: the latest package, its standing,
    report and fingerprint, the last drill, notices, approvals and status transitions, and
    its latest deprecation."""

    model: CatalogModel
    package: PackageStanding | None
    report: Report | None
    fingerprint: Fingerprint | None
    drill: DrillEvent | None
    deliveries: list[DeliverySummary]
    approvals: list[Approval]
    transitions: list[StatusTransition]
    deprecation: DeprecationRecord | None = None


def register_model(
    ledger: Ledger,
    model_id: str,
    *,
    display_name: str,
    released_on: date | None = None,
    replacement_id: str | None = None,
    weights_source: str | None = None,
    model_class: str | None = None,
) -> CatalogModel:
    """Add an active model to the catalog.

    Raises:
        InputError: the id is invalid or taken, or the replacement is not in the catalog.
    """
    check_model_id(model_id)
    with ledger.session() as db:
        if db.get(CatalogModel, model_id) is not None:
            raise InputError(f"{model_id} is already in the catalog.")
        if replacement_id and db.get(CatalogModel, replacement_id) is None:
            raise InputError(
                f"Replacement {replacement_id!r} is not in the catalog; register it first."
            )
        model = CatalogModel(
            id=model_id,
            display_name=display_name,
            released_on=released_on,
            replacement_id=replacement_id,
            weights_source=weights_source,
            model_class=model_class,
        )
        db.add(model)
    return model


def find_model(ledger: Ledger, model_id: str) -> CatalogModel | None:
    """The model's catalog entry, or None if it is not in the catalog."""
    with ledger.session() as db:
        return db.get(CatalogModel, model_id)


def list_models(ledger: Ledger) -> list[CatalogModel]:
    """Every model in the catalog, by id."""
    with ledger.session() as db:
        return list(db.exec(select(CatalogModel).order_by(col(CatalogModel.id))))


def model_record(ledger: Ledger, model_id: str) -> ModelRecord:
    """Everything recorded about one model.

    Raises:
        InputError: the model is not in the catalog.
    """
    with ledger.session() as db:
        model = db.get(CatalogModel, model_id)
        if model is None:
            raise InputError(f"Model {model_id!r} is not in the catalog.")
        snapshot = latest_snapshot(db, model_id)
        runs = select(DeprecationRun.id).where(DeprecationRun.model_id == model_id)
        deliveries = db.exec(
            select(DeliverySummary).where(col(DeliverySummary.run_id).in_(runs))
        ).all()
        approvals = db.exec(
            select(Approval)
            .where(col(Approval.run_id).in_(runs))
            .order_by(col(Approval.decided_at))
        ).all()
        report = fingerprint = None
        if snapshot is not None:
            report = db.exec(
                select(Report)
                .where(Report.snapshot_id == snapshot.id)
                .order_by(col(Report.version).desc())
            ).first()
            fingerprint = latest_fingerprint(db, snapshot.id)
        drill = db.exec(
            select(DrillEvent)
            .where(DrillEvent.model_id == model_id)
            .order_by(col(DrillEvent.finished_at).desc())
        ).first()
    return ModelRecord(
        model=model,
        package=None if snapshot is None else package_standing(ledger, snapshot),
        report=report,
        fingerprint=fingerprint,
        drill=drill,
        deliveries=list(deliveries),
        approvals=list(approvals),
        transitions=history(ledger, model_id),
        deprecation=deprecation_record(ledger, model_id),
    )


def deprecation_record(ledger: Ledger, model_id: str) -> DeprecationRecord | None:
    """The model's latest deprecation with its package and runs; None if it has none."""
    deprecation = latest_deprecation(ledger, model_id)
    if deprecation is None:
        return None
    with ledger.session() as db:
        package = db.get(Snapshot, deprecation.snapshot_id) if deprecation.snapshot_id else None
    return DeprecationRecord(deprecation, package, runs_of(ledger, deprecation.id))


def package_standing(ledger: Ledger, snapshot: Snapshot) -> PackageStanding:
    """How far ``snapshot`` got: only a package whose files were all stored and whose
    every object passed its latest checks on every replica is verified."""
    with ledger.session() as db:
        files_stored = db.exec(
            select(func.count())
            .select_from(SnapshotFile)
            .where(SnapshotFile.snapshot_id == snapshot.id)
        ).one()
        run = db.get(DeprecationRun, snapshot.run_id)
        assert run is not None  # a snapshot's run is a foreign key
    stored = snapshot.state == SnapshotState.STORED
    return PackageStanding(
        snapshot=snapshot,
        files_stored=files_stored,
        files_expected=snapshot.file_count,
        stored=stored,
        verified=stored and is_verified(ledger, snapshot.id),
        run_state=run.state,
    )
