"""The preservation tables: packages, their files on every replica, and the
fingerprints and drills that prove a package can bring its model back (writes not yet
settled are ``store_writes``', copies brought back ``restorations``').

``DigestColumns`` is what the ledger knows of a file's bytes; a package's files, each
replica's objects and the writes still pending all hold it.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import JSON, Column, Field

# The modules of the tables this one's foreign keys name: the package loads a domain only
# when first used, and a row cannot be written before the tables it refers to exist.
import sunset.ledger.catalog  # noqa: F401
import sunset.ledger.runs  # noqa: F401
from sunset.ledger.models import LedgerTable, UTCDateTime, utcnow


class SnapshotState(StrEnum):
    UPLOADING = "uploading"
    STORED = "stored"


class DigestColumns(LedgerTable):
    """A file's size and digests: what its bytes must be wherever it is kept."""

    size: int = Field(sa_type=sa.BigInteger)
    sha256: str = Field(max_length=64)
    sha512: str = Field(max_length=128)
    crc64nvme: str = Field(max_length=16)


class Snapshot(LedgerTable, table=True):
    """A preservation package of a model's weights in the object store."""

    __tablename__ = "snapshots"

    id: str = Field(primary_key=True, max_length=128)
    run_id: str = Field(foreign_key="deprecation_runs.id", index=True, max_length=32)
    model_id: str = Field(foreign_key="catalog_models.id", index=True, max_length=128)
    endpoint: str
    bucket: str = Field(max_length=63)
    prefix: str
    state: SnapshotState = Field(default=SnapshotState.UPLOADING, sa_type=sa.String(16))
    file_count: int = 0
    payload_bytes: int = 0
    manifest_sha256: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    stored_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class SnapshotFile(DigestColumns, table=True):
    """One file of a package as stored: its digests and the object version holding it."""

    __tablename__ = "snapshot_files"
    __table_args__ = (sa.UniqueConstraint("snapshot_id", "path"),)

    id: int | None = Field(default=None, primary_key=True)
    snapshot_id: str = Field(foreign_key="snapshots.id", index=True, max_length=128)
    path: str
    version_id: str | None = None
    stored_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PreservedObject(DigestColumns, table=True):
    """One object of a package on one replica: the version that holds it and its lock."""

    __tablename__ = "preserved_objects"
    __table_args__ = (sa.UniqueConstraint("snapshot_id", "replica", "path"),)

    id: int | None = Field(default=None, primary_key=True)
    snapshot_id: str = Field(foreign_key="snapshots.id", index=True, max_length=128)
    replica: str = Field(max_length=64)
    endpoint: str
    bucket: str = Field(max_length=63)
    path: str  # relative to the package prefix: a payload file or a tag file
    version_id: str | None = None
    # The store's ETag of that version, as a version listing shows it: the fast check
    # compares it without reading the object. None in rows recorded before it was kept.
    etag: str | None = Field(default=None, max_length=128)
    retain_until: datetime = Field(sa_type=UTCDateTime)
    stored_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Fingerprint(LedgerTable, table=True):
    """A model's greedy outputs for fixed prompts, recorded at deprecation from the weights
    being preserved and sealed in the package, for resurrection drills to reproduce."""

    __tablename__ = "fingerprints"

    id: int | None = Field(default=None, primary_key=True)
    snapshot_id: str = Field(foreign_key="snapshots.id", index=True, max_length=128)
    run_id: str = Field(foreign_key="deprecation_runs.id", max_length=32)
    path: str  # inside the package
    sha256: str = Field(max_length=64)
    weights_file: str
    max_new_tokens: int
    runtime: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    # id, user prompt, output text and stop reason of each prompt (token ids: in the file)
    prompts: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class DrillEvent(LedgerTable, table=True):
    """One resurrection drill: a package restored from a replica into a fresh directory,
    checked against its manifest, its model loaded from the restored files alone and its
    fingerprint replayed. ``run_id`` is set when the drill was part of a deprecation run."""

    __tablename__ = "drill_events"

    id: int | None = Field(default=None, primary_key=True)
    model_id: str = Field(foreign_key="catalog_models.id", index=True, max_length=128)
    snapshot_id: str = Field(foreign_key="snapshots.id", index=True, max_length=128)
    run_id: str | None = Field(default=None, foreign_key="deprecation_runs.id", max_length=32)
    endpoint: str
    bucket: str = Field(max_length=63)
    outcome: str = Field(max_length=16)  # passed | failed | error
    detail: str | None = None
    files_restored: int = 0
    bytes_restored: int = Field(default=0, sa_type=sa.BigInteger)
    prompts_checked: int = 0
    prompts_matched: int = 0
    mismatched_prompts: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    runtime: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    restore_s: float = 0.0
    load_s: float = 0.0
    replay_s: float = 0.0
    started_at: datetime = Field(sa_type=UTCDateTime)
    finished_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
