"""What every ledger table shares: the UTC timestamp column type, the clock, fresh ids.

The tables live by domain (``catalog``, ``runs``, ``notify``, ``preservation``, ``audit``,
``interview``, ``report``, ``serving``); ``from sunset.ledger import X`` reaches each.
This module keeps its name and ``UTCDateTime`` its place because the migrations, and
the template Alembic renders new ones from, refer to ``sunset.ledger.models.UTCDateTime``.

Rows are appended or moved forward, never silently rewritten: a step attempt, a
delivery, an interview turn or a status transition, once recorded, stays as it was.
Timestamps are UTC; ``UTCDateTime`` keeps them aware on SQLite as on PostgreSQL.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import SQLModel
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
