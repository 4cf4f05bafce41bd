"""Who was told of a deprecation, and each move of its retirement date after they were.

Kept apart from ``deprecation`` so that a command that only reads where deprecations
stand (`sunset status`) does not build these tables."""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field

# The modules of the tables this one's foreign keys name: the package loads a domain only
# when first used, and a row cannot be written before the tables it refers to exist.
import sunset.ledger.deprecation  # noqa: F401
from sunset.ledger.models import LedgerTable, UTCDateTime, utcnow


class RetirementDateChange(LedgerTable, table=True):
    """The retirement date moved after users were told: from when, to when, and why."""

    __tablename__ = "retirement_date_changes"

    id: int | None = Field(default=None, primary_key=True)
    deprecation_id: str = Field(foreign_key="deprecations.id", index=True, max_length=32)
    previous_on: date
    retirement_on: date
    reason: str
    changed_by: str | None = None
    changed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class NoticeRecipient(LedgerTable, table=True):
    """Someone told of a deprecation; its later notices (reminders, the retirement, a
    cancellation) go to the same people on the same channels."""

    __tablename__ = "notice_recipients"
    __table_args__ = (sa.UniqueConstraint("deprecation_id", "email"),)

    id: int | None = Field(default=None, primary_key=True)
    deprecation_id: str = Field(foreign_key="deprecations.id", index=True, max_length=32)
    email: str = Field(max_length=320)
    name: str = Field(max_length=200)
    webhook_url: str | None = None
    usage: str | None = None
    added_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
