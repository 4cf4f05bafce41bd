"""The people who depend on a model, imported from a recipients CSV: who the first
announcement of a deprecation goes to."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field

# The modules of the tables this one's foreign keys name: the package loads a domain only
# when first used, and a row cannot be written before the tables it refers to exist.
import sunset.ledger.catalog  # noqa: F401
from sunset.ledger.models import LedgerTable, UTCDateTime, utcnow


class ModelUser(LedgerTable, table=True):
    """Someone who depends on a model, imported from a recipients CSV."""

    __tablename__ = "model_users"
    __table_args__ = (sa.UniqueConstraint("model_id", "email"),)

    id: int | None = Field(default=None, primary_key=True)
    model_id: str = Field(foreign_key="catalog_models.id", index=True, max_length=128)
    email: str = Field(max_length=320)
    name: str = Field(max_length=200)
    webhook_url: str | None = None
    usage: str | None = None
    imported_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
