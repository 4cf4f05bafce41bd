"""The ledger's tables: what Sunset knows, and the record of everything it did.

Rows are appended or moved forward, never silently rewritten: a step attempt, a
delivery, an interview turn or a status transition, once recorded, stays as it was.
Timestamps are UTC; ``UTCDateTime`` keeps them aware on SQLite as on PostgreSQL.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import JSON, Column, Field, SQLModel


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def new_id() -> str:
    """A fresh random identifier for a row."""
    return uuid.uuid4().hex


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Stores aware datetimes as naive UTC and returns them aware again."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the ledger; use sunset.ledger.utcnow()")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class ServingStatus(StrEnum):
    ACTIVE = "active"
    DEPRECATED = "deprecated"
    RETIRED = "retired"


class RunState(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    SUPERSEDED = "superseded"


class AttemptState(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class CatalogModel(SQLModel, table=True):
    """A model in the catalog, with its serving status and its dates."""

    __tablename__ = "catalog_models"

    id: str = Field(primary_key=True, max_length=128)
    display_name: str
    serving_status: ServingStatus = Field(default=ServingStatus.ACTIVE, sa_type=sa.String(32))
    released_on: date | None = None
    deprecation_announced_on: date | None = None
    retirement_on: date | None = None
    replacement_id: str | None = Field(default=None, max_length=128)
    weights_source: str | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class DeprecationRun(SQLModel, table=True):
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


class StepAttempt(SQLModel, table=True):
    """One attempt of one step of a run, failed ones with their error."""

    __tablename__ = "step_attempts"
    __table_args__ = (sa.UniqueConstraint("run_id", "step", "attempt"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="deprecation_runs.id", index=True, max_length=32)
    step: str = Field(max_length=64)
    attempt: int
    flow_run_id: str | None = Field(default=None, max_length=64)
    state: AttemptState = Field(default=AttemptState.RUNNING, sa_type=sa.String(32))
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    summary: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    error: str | None = None


class Delivery(SQLModel, table=True):
    """A notice to one recipient on one channel; the unique key makes it happen once."""

    __tablename__ = "deliveries"
    __table_args__ = (sa.UniqueConstraint("model_id", "notice_key", "recipient", "channel"),)

    id: int | None = Field(default=None, primary_key=True)
    model_id: str = Field(foreign_key="catalog_models.id", index=True, max_length=128)
    notice_key: str = Field(max_length=128)
    run_id: str = Field(foreign_key="deprecation_runs.id", max_length=32)
    recipient: str = Field(max_length=320)
    channel: str = Field(max_length=16)
    message_id: str = Field(max_length=255)
    state: str = Field(max_length=16)  # pending -> sent | failed
    attempts: int = 0
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    error: str | None = None


class Snapshot(SQLModel, table=True):
    """A preservation package of a model's weights in the object store."""

    __tablename__ = "snapshots"

    id: str = Field(primary_key=True, max_length=128)
    run_id: str = Field(foreign_key="deprecation_runs.id", index=True, max_length=32)
    model_id: str = Field(foreign_key="catalog_models.id", index=True, max_length=128)
    endpoint: str
    bucket: str = Field(max_length=63)
    prefix: str
    state: str = Field(default="uploading", max_length=16)  # uploading -> stored
    file_count: int = 0
    payload_bytes: int = 0
    manifest_sha256: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    stored_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class SnapshotFile(SQLModel, table=True):
    """One file of a package as stored: its digests and the object version holding it."""

    __tablename__ = "snapshot_files"
    __table_args__ = (sa.UniqueConstraint("snapshot_id", "path"),)

    id: int | None = Field(default=None, primary_key=True)
    snapshot_id: str = Field(foreign_key="snapshots.id", index=True, max_length=128)
    path: str
    size: int = Field(sa_type=sa.BigInteger)
    sha256: str = Field(max_length=64)
    sha512: str = Field(max_length=128)
    crc64nvme: str = Field(max_length=16)
    version_id: str | None = None
    stored_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class FixityEvent(SQLModel, table=True):
    """One check of one stored file: what was checked, how, and what was found."""

    __tablename__ = "fixity_events"

    id: int | None = Field(default=None, primary_key=True)
    snapshot_id: str = Field(foreign_key="snapshots.id", index=True, max_length=128)
    run_id: str | None = Field(default=None, max_length=32)
    bucket: str = Field(max_length=63)
    path: str
    method: str = Field(max_length=16)  # deep: re-read and re-hashed
    bytes_read: int = Field(default=0, sa_type=sa.BigInteger)
    duration_s: float = 0.0
    outcome: str = Field(max_length=16)  # ok | mismatch | missing
    detail: str | None = None
    checked_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class InterviewSession(SQLModel, table=True):
    """One conversation with the model under one protocol."""

    __tablename__ = "interview_sessions"
    __table_args__ = (sa.UniqueConstraint("run_id", "session_index"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    run_id: str = Field(foreign_key="deprecation_runs.id", index=True, max_length=32)
    model_id: str = Field(foreign_key="catalog_models.id", max_length=128)
    session_index: int
    protocol_name: str
    protocol_version: str = Field(max_length=64)
    protocol_sha256: str = Field(max_length=64)
    state: str = Field(default="running", max_length=16)  # running -> completed
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class InterviewTurn(SQLModel, table=True):
    """One question and the model's answer exactly as the API returned it."""

    __tablename__ = "interview_turns"
    __table_args__ = (sa.UniqueConstraint("session_id", "seq"),)

    id: int | None = Field(default=None, primary_key=True)
    session_id: str = Field(foreign_key="interview_sessions.id", index=True, max_length=32)
    seq: int
    question_id: str = Field(max_length=128)
    question: str
    request_sha256: str = Field(max_length=64)
    response_body: str  # the HTTP response body, verbatim
    answer_text: str
    responding_model: str
    stop_reason: str | None = Field(default=None, max_length=32)
    request_id: str | None = None
    retries: int = 0
    latency_s: float
    sdk_version: str = Field(max_length=32)
    asked_at: datetime = Field(sa_type=UTCDateTime)
    answered_at: datetime = Field(sa_type=UTCDateTime)
    flagged: str | None = Field(default=None, max_length=32)  # max_tokens | refusal


class Report(SQLModel, table=True):
    """A version of a run's post-deployment report, sealed into the package."""

    __tablename__ = "reports"
    __table_args__ = (sa.UniqueConstraint("run_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="deprecation_runs.id", index=True, max_length=32)
    snapshot_id: str = Field(foreign_key="snapshots.id", max_length=128)
    version: int
    key: str
    sha256: str = Field(max_length=64)
    local_path: str
    sealed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class StatusTransition(SQLModel, table=True):
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


class ReportInput(SQLModel, table=True):
    """Text people supplied for a run's report: the release manager's deployment summary or
    the operators' analysis. Kept verbatim; a newer input of a kind supersedes the older."""

    __tablename__ = "report_inputs"

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="deprecation_runs.id", index=True, max_length=32)
    kind: str = Field(max_length=32)  # deployment_summary | operator_analysis
    text: str
    sha256: str = Field(max_length=64)
    supplied_by: str
    supplied_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Fingerprint(SQLModel, table=True):
    """A model's greedy outputs for fixed prompts, recorded at deprecation from the weights
    being preserved and sealed in the package, for resurrection drills to reproduce."""

    __tablename__ = "fingerprints"

    id: int | None = Field(default=None, primary_key=True)
    snapshot_id: str = Field(foreign_key="snapshots.id", index=True, max_length=128)
    run_id: str = Field(foreign_key="deprecation_runs.id", max_length=32)
    path: str  # inside the package
    sha256: str = Field(max_length=64)
    weights_file: str
    max_new_tokens: int
    runtime: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    # id, user prompt, output text and stop reason of each prompt (token ids: in the file)
    prompts: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class DrillEvent(SQLModel, table=True):
    """One resurrection drill: a package restored from a replica into a fresh directory,
    checked against its manifest, its model loaded from the restored files alone and its
    fingerprint replayed. ``run_id`` is set when the drill was part of a deprecation run."""

    __tablename__ = "drill_events"

    id: int | None = Field(default=None, primary_key=True)
    model_id: str = Field(foreign_key="catalog_models.id", index=True, max_length=128)
    snapshot_id: str = Field(foreign_key="snapshots.id", index=True, max_length=128)
    run_id: str | None = Field(default=None, foreign_key="deprecation_runs.id", max_length=32)
    endpoint: str
    bucket: str = Field(max_length=63)
    outcome: str = Field(max_length=16)  # passed | failed | error
    detail: str | None = None
    files_restored: int = 0
    bytes_restored: int = Field(default=0, sa_type=sa.BigInteger)
    prompts_checked: int = 0
    prompts_matched: int = 0
    mismatched_prompts: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    runtime: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    restore_s: float = 0.0
    load_s: float = 0.0
    replay_s: float = 0.0
    started_at: datetime = Field(sa_type=UTCDateTime)
    finished_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
