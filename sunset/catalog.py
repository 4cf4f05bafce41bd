"""The model catalog: which models Sunset knows, and everything recorded about one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlmodel import col, select

from sunset.errors import InputError
from sunset.ledger import (
    Approval,
    CatalogModel,
    DeliverySummary,
    DeprecationRun,
    DrillEvent,
    Fingerprint,
    Ledger,
    Report,
    Snapshot,
    StatusTransition,
)
from sunset.preservation.fingerprint import latest_fingerprint
from sunset.runs.request import check_model_id
from sunset.serving.guards import history, latest_snapshot


@dataclass(frozen=True)
class ModelRecord:
    """A model's catalog entry with what its runs left: the latest package and its report
    and fingerprint, the last drill, notices, approvals and status transitions."""

    model: CatalogModel
    snapshot: Snapshot | None
    report: Report | None
    fingerprint: Fingerprint | None
    drill: DrillEvent | None
    deliveries: list[DeliverySummary]
    approvals: list[Approval]
    transitions: list[StatusTransition]


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
        snapshot=snapshot,
        report=report,
        fingerprint=fingerprint,
        drill=drill,
        deliveries=list(deliveries),
        approvals=list(approvals),
        transitions=history(ledger, model_id),
    )
