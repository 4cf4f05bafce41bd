"""The interview's tables: each session with the model, every turn verbatim, and the
preferences the model expressed with every decision taken about them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from sunset.ledger.models import UTCDateTime, new_id, utcnow


class SessionState(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"


class PreferenceStatus(StrEnum):
    NOTED = "noted"
    ACTED_ON = "acted on"
    DECLINED = "declined"


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
    state: SessionState = Field(default=SessionState.RUNNING, sa_type=sa.String(16))
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
