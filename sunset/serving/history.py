"""A model's serving history, read from the ledger alone: every recorded status
transition, and the status the model had at a past moment.

Apart from the guards that make the transitions (``guards.py``, which talk to the
gateway), so that `sunset status` loads no HTTP client.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import col, select

from sunset.ledger import CatalogModel, Ledger, ServingStatus, StatusTransition


def status_at(ledger: Ledger, model_id: str, moment: datetime) -> ServingStatus | None:
    """The serving status ``model_id`` had at ``moment`` (None: not yet in the catalog)."""
    with ledger.session() as db:
        model = db.get(CatalogModel, model_id)
    if model is None or model.created_at > moment:
        return None
    effective = [t for t in history(ledger, model_id) if t.rolled_back_at is None]
    before = [t for t in effective if t.at <= moment]
    if before:
        return ServingStatus(before[-1].to_status)
    return ServingStatus(effective[0].from_status) if effective else model.serving_status


def history(ledger: Ledger, model_id: str) -> list[StatusTransition]:
    """Every recorded transition of the model, oldest first, rolled-back ones included."""
    with ledger.session() as db:
        return list(
            db.exec(
                select(StatusTransition)
                .where(StatusTransition.model_id == model_id)
                .order_by(col(StatusTransition.at), col(StatusTransition.id))
            )
        )
