"""A package's writes the ledger has not settled yet: a small object about to be written
(``PendingWrite``) and a version a replica holds that the package does not use
(``LeftoverVersion``)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field

# The modules of the tables this one's foreign keys name: the package loads a domain only
# when first used, and a row cannot be written before the tables it refers to exist.
import sunset.ledger.runs  # noqa: F401
from sunset.ledger.models import LedgerTable, UTCDateTime, utcnow
from sunset.ledger.preservation import DigestColumns


class PendingWrite(DigestColumns, table=True):
    """A small package object about to be written: the bytes it will hold, by digest.

    Written before the object is put and removed in the transaction that records it, so a
    process killed in between leaves this behind: the resumed run then knows the version
    standing in front of the recorded one is its own write, not somebody else's.
    """

    __tablename__ = "pending_writes"
    __table_args__ = (sa.UniqueConstraint("snapshot_id", "path"),)

    id: int | None = Field(default=None, primary_key=True)
    snapshot_id: str = Field(foreign_key="snapshots.id", index=True, max_length=128)
    path: str
    payload: bool  # a payload file (in the manifests) rather than a tag file
    begun_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class LeftoverVersion(LedgerTable, table=True):
    """A version of a package's weights file that a replica holds but the package does
    not use: most often an upload a killed process completed but never recorded, whose
    bytes are not the file's as the resumed run read it (such a version holding exactly
    those bytes is adopted instead). It is locked like every version written and cannot
    be removed before its lock ends, so it is named rather than left unexplained.
    """

    __tablename__ = "leftover_versions"
    __table_args__ = (sa.UniqueConstraint("snapshot_id", "replica", "key", "version_id"),)

    id: int | None = Field(default=None, primary_key=True)
    snapshot_id: str = Field(foreign_key="snapshots.id", index=True, max_length=128)
    run_id: str = Field(foreign_key="deprecation_runs.id", max_length=32)  # who found it
    replica: str = Field(max_length=64)
    endpoint: str
    bucket: str = Field(max_length=63)
    key: str  # the whole object key, the package prefix included
    version_id: str
    size: int = Field(sa_type=sa.BigInteger)
    retain_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    found_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
