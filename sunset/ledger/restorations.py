"""Preserved packages copied back to a serving location (a reinstatement), and their check."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field

# The modules of the tables this one's foreign keys name: the package loads a domain only
# when first used, and a row cannot be written before the tables it refers to exist.
import sunset.ledger.preservation  # noqa: F401
import sunset.ledger.runs  # noqa: F401
from sunset.ledger.models import LedgerTable, UTCDateTime, utcnow


class RestorationState(StrEnum):
    RESTORING = "restoring"
    RESTORED = "restored"
    VERIFIED = "verified"


class Restoration(LedgerTable, table=True):
    """A preserved snapshot copied back to a serving location, and its check."""

    __tablename__ = "restorations"

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="deprecation_runs.id", index=True, max_length=32)
    snapshot_id: str = Field(foreign_key="snapshots.id", max_length=128)
    destination: str
    state: RestorationState = Field(default=RestorationState.RESTORING, sa_type=sa.String(16))
    files: int = 0
    bytes_written: int = Field(default=0, sa_type=sa.BigInteger)
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    restored_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    verified_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
