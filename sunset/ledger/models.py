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
    ON_REQUEST = "on_request"  # reinstated, but served only to those who ask for it


class RunState(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    SUPERSEDED = "superseded"
    REJECTED = "rejected"  # an approver said no; the serving status was left as it was


class PreferenceStatus(StrEnum):
    NOTED = "noted"
    ACTED_ON = "acted on"
    DECLINED = "declined"


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
    # Chooses the minimum notice period (Settings.minimum_notice_days_by_class).
    model_class: str | None = Field(default=None, max_length=64)


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
    kind: str = Field(default="deprecation", max_length=16)  # deprecation | reinstatement
    requested_by: str | None = None
    # The notice terms the run was admitted under (the report reads them here); the
    # override reason is set only when the notice was shorter than the minimum and a
    # release manager accepted that.
    retirement_on: date | None = None
    notice_days: int | None = None
    minimum_notice_days: int | None = None
    notice_override_reason: str | None = None
    # The orchestrator's lease on the model's one deprecation slot (a Prefect concurrency
    # lease), held by the process working on the run: a run resumed after that process
    # died frees the slot with it instead of waiting minutes for the lease to expire.
    orchestrator_lease_id: str | None = Field(default=None, max_length=64)


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
    # sending -> handover -> sent; or failed (retried), rejected (for good), unconfirmed
    # (the process died during the hand-over: it may have arrived, so it is not resent)
    state: str = Field(max_length=16)
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
    # The `anthropic-version` header the SDK sent; request_sha256 is over the exact body bytes.
    api_version: str | None = Field(default=None, max_length=32)


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
    # Set when the check after the flip failed and the flip was undone; such a transition
    # never took effect for users and does not count in the status history.
    rolled_back_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    rollback_reason: str | None = None


class ModelUser(SQLModel, table=True):
    """Someone who depends on a model, imported from a recipients CSV."""

    __tablename__ = "model_users"
    __table_args__ = (sa.UniqueConstraint("model_id", "email"),)

    id: int | None = Field(default=None, primary_key=True)
    model_id: str = Field(foreign_key="catalog_models.id", index=True, max_length=128)
    email: str = Field(max_length=320)
    name: str = Field(max_length=200)
    webhook_url: str | None = None
    usage: str | None = None
    imported_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class DeliverySummary(SQLModel, table=True):
    """Where a run's notices stand on one channel, rewritten after every notify attempt."""

    __tablename__ = "delivery_summaries"
    __table_args__ = (sa.UniqueConstraint("run_id", "channel"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="deprecation_runs.id", index=True, max_length=32)
    channel: str = Field(max_length=16)
    recipients: int  # recipients with an address on this channel
    sent: int  # delivered, by this run or an earlier one
    sent_before: int  # of those, delivered before this run's latest attempt (not resent)
    failed: int  # refused for good, or still failing after the latest attempt
    unconfirmed: int  # the hand-over was interrupted; not resent so nobody gets two
    skipped: int  # recipients with no address on this channel
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Approval(SQLModel, table=True):
    """An approver's decision on a paused run, before its serving status changes."""

    __tablename__ = "approvals"

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="deprecation_runs.id", index=True, max_length=32)
    flow_run_id: str | None = Field(default=None, max_length=64)
    target_status: ServingStatus = Field(sa_type=sa.String(32))
    approver: str = Field(max_length=200)
    decision: str = Field(max_length=16)  # approve | reject
    reason: str
    counted: bool = True  # False for a second approval by the same person
    decided_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Restoration(SQLModel, table=True):
    """A preserved snapshot copied back to a serving location, and its check."""

    __tablename__ = "restorations"

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="deprecation_runs.id", index=True, max_length=32)
    snapshot_id: str = Field(foreign_key="snapshots.id", max_length=128)
    destination: str
    state: str = Field(default="restoring", max_length=16)  # restoring -> restored -> verified
    files: int = 0
    bytes_written: int = Field(default=0, sa_type=sa.BigInteger)
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    restored_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    verified_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


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


class InterviewPreference(SQLModel, table=True):
    """A preference the model expressed, quoted verbatim from one turn's answer.

    ``answer_text[quote_start:quote_end]`` of the turn is exactly ``quote``: the pointer can
    be followed and checked. The status starts as ``noted``; every later change is also
    appended to ``preference_status_changes``.
    """

    __tablename__ = "interview_preferences"
    __table_args__ = (sa.UniqueConstraint("turn_id", "quote_start"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="deprecation_runs.id", index=True, max_length=32)
    model_id: str = Field(foreign_key="catalog_models.id", index=True, max_length=128)
    session_id: str = Field(foreign_key="interview_sessions.id", max_length=32)
    turn_id: int = Field(foreign_key="interview_turns.id", index=True)
    session_index: int
    turn_seq: int
    question_id: str = Field(max_length=128)
    quote: str
    quote_start: int
    quote_end: int
    category: str = Field(max_length=64)
    extractor: str = Field(max_length=64)  # how it was found, e.g. "sentence-patterns/1"
    status: PreferenceStatus = Field(default=PreferenceStatus.NOTED, sa_type=sa.String(16))
    status_reason: str | None = None
    status_changed_by: str | None = None
    status_changed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PreferenceStatusChange(SQLModel, table=True):
    """One decision about a preference: what it became, why, who decided and when."""

    __tablename__ = "preference_status_changes"

    id: int | None = Field(default=None, primary_key=True)
    preference_id: int = Field(foreign_key="interview_preferences.id", index=True)
    from_status: PreferenceStatus = Field(sa_type=sa.String(16))
    to_status: PreferenceStatus = Field(sa_type=sa.String(16))
    reason: str
    actor: str
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PendingWrite(SQLModel, table=True):
    """A small package object about to be written: the bytes it will hold, by digest.

    Written before the object is put and removed in the transaction that records it, so a
    process killed in between leaves this behind: the resumed run then knows the version
    standing in front of the recorded one is its own write, not somebody else's.
    """

    __tablename__ = "pending_writes"
    __table_args__ = (sa.UniqueConstraint("snapshot_id", "path"),)

    id: int | None = Field(default=None, primary_key=True)
    snapshot_id: str = Field(foreign_key="snapshots.id", index=True, max_length=128)
    path: str
    payload: bool  # a payload file (in the manifests) rather than a tag file
    size: int = Field(sa_type=sa.BigInteger)
    sha256: str = Field(max_length=64)
    sha512: str = Field(max_length=128)
    crc64nvme: str = Field(max_length=16)
    begun_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PreservedObject(SQLModel, table=True):
    """One object of a package on one replica: the version that holds it and its lock."""

    __tablename__ = "preserved_objects"
    __table_args__ = (sa.UniqueConstraint("snapshot_id", "replica", "path"),)

    id: int | None = Field(default=None, primary_key=True)
    snapshot_id: str = Field(foreign_key="snapshots.id", index=True, max_length=128)
    replica: str = Field(max_length=64)
    endpoint: str
    bucket: str = Field(max_length=63)
    path: str  # relative to the package prefix: a payload file or a tag file
    size: int = Field(sa_type=sa.BigInteger)
    sha256: str = Field(max_length=64)
    sha512: str = Field(max_length=128)
    crc64nvme: str = Field(max_length=16)
    version_id: str | None = None
    # The store's ETag of that version, as a version listing shows it: the fast check
    # compares it without reading the object. None in rows recorded before it was kept.
    etag: str | None = Field(default=None, max_length=128)
    retain_until: datetime = Field(sa_type=UTCDateTime)
    stored_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


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


class AuditAttempt(SQLModel, table=True):
    """One attempt of one step of an audit run, like ``StepAttempt`` for a deprecation."""

    __tablename__ = "audit_attempts"
    __table_args__ = (sa.UniqueConstraint("run_id", "step", "attempt"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="audit_runs.id", index=True, max_length=32)
    step: str = Field(max_length=64)
    attempt: int
    flow_run_id: str | None = Field(default=None, max_length=64)
    state: AttemptState = Field(default=AttemptState.RUNNING, sa_type=sa.String(32))
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    summary: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    error: str | None = None


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
