"""Each delivery of a notice to one recipient on one channel, and the decisions people
made about deliveries nobody can know arrived (a run's summary is ``notify``'s)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field

# The modules of the tables this one's foreign keys name: the package loads a domain only
# when first used, and a row cannot be written before the tables it refers to exist.
import sunset.ledger.catalog  # noqa: F401
import sunset.ledger.deprecation  # noqa: F401
import sunset.ledger.runs  # noqa: F401
from sunset.ledger.models import LedgerTable, UTCDateTime, utcnow


class DeliveryState(StrEnum):
    """sending -> handover -> sent; or failed (retried), rejected (for good), unconfirmed
    (the hand-over was cut short and the channel cannot be asked whether it arrived: it
    is not resent unless someone decides so, see ``DeliveryDecision``)."""

    SENDING = "sending"
    HANDOVER = "handover"
    SENT = "sent"
    FAILED = "failed"
    REJECTED = "rejected"
    UNCONFIRMED = "unconfirmed"


class Delivery(LedgerTable, table=True):
    """A notice to one recipient on one channel; the unique key makes it happen once."""

    __tablename__ = "deliveries"
    __table_args__ = (sa.UniqueConstraint("model_id", "notice_key", "recipient", "channel"),)

    id: int | None = Field(default=None, primary_key=True)
    model_id: str = Field(foreign_key="catalog_models.id", index=True, max_length=128)
    notice_key: str = Field(max_length=128)
    kind: str = Field(default="announcement", max_length=32)  # a NoticeKind
    deprecation_id: str | None = Field(
        default=None, foreign_key="deprecations.id", index=True, max_length=32
    )
    # The run that sent it; None for the notices the daily reminders send.
    run_id: str | None = Field(default=None, foreign_key="deprecation_runs.id", max_length=32)
    recipient: str = Field(max_length=320)
    channel: str = Field(max_length=16)
    message_id: str = Field(max_length=255)
    state: DeliveryState = Field(sa_type=sa.String(16))
    attempts: int = 0
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    error: str | None = None


class DeliveryDecisionKind(StrEnum):
    """What a person decided about a delivery nobody can know arrived."""

    RESEND = "resend"  # send it once more (the recipient may get two)
    COUNT_AS_DELIVERED = "count-as-delivered"  # treat it as arrived; send nothing


class DeliveryDecision(LedgerTable, table=True):
    """Who decided what about an unconfirmed delivery, when and why; a resend records what
    it did. A delivery is known again once a decision counts it as delivered, or a
    resend decided for it ends ``sent``."""

    __tablename__ = "delivery_decisions"

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int = Field(foreign_key="deliveries.id", index=True)
    decision: DeliveryDecisionKind = Field(sa_type=sa.String(24))
    reason: str
    decided_by: str = Field(max_length=200)
    decided_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # What the resend did (sent, unconfirmed, failed, rejected); None: counted as
    # delivered, or a resend not finished (the process stopped before it ended).
    outcome: DeliveryState | None = Field(default=None, sa_type=sa.String(16))
