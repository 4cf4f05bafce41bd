"""The deprecations: one record per deprecation, from the first announcement to
retirement and after, with the dates its users were last told (who was told, and each
move of the date, are ``notices``').

A deprecation is a process of months that several runs carry out: the run that announces
it, the daily reminders, the run that retires the model, perhaps a reinstatement. Each
deprecation run belongs to one (``DeprecationRun.deprecation_id``); the package made and
verified first is the deprecation's package, and every later run reuses it.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field

# The modules of the tables this one's foreign keys name: the package loads a domain only
# when first used, and a row cannot be written before the tables it refers to exist.
import sunset.ledger.catalog  # noqa: F401
from sunset.ledger.models import LedgerTable, UTCDateTime, new_id, utcnow


class DeprecationStage(StrEnum):
    """planned -> announced -> retired (-> on_request | reinstated), or cancelled."""

    PLANNED = "planned"  # a run began it; nobody has been told yet
    ANNOUNCED = "announced"  # users were told the retirement date
    RETIRED = "retired"
    ON_REQUEST = "on_request"  # retired, then served again to those who ask
    REINSTATED = "reinstated"  # retired, then made active again
    CANCELLED = "cancelled"  # called off before retirement; the model stays active


class Deprecation(LedgerTable, table=True):
    """One deprecation of one model, with the dates its users were told."""

    __tablename__ = "deprecations"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    model_id: str = Field(foreign_key="catalog_models.id", index=True, max_length=128)
    stage: DeprecationStage = Field(default=DeprecationStage.PLANNED, sa_type=sa.String(16))
    # The day the first announcement went out (None while planned), and the retirement
    # date as users were last told it (or as planned, before anyone was).
    announced_on: date | None = None
    retirement_on: date
    replacement_id: str | None = Field(default=None, max_length=128)
    # The deprecation's one package, once a run stored it.
    snapshot_id: str | None = Field(default=None, max_length=128)
    # Why it was cancelled, reinstated or made available on request.
    reason: str | None = None
    opened_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
