"""The deprecation runs: each attempt to carry a deprecation forward (the attempts of
its steps are ``attempts``')."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import JSON, Column, Field

# The modules of the tables this one's foreign keys name: the package loads a domain only
# when first used, and a row cannot be written before the tables it refers to exist.
import sunset.ledger.catalog  # noqa: F401
import sunset.ledger.deprecation  # noqa: F401
from sunset.ledger.models import LedgerTable, UTCDateTime, new_id, utcnow


class RunState(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    SUPERSEDED = "superseded"
    REJECTED = "rejected"  # an approver said no; the serving status was left as it was


class DeprecationRun(LedgerTable, table=True):
    """One attempt to deprecate a model, possibly carried by several Prefect flow runs."""

    __tablename__ = "deprecation_runs"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    model_id: str = Field(foreign_key="catalog_models.id", index=True, max_length=128)
    parameters: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    flow_run_id: str | None = Field(default=None, max_length=64)
    state: RunState = Field(default=RunState.RUNNING, sa_type=sa.String(32))
    # Renewed while a process works on the run; once it lapses, the run may be resumed.
    lease_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    error: str | None = None
    kind: str = Field(default="deprecation", max_length=16)  # deprecation | reinstatement
    # The deprecation this run carries forward (announces, retires, reinstates).
    deprecation_id: str | None = Field(
        default=None, foreign_key="deprecations.id", index=True, max_length=32
    )
    requested_by: str | None = None
    # The retirement date and notice terms the run was admitted under (the report reads
    # them here); the override reason is set only when the notice was shorter than the
    # minimum and a release manager accepted that.
    retirement_on: date | None = None
    notice_days: int | None = None
    minimum_notice_days: int | None = None
    notice_override_reason: str | None = None
    # The orchestrator's lease on the model's one deprecation slot (a Prefect concurrency
    # lease), held by the process working on the run: a run resumed after that process
    # died frees the slot with it instead of waiting minutes for the lease to expire.
    orchestrator_lease_id: str | None = Field(default=None, max_length=64)
