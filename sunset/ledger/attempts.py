"""The attempts of a deprecation run's steps (an audit run's are ``audit``'s)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Field

# The modules of the tables this one's foreign keys name: the package loads a domain only
# when first used, and a row cannot be written before the tables it refers to exist.
import sunset.ledger.runs  # noqa: F401
from sunset.ledger.models import AttemptColumns


class StepAttempt(AttemptColumns, table=True):
    """One attempt of one step of a deprecation run, failed ones with their error."""

    __tablename__ = "step_attempts"
    __table_args__ = (sa.UniqueConstraint("run_id", "step", "attempt"),)

    run_id: str = Field(foreign_key="deprecation_runs.id", index=True, max_length=32)
