"""The report's tables: each sealed version of a run's report, and the text people
supplied for it."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from sunset.ledger.models import UTCDateTime, utcnow


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
