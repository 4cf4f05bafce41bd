"""Each sealed version of a run's report (what it is written from besides the record,
the text people supplied and the model's reply, is ``report_inputs``')."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field

# The modules of the tables this one's foreign keys name: the package loads a domain only
# when first used, and a row cannot be written before the tables it refers to exist.
import sunset.ledger.preservation  # noqa: F401
import sunset.ledger.runs  # noqa: F401
from sunset.ledger.models import LedgerTable, UTCDateTime, utcnow


class Report(LedgerTable, table=True):
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
