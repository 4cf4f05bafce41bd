"""The catalog: the models Sunset knows, their serving status and their dates (the
people who depend on a model are ``users``')."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field

from sunset.ledger.models import LedgerTable, UTCDateTime, utcnow


class ServingStatus(StrEnum):
    ACTIVE = "active"
    DEPRECATED = "deprecated"
    RETIRED = "retired"
    ON_REQUEST = "on_request"  # reinstated, but served only to those who ask for it


class CatalogModel(LedgerTable, table=True):
    """A model in the catalog, with its serving status and its dates."""

    __tablename__ = "catalog_models"

    id: str = Field(primary_key=True, max_length=128)
    display_name: str
    serving_status: ServingStatus = Field(default=ServingStatus.ACTIVE, sa_type=sa.String(32))
    released_on: date | None = None
    deprecation_announced_on: date | None = None
    retirement_on: date | None = None
    replacement_id: str | None = Field(default=None, max_length=128)
    weights_source: str | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # Chooses the minimum notice period (Settings.minimum_notice_days_by_class).
    model_class: str | None = Field(default=None, max_length=64)
