"""Snapshot, verify and seal: the weights into a BagIt package, and proof they are intact.

The ledger is the source of truth for what a package must hold: one ``SnapshotFile`` per
payload file with its digests. The tag files (manifests, bag-info) are derived from those
rows, so a package can always be re-derived and compared byte for byte.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlmodel import select

from sunset.errors import VerificationFailed
from sunset.ledger import (
    CatalogModel,
    DeprecationRun,
    FixityEvent,
    Ledger,
    Snapshot,
    SnapshotFile,
    utcnow,
)
from sunset.package import (
    WEIGHTS_DIR,
    PayloadEntry,
    bag_info,
    manifest_digest,
    package_prefix,
    tag_files,
)
from sunset.store import Digests, ObjectStore, digest_bytes
from sunset.weights import SourceFile

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SnapshotSummary:
    snapshot_id: str
    location: str
    files: int
    payload_bytes: int
    uploaded_files: int
    skipped_files: int
    manifest_sha256: str


@dataclass(frozen=True)
class VerificationSummary:
    snapshot_id: str
    bucket: str
    files_checked: int
    bytes_read: int
    passed: bool


def snapshot_id_for(run: DeprecationRun) -> str:
    """Stable for a run, so a resumed snapshot writes into the same package."""
    return f"{run.started_at:%Y%m%dT%H%M%SZ}-{run.id[:8]}"


def snapshot_weights(
    ledger: Ledger,
    store: ObjectStore,
    *,
    run: DeprecationRun,
    model: CatalogModel,
    sources: Sequence[SourceFile],
    organization: str,
    progress: Progress | None = None,
) -> SnapshotSummary:
    """Upload every weights file once into a new package, then write its tag files.

    A file already recorded in this snapshot and still stored with the recorded size and
    CRC64NVME is not sent again, so a resumed snapshot only sends what is missing.
    """
    snapshot = _open_snapshot(ledger, store, run, model)
    recorded = {f.path: f for f in _files(ledger, snapshot.id)}
    total = sum(source.size for source in sources)
    done = uploaded = 0
    for source in sources:
        path = f"{WEIGHTS_DIR}/{source.relative_path}"
        key = snapshot.prefix + path
        known = recorded.get(path)
        if known is None or not _still_stored(store, key, known):
            digests, stored = store.upload_file(key, source.path)
            _record_file(ledger, snapshot.id, path, digests, stored.version_id)
            uploaded += 1
        done += source.size
        if progress:
            progress(done, total)
    digest = write_tag_files(ledger, store, snapshot.id, organization)
    with ledger.session() as db:
        stored_snapshot = db.get(Snapshot, snapshot.id)
        assert stored_snapshot is not None
        stored_snapshot.state, stored_snapshot.stored_at = "stored", utcnow()
        db.add(stored_snapshot)
    return SnapshotSummary(
        snapshot_id=snapshot.id,
        location=f"s3://{store.bucket}/{snapshot.prefix}",
        files=len(sources),
        payload_bytes=total,
        uploaded_files=uploaded,
        skipped_files=len(sources) - uploaded,
        manifest_sha256=digest,
    )


def add_payload(
    ledger: Ledger, store: ObjectStore, snapshot_id: str, path: str, data: bytes
) -> None:
    """Store one more payload file (a transcript, the report) and record its digests."""
    snapshot = _snapshot(ledger, snapshot_id)
    stored = store.put_bytes(snapshot.prefix + path, data)
    _record_file(ledger, snapshot_id, path, digest_bytes(data), stored.version_id)


def write_tag_files(ledger: Ledger, store: ObjectStore, snapshot_id: str, organization: str) -> str:
    """(Re)write bagit.txt, bag-info.txt and the manifests from the ledger's file rows."""
    snapshot = _snapshot(ledger, snapshot_id)
    files = package_tag_files(ledger, snapshot, organization)
    for name, data in files.items():
        store.put_bytes(snapshot.prefix + name, data)
    digest = manifest_digest(files)
    entries = _files(ledger, snapshot_id)
    with ledger.session() as db:
        stored = db.get(Snapshot, snapshot_id)
        assert stored is not None
        stored.manifest_sha256 = digest
        stored.file_count = len(entries)
        stored.payload_bytes = sum(e.size for e in entries)
        db.add(stored)
    return digest


def package_tag_files(ledger: Ledger, snapshot: Snapshot, organization: str) -> dict[str, bytes]:
    """The tag files a package must hold, derived from the ledger alone."""
    entries = [
        PayloadEntry(f.path, f.size, f.sha256, f.sha512) for f in _files(ledger, snapshot.id)
    ]
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


def verify_snapshot(
    ledger: Ledger,
    store: ObjectStore,
    *,
    snapshot_id: str,
    run_id: str | None,
    organization: str,
    paths: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> VerificationSummary:
    """Re-read every payload file (or just ``paths``), re-hash it, compare with the ledger.

    Every file check is recorded as a fixity event. The tag files are always re-read and
    compared with the ones re-derived from the ledger.

    Raises:
        VerificationFailed: any file is missing or differs; the message names them.
    """
    snapshot = _snapshot(ledger, snapshot_id)
    files = [f for f in _files(ledger, snapshot_id) if paths is None or f.path in paths]
    total = sum(f.size for f in files)
    failures: list[str] = []
    bytes_read = 0
    for stored in files:
        outcome, detail, read, seconds = _deep_check(store, snapshot.prefix + stored.path, stored)
        bytes_read += read
        _record_event(
            ledger, snapshot, run_id, store.bucket, stored.path, outcome, detail, read, seconds
        )
        if outcome != "ok":
            failures.append(f"{stored.path} ({detail})")
        if progress:
            progress(bytes_read, total)
    for name, expected in package_tag_files(ledger, snapshot, organization).items():
        started = time.monotonic()
        found = store.head(snapshot.prefix + name)
        actual = store.get_bytes(snapshot.prefix + name) if found else None
        outcome = "ok" if actual == expected else ("missing" if actual is None else "mismatch")
        detail = None if outcome == "ok" else f"tag file {outcome}"
        _record_event(
            ledger,
            snapshot,
            run_id,
            store.bucket,
            name,
            outcome,
            detail,
            len(actual or b""),
            time.monotonic() - started,
        )
        if outcome != "ok":
            failures.append(f"{name} ({detail})")
    if failures:
        raise VerificationFailed(
            f"Verification of package {snapshot.id} in bucket {store.bucket} failed for "
            f"{len(failures)} file(s): {'; '.join(failures[:10])}. The stored copy cannot be "
            "trusted; the serving status was not changed."
        )
    return VerificationSummary(snapshot.id, store.bucket, len(files), bytes_read, True)


def finish_interrupted_seal(
    ledger: Ledger, store: ObjectStore, snapshot_id: str, organization: str
) -> bool:
    """Rewrite the tag files if the ledger recorded payload files after they were written.

    Sealing records new payload files (transcripts, the report), then rewrites the tag
    files; a crash in between leaves the stored tag files one step behind the ledger. A
    resumed run completes that write before verifying, instead of taking it for corruption.
    Tag files that differ while the ledger has not moved on are still a mismatch.
    """
    snapshot = _snapshot(ledger, snapshot_id)
    derived = manifest_digest(package_tag_files(ledger, snapshot, organization))
    if snapshot.manifest_sha256 in (None, derived):
        return False
    write_tag_files(ledger, store, snapshot_id, organization)
    return True


def is_verified(ledger: Ledger, snapshot_id: str) -> bool:
    """True when every payload file has an ``ok`` deep check newer than its last store."""
    files = _files(ledger, snapshot_id)
    if not files:
        return False
    with ledger.session() as db:
        events = db.exec(select(FixityEvent).where(FixityEvent.snapshot_id == snapshot_id)).all()
    latest: dict[str, FixityEvent] = {}
    for event in sorted(events, key=lambda e: (e.checked_at, e.id or 0)):
        latest[event.path] = event
    return all(
        f.path in latest
        and latest[f.path].outcome == "ok"
        and latest[f.path].checked_at >= f.stored_at
        for f in files
    )


def _deep_check(
    store: ObjectStore, key: str, expected: SnapshotFile
) -> tuple[str, str | None, int, float]:
    started = time.monotonic()
    if store.head(key) is None:
        return "missing", "object missing", 0, time.monotonic() - started
    actual = store.read_digests(key)
    seconds = time.monotonic() - started
    if actual.size != expected.size:
        return "mismatch", f"size {actual.size} != {expected.size}", actual.size, seconds
    for name in ("sha256", "sha512", "crc64nvme"):
        if getattr(actual, name) != getattr(expected, name):
            return "mismatch", f"{name} differs from the manifest", actual.size, seconds
    return "ok", None, actual.size, seconds


def _still_stored(store: ObjectStore, key: str, known: SnapshotFile) -> bool:
    found = store.head(key)
    return found is not None and found.size == known.size and found.crc64nvme == known.crc64nvme


def _open_snapshot(
    ledger: Ledger, store: ObjectStore, run: DeprecationRun, model: CatalogModel
) -> Snapshot:
    snapshot_id = snapshot_id_for(run)
    with ledger.session() as db:
        snapshot = db.get(Snapshot, snapshot_id)
        if snapshot is None:
            snapshot = Snapshot(
                id=snapshot_id,
                run_id=run.id,
                model_id=model.id,
                endpoint=store.endpoint,
                bucket=store.bucket,
                prefix=package_prefix(model.id, snapshot_id),
                created_at=run.started_at,
            )
            db.add(snapshot)
        return snapshot


def _snapshot(ledger: Ledger, snapshot_id: str) -> Snapshot:
    with ledger.session() as db:
        snapshot = db.get(Snapshot, snapshot_id)
    if snapshot is None:
        raise VerificationFailed(f"Snapshot {snapshot_id} is not in the ledger.")
    return snapshot


def _files(ledger: Ledger, snapshot_id: str) -> list[SnapshotFile]:
    with ledger.session() as db:
        return list(
            db.exec(
                select(SnapshotFile)
                .where(SnapshotFile.snapshot_id == snapshot_id)
                .order_by(SnapshotFile.path)
            )
        )


def _record_file(
    ledger: Ledger, snapshot_id: str, path: str, digests: Digests, version_id: str | None
) -> None:
    with ledger.session() as db:
        row = db.exec(
            select(SnapshotFile).where(
                SnapshotFile.snapshot_id == snapshot_id, SnapshotFile.path == path
            )
        ).first()
        values = {
            "size": digests.size,
            "sha256": digests.sha256,
            "sha512": digests.sha512,
            "crc64nvme": digests.crc64nvme,
            "version_id": version_id,
            "stored_at": utcnow(),
        }
        if row is None:
            row = SnapshotFile(snapshot_id=snapshot_id, path=path, **values)
        else:
            row.sqlmodel_update(values)
        db.add(row)


def _record_event(
    ledger: Ledger,
    snapshot: Snapshot,
    run_id: str | None,
    bucket: str,
    path: str,
    outcome: str,
    detail: str | None,
    bytes_read: int,
    seconds: float,
) -> None:
    with ledger.session() as db:
        db.add(
            FixityEvent(
                snapshot_id=snapshot.id,
                run_id=run_id,
                bucket=bucket,
                path=path,
                method="deep",
                bytes_read=bytes_read,
                duration_s=seconds,
                outcome=outcome,
                detail=detail,
            )
        )
