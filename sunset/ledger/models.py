"""What every ledger table shares: the UTC timestamp column type, the clock, fresh ids,
and the columns every step attempt holds.

The tables live by domain, in the modules beside this one (``sunset.ledger``'s docstring
says why some domains are cut in two); ``from sunset.ledger import X`` reaches each.
This module keeps its name and ``UTCDateTime`` its place because the migrations, and
the template Alembic renders new ones from, refer to ``sunset.ledger.models.UTCDateTime``.

Rows are appended or moved forward, never silently rewritten: a step attempt, a
delivery, an interview turn or a status transition, once recorded, stays as it was.
Timestamps are UTC; ``UTCDateTime`` keeps them aware on SQLite as on PostgreSQL.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import JSON, Field, SQLModel
from sqlmodel.main import SQLModelConfig


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


class LedgerTable(SQLModel):
    """What every ledger table derives from.

    Pydantic builds a table's validator the first time a row is validated or dumped, not
    when its module is imported: most commands never do, and building them all made up
    about a tenth of `sunset status`.
    """

    model_config = SQLModelConfig(defer_build=True)


class AttemptState(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class AttemptColumns(LedgerTable):
    """One attempt of one step of a run, failed ones with their error: what a deprecation
    run's (``StepAttempt``) and an audit run's (``AuditAttempt``) attempts both hold."""

    id: int | None = Field(default=None, primary_key=True)
    step: str = Field(max_length=64)
    attempt: int
    flow_run_id: str | None = Field(default=None, max_length=64)
    state: AttemptState = Field(default=AttemptState.RUNNING, sa_type=sa.String(32))
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    summary: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    error: str | None = None
