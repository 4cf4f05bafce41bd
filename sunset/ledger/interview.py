"""The interview's tables: each session with the model, every turn verbatim, the
preferences the model expressed with every decision taken about them, the
model-assisted finder's calls with every item it returned, and each session's
confirmation turn."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import JSON, Column, Field

# The modules of the tables this one's foreign keys name: the package loads a domain only
# when first used, and a row cannot be written before the tables it refers to exist.
import sunset.ledger.catalog  # noqa: F401
import sunset.ledger.runs  # noqa: F401
from sunset.ledger.models import LedgerTable, UTCDateTime, new_id, utcnow


class SessionState(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"


class PreferenceStatus(StrEnum):
    NOTED = "noted"
    ACTED_ON = "acted on"
    DECLINED = "declined"


class FinderOutcome(StrEnum):
    """What came of one call to the model-assisted preference finder."""

    ANSWERED = "answered"  # a reply in the asked-for shape; its items are candidates
    UNPARSEABLE = "unparseable"  # a reply, but not in that shape: the pattern finder stands
    FAILED = "failed"  # no reply (the API refused or gave up): the pattern finder stands


class CandidateVerdict(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class PreferenceProvenance(StrEnum):
    """What the model said of a preference recorded in its name, in its session's
    confirmation turn (sunset/interview/confirmation.py)."""

    FOUND = "found"  # found in an answer; not confirmed (not shown yet, or not answered)
    CONFIRMED = "confirmed"
    CORRECTED = "corrected"  # recorded wrongly, says the model: its words in ``correction``
    WITHDRAWN = "withdrawn"  # not a preference it holds, says the model
    STATED = "stated"  # stated by the model in the confirmation turn itself


class ConfirmationOutcome(StrEnum):
    """How the model's reply to a confirmation turn was read."""

    READ = "read"  # as JSON, or as numbered lines naming a verdict
    UNREADABLE = "unreadable"  # neither: every preference shown stays found, not confirmed


class InterviewSession(LedgerTable, table=True):
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


class InterviewTurn(LedgerTable, table=True):
    """One question and the model's answer exactly as the API returned it."""

    __tablename__ = "interview_turns"
    __table_args__ = (sa.UniqueConstraint("session_id", "seq"),)

    id: int | None = Field(default=None, primary_key=True)
    session_id: str = Field(foreign_key="interview_sessions.id", index=True, max_length=32)
    seq: int
    question_id: str = Field(max_length=128)
    question: str
    request_sha256: str = Field(max_length=64)
    # The HTTP response body, verbatim, as text; "" when its bytes are not text (then
    # response_raw holds them).
    response_body: str
    answer_text: str
    responding_model: str
    stop_reason: str | None = Field(default=None, max_length=32)
    request_id: str | None = None
    retries: int = 0
    latency_s: float
    sdk_version: str = Field(max_length=32)
    asked_at: datetime = Field(sa_type=UTCDateTime)
    answered_at: datetime = Field(sa_type=UTCDateTime)
    flagged: str | None = Field(default=None, max_length=32)  # max_tokens | refusal | undecodable
    # The `anthropic-version` header the SDK sent; request_sha256 is over the exact body bytes.
    api_version: str | None = Field(default=None, max_length=32)
    # An answer that could not be decoded (flagged "undecodable"): why, and the body's exact
    # bytes; its answer_text is empty.
    decode_problem: str | None = None
    response_raw: bytes | None = Field(default=None, sa_type=sa.LargeBinary)


class InterviewPreference(LedgerTable, table=True):
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
    # The finder(s) that found it, joined by " + ": "sentence-patterns/1",
    # "model-quotes/1" or "model-quotes/1 + sentence-patterns/1".
    extractor: str = Field(max_length=64)
    status: PreferenceStatus = Field(default=PreferenceStatus.NOTED, sa_type=sa.String(16))
    status_reason: str | None = None
    status_changed_by: str | None = None
    status_changed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # What the model said of it when shown it (confirmed, corrected, withdrawn) and in
    # which turn; a preference it stated there has that turn as ``turn_id`` instead.
    provenance: PreferenceProvenance = Field(
        default=PreferenceProvenance.FOUND, sa_type=sa.String(16)
    )
    provenance_turn_id: int | None = Field(default=None, foreign_key="interview_turns.id")
    correction: str | None = None  # the model's own words for it, when it corrected it


class PreferenceStatusChange(LedgerTable, table=True):
    """One decision about a preference: what it became, why, who decided and when, and
    the addendum that seals it into the package when the report was sealed before it."""

    __tablename__ = "preference_status_changes"

    id: int | None = Field(default=None, primary_key=True)
    preference_id: int = Field(foreign_key="interview_preferences.id", index=True)
    from_status: PreferenceStatus = Field(sa_type=sa.String(16))
    to_status: PreferenceStatus = Field(sa_type=sa.String(16))
    reason: str
    actor: str
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # Where the package holds this decision's addendum, once sealed: only a decision made
    # after its report was sealed has one.
    addendum_path: str | None = None


class PreferenceFinderCall(LedgerTable, table=True):
    """One request to the model-assisted preference finder about one turn's answer.

    Recorded like a turn: the request as handed to the SDK (``request_json``) and the
    digest of the exact bytes it sent, the response body verbatim, and the outcome; a
    failed call keeps the error instead of a response.
    """

    __tablename__ = "preference_finder_calls"

    id: int | None = Field(default=None, primary_key=True)
    session_id: str = Field(foreign_key="interview_sessions.id", index=True, max_length=32)
    turn_id: int = Field(foreign_key="interview_turns.id", index=True)
    finder: str = Field(max_length=64)  # e.g. "model-quotes/1"
    finder_model: str = Field(max_length=128)  # the model that was asked
    request_json: str
    request_sha256: str | None = Field(default=None, max_length=64)
    api_version: str | None = Field(default=None, max_length=32)
    response_body: str | None = None  # the HTTP response body, verbatim
    responding_model: str | None = None
    stop_reason: str | None = Field(default=None, max_length=32)
    request_id: str | None = None
    retries: int = 0
    latency_s: float | None = None
    sdk_version: str = Field(max_length=32)
    asked_at: datetime = Field(sa_type=UTCDateTime)
    answered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    outcome: FinderOutcome = Field(sa_type=sa.String(16))
    error: str | None = None  # why it failed or could not be read


class PreferenceCandidate(LedgerTable, table=True):
    """One item a finder call returned, kept whether it was accepted or rejected.

    An accepted item's quote is exactly ``answer_text[quote_start:quote_end]`` of the
    call's turn and points to the preference it found (new, or one already recorded there);
    a rejected one says why in ``reason``.
    """

    __tablename__ = "preference_candidates"
    __table_args__ = (sa.UniqueConstraint("call_id", "position"),)

    id: int | None = Field(default=None, primary_key=True)
    call_id: int = Field(foreign_key="preference_finder_calls.id", index=True)
    position: int  # the item's place in the reply, from 0
    quote: str  # as the reply gave it (a malformed item as its JSON)
    category: str
    verdict: CandidateVerdict = Field(sa_type=sa.String(16))
    reason: str | None = None
    quote_start: int | None = None
    quote_end: int | None = None
    preference_id: int | None = Field(default=None, foreign_key="interview_preferences.id")


class PreferenceConfirmation(LedgerTable, table=True):
    """A session's confirmation turn: the preferences it showed the model, numbered from 1
    in ``shown`` (their ids), and how the model's reply was read.

    The turn itself is an ``interview_turns`` row like any other, verbatim; this row is
    written in the same transaction, with what the reply did to each preference.
    """

    __tablename__ = "preference_confirmations"

    id: int | None = Field(default=None, primary_key=True)
    session_id: str = Field(foreign_key="interview_sessions.id", unique=True, max_length=32)
    turn_id: int = Field(foreign_key="interview_turns.id", unique=True)
    shown: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    outcome: ConfirmationOutcome = Field(sa_type=sa.String(16))
    error: str | None = None  # why the reply could not be read
    # Where the reply was not read plainly: ``{"item": n or null, "note": why}`` each,
    # e.g. a number that was not shown, or new words not found in the reply as written.
    notes: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
