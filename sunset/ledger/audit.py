"""The audit's tables: each run of the preservation audit, its attempts, and every
fixity check, whether an audit, a verification or a repair made it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import JSON, Column, Field, SQLModel

from sunset.ledger.models import UTCDateTime, new_id, utcnow
from sunset.ledger.runs import AttemptColumns, RunState


class AuditRun(SQLModel, table=True):
    """One run of the preservation audit: what it checked, repaired and extended."""

    __tablename__ = "audit_runs"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    flow_run_id: str | None = Field(default=None, max_length=64)
    state: RunState = Field(default=RunState.RUNNING, sa_type=sa.String(32))
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    summary: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    error: str | None = None


class AuditAttempt(AttemptColumns, table=True):
    """One attempt of one step of an audit run, like ``StepAttempt`` for a deprecation."""

    __tablename__ = "audit_attempts"
    __table_args__ = (sa.UniqueConstraint("run_id", "step", "attempt"),)

    run_id: str = Field(foreign_key="audit_runs.id", index=True, max_length=32)


class FixityEvent(SQLModel, table=True):
    """One check of one stored file: what was checked, how, and what was found."""

    __tablename__ = "fixity_events"

    id: int | None = Field(default=None, primary_key=True)
    snapshot_id: str = Field(foreign_key="snapshots.id", index=True, max_length=128)
    run_id: str | None = Field(default=None, max_length=32)
    bucket: str = Field(max_length=63)
    path: str
    # fast: a version listing; deep: re-read, re-hashed, lock confirmed; repair; retention
    method: str = Field(max_length=16)
    bytes_read: int = Field(default=0, sa_type=sa.BigInteger)
    duration_s: float = 0.0
    outcome: str = Field(max_length=16)  # ok | mismatch | missing | shadowed | ... | failed
    detail: str | None = None
    checked_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    replica: str | None = Field(default=None, max_length=64)
    version_id: str | None = None
    audit_id: str | None = Field(default=None, foreign_key="audit_runs.id", max_length=32)
