"""Sealing: more payload files (transcripts, the report) and the tag files written into
a stored package, each small write announced before it is put so that a process killed
half-way can be finished rather than taken for corruption.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import select

from sunset.ledger import Ledger, PendingWrite, PreservedObject, Snapshot, utcnow
from sunset.preservation.package import manifest_digest
from sunset.preservation.records import (
    held_objects,
    intact_objects,
    load_snapshot,
    package_tag_files,
    preserved,
    record_stored,
    snapshot_files,
)
from sunset.preservation.replicas import ReplicatedStore, Upload
from sunset.preservation.store import Digests, StoredObject, digest_bytes


def add_payload(
    ledger: Ledger, store: ReplicatedStore, snapshot_id: str, path: str, data: bytes
) -> None:
    """Store one more payload file (a transcript, the report) and record its digests."""
    _put(ledger, store, load_snapshot(ledger, snapshot_id), path, data, payload=True)


def write_tag_files(
    ledger: Ledger, store: ReplicatedStore, snapshot_id: str, organization: str
) -> str:
    """(Re)write bagit.txt, bag-info.txt and the manifests from the ledger's file rows.

    A tag file that every replica already holds with the same bytes is left alone, so
    rewriting an unchanged package adds no object versions.
    """
    snapshot = load_snapshot(ledger, snapshot_id)
    files = package_tag_files(ledger, snapshot, organization)
    for name, data in files.items():
        _put(ledger, store, snapshot, name, data, payload=False)
    digest = manifest_digest(files)
    entries = snapshot_files(ledger, snapshot_id)
    with ledger.session() as db:
        stored = db.get(Snapshot, snapshot_id)
        assert stored is not None
        stored.manifest_sha256 = digest
        stored.file_count = len(entries)
        stored.payload_bytes = sum(e.size for e in entries)
        db.add(stored)
    return digest


def finish_interrupted_seal(
    ledger: Ledger, store: ReplicatedStore, snapshot_id: str, organization: str
) -> bool:
    """Complete what a sealing process killed half-way left undone; True if there was any.

    Sealing puts new payload files (transcripts, the report), records them, then rewrites
    the tag files. A crash between a put and its record leaves a version in front of the
    recorded one: adopted if it is the pending write's very bytes. A crash before the tag
    files were rewritten leaves them one step behind the ledger: rewritten. A resumed run
    does this before verifying, instead of taking it for corruption; a version nobody
    announced, or tag files that differ while the ledger has not moved on, still fail.
    """
    snapshot = load_snapshot(ledger, snapshot_id)
    adopted = _adopt_pending_writes(ledger, store, snapshot)
    derived = manifest_digest(package_tag_files(ledger, snapshot, organization))
    if snapshot.manifest_sha256 in (None, derived):
        return adopted
    write_tag_files(ledger, store, snapshot_id, organization)
    return True


def _put(
    ledger: Ledger,
    store: ReplicatedStore,
    snapshot: Snapshot,
    path: str,
    data: bytes,
    *,
    payload: bool,
) -> None:
    key = snapshot.prefix + path
    digests = digest_bytes(data)
    with ledger.session() as db:
        rows = db.exec(
            select(PreservedObject).where(
                PreservedObject.snapshot_id == snapshot.id, PreservedObject.path == path
            )
        ).all()
    intact = intact_objects(store, snapshot, [row for row in rows if preserved(row) == digests])
    targets = [c for c in store.copies if (c.name, path) not in intact]
    if targets:
        _note_pending_write(ledger, snapshot.id, path, digests, payload=payload)
        upload = store.put_bytes(targets, key, data)
        record_stored(ledger, store, snapshot.id, {path: upload}, payload=payload)


def _note_pending_write(
    ledger: Ledger, snapshot_id: str, path: str, digests: Digests, *, payload: bool
) -> None:
    values: dict[str, Any] = {
        "payload": payload,
        "size": digests.size,
        "sha256": digests.sha256,
        "sha512": digests.sha512,
        "crc64nvme": digests.crc64nvme,
        "begun_at": utcnow(),
    }
    with ledger.session() as db:
        pending = db.exec(
            select(PendingWrite).where(
                PendingWrite.snapshot_id == snapshot_id, PendingWrite.path == path
            )
        ).first()
        if pending is None:
            pending = PendingWrite(snapshot_id=snapshot_id, path=path, **values)
        else:
            pending.sqlmodel_update(values)
        db.add(pending)


def _adopt_pending_writes(ledger: Ledger, store: ReplicatedStore, snapshot: Snapshot) -> bool:
    """Record the puts that landed before their process died; forget those that did not.

    A version standing in front of the recorded one is adopted only if it holds exactly
    the bytes the pending write announced (size, CRC64NVME, then SHA-256 of the whole).
    Returns whether any was adopted.
    """
    with ledger.session() as db:
        pending = db.exec(select(PendingWrite).where(PendingWrite.snapshot_id == snapshot.id)).all()
    held = held_objects(ledger, snapshot.id)
    adopted = False
    for write in pending:
        key = snapshot.prefix + write.path
        digests = preserved(write)
        landed: dict[str, StoredObject] = {}
        for copy in store.copies:
            current = copy.head(key)
            recorded = held.get((copy.name, write.path))
            if (
                current is not None
                and (recorded is None or current.version_id != recorded.version_id)
                and (current.size, current.crc64nvme) == (write.size, write.crc64nvme)
                and digest_bytes(copy.get_bytes(key, current.version_id)) == digests
            ):
                landed[copy.name] = current
        if landed:
            upload = Upload(digests, landed, bytes_sent=0)
            record_stored(ledger, store, snapshot.id, {write.path: upload}, payload=write.payload)
            adopted = True
        else:
            with ledger.session() as db:
                db.delete(db.merge(write))
    return adopted
