"""The serving tables: every change of a model's serving status, and the approvals
given before one."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field

# The modules of the tables this one's foreign keys name: the package loads a domain only
# when first used, and a row cannot be written before the tables it refers to exist.
import sunset.ledger.runs  # noqa: F401
from sunset.ledger.catalog import ServingStatus
from sunset.ledger.models import LedgerTable, UTCDateTime, utcnow


class StatusTransition(LedgerTable, table=True):
    """A change of a model's serving status: who, when, why, and by which run."""

    __tablename__ = "status_transitions"

    id: int | None = Field(default=None, primary_key=True)
    model_id: str = Field(foreign_key="catalog_models.id", index=True, max_length=128)
    from_status: ServingStatus = Field(sa_type=sa.String(32))
    to_status: ServingStatus = Field(sa_type=sa.String(32))
    run_id: str | None = Field(default=None, foreign_key="deprecation_runs.id", max_length=32)
    actor: str
    reason: str
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # Set when the check after the flip failed and the flip was undone; such a transition
    # never took effect for users and does not count in the status history.
    rolled_back_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    rollback_reason: str | None = None


class Approval(LedgerTable, table=True):
    """An approver's decision on a paused run, before its serving status changes."""

    __tablename__ = "approvals"

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="deprecation_runs.id", index=True, max_length=32)
    flow_run_id: str | None = Field(default=None, max_length=64)
    target_status: ServingStatus = Field(sa_type=sa.String(32))
    approver: str = Field(max_length=200)  # the name the approver typed
    # Who ran the command: the Prefect account (prefect:<handle>) or the login on the
    # machine (login:<user>); empty for an answer given in the Prefect UI's form.
    approver_identity: str | None = Field(default=None, max_length=200)
    decision: str = Field(max_length=16)  # approve | reject
    reason: str
    counted: bool = True  # False for a second approval by the same person
    decided_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
