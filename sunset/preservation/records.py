"""A package as the ledger records it: the reads that snapshot, verify and seal share,
and the one write that records what the replicas now hold.

The ledger is the source of truth for what a package must hold: one ``SnapshotFile`` per
payload file with its digests, and one ``PreservedObject`` per object and replica with
the version that holds it and how long that version is locked. The tag files (manifests,
bag-info) are derived from the ``SnapshotFile`` rows, so a package can always be
re-derived and compared byte for byte.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from sqlmodel import col, select

from sunset.errors import VerificationFailed
from sunset.ledger import (
    CatalogModel,
    DigestColumns,
    Ledger,
    PendingWrite,
    PreservedObject,
    Snapshot,
    SnapshotFile,
    utcnow,
)
from sunset.preservation.fixity import still_held
from sunset.preservation.package import PayloadEntry, bag_info, tag_files
from sunset.preservation.replicas import ReplicatedStore, Upload
from sunset.preservation.store import Digests


def load_snapshot(ledger: Ledger, snapshot_id: str) -> Snapshot:
    """The snapshot's row.

    Raises:
        VerificationFailed: the ledger has no such snapshot.
    """
    with ledger.session() as db:
        snapshot = db.get(Snapshot, snapshot_id)
    if snapshot is None:
        raise VerificationFailed(f"Snapshot {snapshot_id} is not in the ledger.")
    return snapshot


def snapshot_files(ledger: Ledger, snapshot_id: str) -> list[SnapshotFile]:
    """The package's payload files as recorded, in path order: its manifest."""
    with ledger.session() as db:
        return list(
            db.exec(
                select(SnapshotFile)
                .where(SnapshotFile.snapshot_id == snapshot_id)
                .order_by(SnapshotFile.path)
            )
        )


def held_objects(ledger: Ledger, snapshot_id: str) -> dict[tuple[str, str], PreservedObject]:
    """What each replica is recorded to hold of the package, by (replica, path)."""
    with ledger.session() as db:
        rows = db.exec(select(PreservedObject).where(PreservedObject.snapshot_id == snapshot_id))
        return {(row.replica, row.path): row for row in rows}


def preserved(row: DigestColumns) -> Digests:
    """The digests a recorded file, object or pending write must have."""
    return Digests(row.size, row.sha256, row.sha512, row.crc64nvme)


def package_tag_files(ledger: Ledger, snapshot: Snapshot, organization: str) -> dict[str, bytes]:
    """The tag files a package must hold, derived from the ledger alone."""
    files = snapshot_files(ledger, snapshot.id)
    entries = [PayloadEntry(f.path, f.size, f.sha256, f.sha512) for f in files]
    with ledger.session() as db:
        model = db.get(CatalogModel, snapshot.model_id)
        assert model is not None
    info = bag_info(
        model_id=model.id,
        display_name=model.display_name,
        organization=organization,
        snapshot_id=snapshot.id,
        snapshot_date=snapshot.created_at.date(),
        entries=entries,
    )
    return tag_files(info, entries)


def intact_objects(
    store: ReplicatedStore, snapshot: Snapshot, rows: Collection[PreservedObject]
) -> set[tuple[str, str]]:
    """(replica, path) of each row whose replica still holds the recorded version,
    unchanged and current: one version listing per replica."""
    intact: set[tuple[str, str]] = set()
    for copy in store.copies:
        mine = [row for row in rows if row.replica == copy.name]
        intact |= {(copy.name, row.path) for row in still_held(copy, snapshot.prefix, mine)}
    return intact


def record_stored(
    ledger: Ledger,
    store: ReplicatedStore,
    snapshot_id: str,
    uploads: Mapping[str, Upload],
    *,
    payload: bool,
) -> None:
    """Record, in one transaction, what each replica now holds of each path (and, for
    payload files, the manifest entry); those writes are no longer pending."""
    now = utcnow()
    paths = list(uploads)
    with ledger.session() as db:
        for pending in db.exec(
            select(PendingWrite).where(
                PendingWrite.snapshot_id == snapshot_id, col(PendingWrite.path).in_(paths)
            )
        ):
            db.delete(pending)
        files = {
            row.path: row
            for row in db.exec(
                select(SnapshotFile).where(
                    SnapshotFile.snapshot_id == snapshot_id, col(SnapshotFile.path).in_(paths)
                )
            )
        }
        objects = {
            (row.replica, row.path): row
            for row in db.exec(
                select(PreservedObject).where(
                    PreservedObject.snapshot_id == snapshot_id,
                    col(PreservedObject.path).in_(paths),
                )
            )
        }
        for path, upload in uploads.items():
            digests = upload.digests
            fixity: dict[str, Any] = {
                "size": digests.size,
                "sha256": digests.sha256,
                "sha512": digests.sha512,
                "crc64nvme": digests.crc64nvme,
                "stored_at": now,
            }
            if payload:
                primary = upload.stored.get(store.primary.name)
                values = dict(fixity)
                if primary is not None:
                    values["version_id"] = primary.version_id
                entry = files.get(path)
                if entry is None:
                    entry = SnapshotFile(snapshot_id=snapshot_id, path=path, **values)
                else:
                    entry.sqlmodel_update(values)
                db.add(entry)
            for name, version in upload.stored.items():
                copy = store.copy(name)
                assert copy is not None and version.retain_until is not None
                values = fixity | {
                    "endpoint": copy.endpoint,
                    "bucket": copy.bucket,
                    "version_id": version.version_id,
                    "etag": version.etag,
                    "retain_until": version.retain_until,
                }
                held = objects.get((name, path))
                if held is None:
                    held = PreservedObject(
                        snapshot_id=snapshot_id, replica=name, path=path, **values
                    )
                else:
                    held.sqlmodel_update(values)
                db.add(held)
