"""Where a run's notices stand on each channel (each delivery is ``deliveries``')."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field

# The modules of the tables this one's foreign keys name: the package loads a domain only
# when first used, and a row cannot be written before the tables it refers to exist.
import sunset.ledger.runs  # noqa: F401
from sunset.ledger.models import LedgerTable, UTCDateTime, utcnow


class DeliverySummary(LedgerTable, table=True):
    """Where a run's notices stand on one channel, rewritten after every notify attempt."""

    __tablename__ = "delivery_summaries"
    __table_args__ = (sa.UniqueConstraint("run_id", "channel"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="deprecation_runs.id", index=True, max_length=32)
    channel: str = Field(max_length=16)
    recipients: int  # recipients with an address on this channel
    sent: int  # delivered, by this run or an earlier one
    sent_before: int  # of those, delivered before this run's latest attempt (not resent)
    failed: int  # refused for good, or still failing after the latest attempt
    unconfirmed: int  # the hand-over was interrupted and is not settled (sunset.runs.deliveries)
    skipped: int  # recipients with no address on this channel
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
