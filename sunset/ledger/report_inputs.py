"""What a run's report is written from besides the ledger's record: the text people
supplied for it, and the model's reply to it (the sealed versions are ``report``'s)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field

# The modules of the tables this one's foreign keys name: the package loads a domain only
# when first used, and a row cannot be written before the tables it refers to exist.
import sunset.ledger.catalog  # noqa: F401
import sunset.ledger.runs  # noqa: F401
from sunset.ledger.models import LedgerTable, UTCDateTime, utcnow


class ReportInput(LedgerTable, table=True):
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


class ReplyOutcome(StrEnum):
    ANSWERED = "answered"
    FAILED = "failed"  # not obtained: the API refused, gave up, or the deadline passed


class ReportReply(LedgerTable, table=True):
    """The model's right of reply: the report's account of it (its deployment summary,
    preferences and the operators' analysis), shown to it before the final version is
    sealed, and its reply verbatim; or, when it could not be asked, why.

    Recorded like an interview turn: the request as handed to the SDK and the digest of
    the exact bytes sent, the response body verbatim.
    """

    __tablename__ = "report_replies"

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="deprecation_runs.id", index=True, max_length=32)
    model_id: str = Field(foreign_key="catalog_models.id", max_length=128)
    account_sha256: str = Field(max_length=64)  # of the account as shown, UTF-8
    request_json: str
    request_sha256: str | None = Field(default=None, max_length=64)
    api_version: str | None = Field(default=None, max_length=32)
    response_body: str | None = None  # the HTTP response body, verbatim
    reply_text: str | None = None
    responding_model: str | None = None
    stop_reason: str | None = Field(default=None, max_length=32)
    request_id: str | None = None
    retries: int = 0
    latency_s: float | None = None
    sdk_version: str = Field(max_length=32)
    asked_at: datetime = Field(sa_type=UTCDateTime)
    answered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    outcome: ReplyOutcome = Field(sa_type=sa.String(16))
    error: str | None = None  # why no reply was obtained
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
