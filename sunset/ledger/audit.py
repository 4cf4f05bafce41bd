"""The audit's tables: each run of the preservation audit, every fixity check, whether
an audit, a verification or a repair made it, and the findings an audit keeps open until
a later check proves the object healthy again, and the attempts of an audit's steps."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import JSON, Column, Field

# The modules of the tables this one's foreign keys name: the package loads a domain only
# when first used, and a row cannot be written before the tables it refers to exist.
import sunset.ledger.preservation  # noqa: F401
from sunset.ledger.models import AttemptColumns, LedgerTable, UTCDateTime, new_id, utcnow


class AuditState(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"  # every object reached, no damage left unrepaired
    INCOMPLETE = "incomplete"  # a replica did not answer: what it holds is not known
    FAILED = "failed"  # an object has no good copy left, a lock could not be kept, or a crash


class FindingKind(StrEnum):
    DAMAGED = "damaged"  # bytes, size, ETag or lock differ from the record
    MISSING = "missing"  # the recorded version is gone, or a newer version hides it
    UNREACHABLE = "unreachable"  # the replica did not answer: nothing is known either way


class AuditRun(LedgerTable, table=True):
    """One run of the preservation audit: what it checked, repaired and extended."""

    __tablename__ = "audit_runs"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    flow_run_id: str | None = Field(default=None, max_length=64)
    # The Prefect flow run's name, audit-<date>: what alerts and `sunset audit` call it.
    name: str | None = Field(default=None, max_length=64)
    state: AuditState = Field(default=AuditState.RUNNING, sa_type=sa.String(32))
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    summary: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    error: str | None = None


class AuditAttempt(AttemptColumns, table=True):
    """One attempt of one step of an audit run, like ``StepAttempt`` for a deprecation."""

    __tablename__ = "audit_attempts"
    __table_args__ = (sa.UniqueConstraint("run_id", "step", "attempt"),)

    run_id: str = Field(foreign_key="audit_runs.id", index=True, max_length=32)


class FixityEvent(LedgerTable, table=True):
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


class AuditFinding(LedgerTable, table=True):
    """Something an audit found wrong with, or could not learn about, one object on one
    replica; open until a later check proves the object healthy (or a repair does).

    One open row per object and replica: a later audit that finds the same again moves
    ``last_audit_id`` forward instead of adding a row. An object that could not be
    reached keeps a damage finding as it was: not knowing is not news.
    """

    __tablename__ = "audit_findings"

    id: int | None = Field(default=None, primary_key=True)
    snapshot_id: str = Field(foreign_key="snapshots.id", index=True, max_length=128)
    replica: str = Field(max_length=64)
    path: str
    kind: FindingKind = Field(sa_type=sa.String(16))
    outcome: str = Field(max_length=16)  # the check's own outcome: mismatch, shadowed, ...
    detail: str | None = None
    first_audit_id: str = Field(foreign_key="audit_runs.id", max_length=32)
    first_found_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_audit_id: str = Field(foreign_key="audit_runs.id", max_length=32)
    last_found_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # How it ended: repaired (a new version written and re-checked) or healthy (found
    # intact by a later check); None while open.
    resolution: str | None = Field(default=None, max_length=16)
    resolution_detail: str | None = None
    closed_audit_id: str | None = Field(default=None, foreign_key="audit_runs.id", max_length=32)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
