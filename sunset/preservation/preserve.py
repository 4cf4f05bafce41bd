"""Snapshot, verify and seal: the weights into a BagIt package on every replica, and proof
they are intact.

The ledger is the source of truth for what a package must hold: one ``SnapshotFile`` per
payload file with its digests, and one ``PreservedObject`` per object and replica with
the version that holds it and how long that version is locked. The tag files (manifests,
bag-info) are derived from the ``SnapshotFile`` rows, so a package can always be
re-derived and compared byte for byte.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from sqlmodel import col, select

from sunset.errors import PreservationError, VerificationFailed
from sunset.ledger import (
    CatalogModel,
    DeprecationRun,
    FixityEvent,
    Ledger,
    PendingWrite,
    PreservedObject,
    Snapshot,
    SnapshotFile,
    utcnow,
)
from sunset.preservation.fixity import (
    DEEP,
    FAST,
    MISMATCH,
    Finding,
    absent,
    deep_check,
    fast_check,
    record,
    still_held,
)
from sunset.preservation.package import (
    WEIGHTS_DIR,
    PayloadEntry,
    bag_info,
    manifest_digest,
    package_prefix,
    tag_files,
)
from sunset.preservation.replicas import ReplicatedStore, Upload
from sunset.preservation.store import Digests, ObjectStore, OpenUpload, StoredObject, digest_bytes
from sunset.preservation.weights import SourceFile, WeightsReader

Progress = Callable[[int, int], None]

MIB = 1024 * 1024
# Files smaller than a part are sent this many at a time: for small files the time goes
# to the round trips, not the bytes. Larger files go one at a time, PARTS_IN_FLIGHT parts
# each, so memory stays bounded by parts either way.
SMALL_FILES_IN_FLIGHT = 8
# Stored files are recorded in one transaction per batch, each only after its upload
# completed, so a crash can cost a rerun at most one batch sent again and never leaves a
# file recorded that is not stored. A batch closes at this many files, bytes or seconds,
# and before a file too large to share one begins.
RECORD_BATCH_FILES = 64
RECORD_BATCH_BYTES = 64 * MIB
RECORD_BATCH_SECONDS = 1.0


@dataclass(frozen=True)
class SnapshotSummary:
    snapshot_id: str
    location: str
    files: int
    payload_bytes: int
    uploaded_files: int
    skipped_files: int
    manifest_sha256: str
    replicas: tuple[str, ...] = ()
    bytes_sent: int = 0  # weights bytes sent to the store, all replicas together


@dataclass(frozen=True)
class VerificationSummary:
    snapshot_id: str
    bucket: str
    files_checked: int
    bytes_read: int
    passed: bool
    replicas: tuple[str, ...] = ()


def snapshot_id_for(run: DeprecationRun) -> str:
    """Stable for a run, so a resumed snapshot writes into the same package."""
    return f"{run.started_at:%Y%m%dT%H%M%SZ}-{run.id[:8]}"


def snapshot_weights(
    ledger: Ledger,
    store: ReplicatedStore,
    *,
    run: DeprecationRun,
    model: CatalogModel,
    sources: Sequence[SourceFile],
    weights: WeightsReader,
    organization: str,
    progress: Progress | None = None,
) -> SnapshotSummary:
    """Read every weights file once into a new package on every replica, then write its
    tag files.

    A file already recorded in this snapshot and still held by a replica (the recorded
    version, with the recorded size and ETag, and current) is not sent to that replica
    again, and the parts of a multipart upload a killed process left open are kept, so a
    resumed snapshot only sends what is missing; when it must read a file again for one
    replica, the bytes must match what the others hold.

    Raises:
        PreservationError: a source file changed since this snapshot recorded it.
    """
    snapshot = _open_snapshot(ledger, store, run, model)
    left_open = {copy.name: copy.open_uploads(snapshot.prefix) for copy in store.copies}
    recorded = {f.path: f for f in snapshot_files(ledger, snapshot.id)}
    held = _held(ledger, snapshot.id)
    intact = _still_held(store, snapshot, held.values()) if recorded else set()
    total = sum(source.size for source in sources)
    done = uploaded = sent = 0
    batch = _RecordBatch(ledger, store, snapshot.id)
    in_flight: deque[tuple[SourceFile, Future[Upload]]] = deque()

    def send(
        source: SourceFile,
        targets: list[ObjectStore],
        expected: Digests | None,
        resume: Mapping[str, OpenUpload],
    ) -> Upload:
        key = snapshot.prefix + _payload_path(source)
        with weights.open(source) as stream:
            return store.upload(targets, key, stream, expected=expected, resume=resume)

    def advanced(source: SourceFile, upload: Upload | None = None) -> None:
        nonlocal done, uploaded, sent
        if upload is not None:
            batch.add(_payload_path(source), upload)
            uploaded, sent = uploaded + 1, sent + upload.bytes_sent
        done += source.size
        if progress:
            progress(done, total)

    def collect_oldest() -> None:
        source, future = in_flight.popleft()
        advanced(source, future.result())

    with ThreadPoolExecutor(SMALL_FILES_IN_FLIGHT, thread_name_prefix="small-file") as pool:
        try:
            for source in sources:
                path = _payload_path(source)
                key = snapshot.prefix + path
                known = recorded.get(path)
                expected = _digests(known) if known else None
                if known is not None and known.size != source.size:
                    raise PreservationError(
                        f"{source.location} is {source.size} bytes now but {known.size} bytes "
                        "when this snapshot stored it; restore the original file, or start a "
                        "new deprecation run."
                    )
                targets = [
                    c
                    for c in store.copies
                    if expected is None
                    or (c.name, path) not in intact
                    or preserved(held[(c.name, path)]) != expected
                ]
                if not targets:
                    advanced(source)
                    continue
                resume = {
                    c.name: left_open[c.name].pop(key) for c in targets if key in left_open[c.name]
                }
                if source.size < store.part_size and not resume:
                    in_flight.append((source, pool.submit(send, source, targets, expected, {})))
                    if len(in_flight) >= SMALL_FILES_IN_FLIGHT:
                        collect_oldest()
                    continue
                while in_flight:  # one large file at a time, after the small ones before it
                    collect_oldest()
                batch.flush()
                advanced(source, send(source, targets, expected, resume))
            while in_flight:
                collect_oldest()
        finally:
            # Uploads that completed are recorded even when another one failed, so that
            # a rerun does not send them again.
            for source, future in in_flight:
                if future.exception() is None:
                    batch.add(_payload_path(source), future.result())
            batch.flush()
    for copy in store.copies:  # uploads of files no longer in the weights, or now small
        for upload in left_open[copy.name].values():
            copy.abort_upload(upload.key, upload.upload_id)
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
        replicas=tuple(c.name for c in store.copies),
        bytes_sent=sent,
    )


def _payload_path(source: SourceFile) -> str:
    return f"{WEIGHTS_DIR}/{source.relative_path}"


class _RecordBatch:
    """Payload files whose uploads completed, recorded together in one transaction."""

    def __init__(self, ledger: Ledger, store: ReplicatedStore, snapshot_id: str) -> None:
        self.ledger, self.store, self.snapshot_id = ledger, store, snapshot_id
        self.uploads: dict[str, Upload] = {}
        self.opened = 0.0

    def add(self, path: str, upload: Upload) -> None:
        if not self.uploads:
            self.opened = time.monotonic()
        self.uploads[path] = upload
        if (
            len(self.uploads) >= RECORD_BATCH_FILES
            or sum(u.digests.size for u in self.uploads.values()) >= RECORD_BATCH_BYTES
            or time.monotonic() - self.opened >= RECORD_BATCH_SECONDS
        ):
            self.flush()

    def flush(self) -> None:
        if self.uploads:
            record_stored(self.ledger, self.store, self.snapshot_id, self.uploads, payload=True)
            self.uploads = {}


def add_payload(
    ledger: Ledger, store: ReplicatedStore, snapshot_id: str, path: str, data: bytes
) -> None:
    """Store one more payload file (a transcript, the report) and record its digests."""
    _put(ledger, store, _snapshot(ledger, snapshot_id), path, data, payload=True)


def write_tag_files(
    ledger: Ledger, store: ReplicatedStore, snapshot_id: str, organization: str
) -> str:
    """(Re)write bagit.txt, bag-info.txt and the manifests from the ledger's file rows.

    A tag file that every replica already holds with the same bytes is left alone, so
    rewriting an unchanged package adds no object versions.
    """
    snapshot = _snapshot(ledger, snapshot_id)
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


def verify_snapshot(
    ledger: Ledger,
    store: ReplicatedStore,
    *,
    snapshot_id: str,
    run_id: str | None,
    organization: str,
    paths: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> VerificationSummary:
    """Check every payload file (or just ``paths``) and every tag file on every replica:
    fast (one version listing per replica: each version present, same size and ETag,
    still current), then deep (re-read, re-hashed, lock confirmed) for each object the
    fast check passed.

    Every check is recorded as a fixity event. The tag files must also be the ones the
    ledger derives now, so a package whose manifests were not rewritten fails.

    Raises:
        VerificationFailed: any object is missing, shadowed, unlocked or differs; the
            message names them.
    """
    snapshot = _snapshot(ledger, snapshot_id)
    tags = package_tag_files(ledger, snapshot, organization)
    files = snapshot_files(ledger, snapshot_id)
    wanted = [f.path for f in files if paths is None or f.path in paths]
    wanted += list(tags)
    held = _held(ledger, snapshot_id)
    failures: list[str] = []
    total = sum(held[(c.name, p)].size for c in store.copies for p in wanted if (c.name, p) in held)
    bytes_read = 0

    def tally(findings: list[Finding]) -> None:
        record(ledger, findings, run_id=run_id)
        failures.extend(
            f"{f.replica}:{f.path} ({f.outcome}: {f.detail})" for f in findings if not f.ok
        )

    for copy in store.copies:
        refused, listed = _before_listing(copy, snapshot, wanted, held, tags)
        fast = fast_check(copy, snapshot.prefix, listed)
        tally(refused + fast)
        for row, finding in zip(listed, fast, strict=True):
            if not finding.ok:
                continue
            deep = deep_check(copy, snapshot.prefix + row.path, row)
            tally([deep])
            bytes_read += deep.bytes_read
            if progress:
                progress(bytes_read, total)
    if failures:
        raise VerificationFailed(
            f"Verification of package {snapshot.id} failed for {len(failures)} object(s): "
            f"{'; '.join(failures[:10])}. The stored copy cannot be trusted; the serving "
            "status was not changed."
        )
    replicas = tuple(c.name for c in store.copies)
    checked = len(wanted) * len(store.copies)
    return VerificationSummary(snapshot.id, store.bucket, checked, bytes_read, True, replicas)


def _before_listing(
    copy: ObjectStore,
    snapshot: Snapshot,
    wanted: Sequence[str],
    held: Mapping[tuple[str, str], PreservedObject],
    tags: Mapping[str, bytes],
) -> tuple[list[Finding], list[PreservedObject]]:
    """Split ``wanted`` into what fails without asking the store (never recorded on this
    copy; a tag file that is not the one the ledger derives now) and the rows to check."""
    refused: list[Finding] = []
    rows: list[PreservedObject] = []
    for path in wanted:
        row = held.get((copy.name, path))
        if row is None:
            refused.append(absent(snapshot.id, copy.name, copy.bucket, path, FAST))
        elif path in tags and preserved(row) != digest_bytes(tags[path]):
            stale = "not the tag file the ledger derives now (not rewritten after a change)"
            refused.append(
                Finding(
                    snapshot.id, copy.name, copy.bucket, path, row.version_id, FAST, MISMATCH, stale
                )
            )
        else:
            rows.append(row)
    return refused, rows


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
    snapshot = _snapshot(ledger, snapshot_id)
    adopted = _adopt_pending_writes(ledger, store, snapshot)
    derived = manifest_digest(package_tag_files(ledger, snapshot, organization))
    if snapshot.manifest_sha256 in (None, derived):
        return adopted
    write_tag_files(ledger, store, snapshot_id, organization)
    return True


def is_verified(ledger: Ledger, snapshot_id: str) -> bool:
    """True when every replica holds every payload file and every object's latest checks
    since it was stored are ``ok``, a deep one among them."""
    files = snapshot_files(ledger, snapshot_id)
    held = _held(ledger, snapshot_id)
    replicas = {replica for replica, _ in held}
    # Nothing held anywhere is nothing verified, however many files the manifest lists.
    if not files or not held or any((r, f.path) not in held for r in replicas for f in files):
        return False
    with ledger.session() as db:
        events = db.exec(
            select(FixityEvent).where(
                FixityEvent.snapshot_id == snapshot_id,
                FixityEvent.method.in_([FAST, DEEP]),  # type: ignore[attr-defined]
            )
        ).all()
    since_stored: dict[tuple[str | None, str], list[FixityEvent]] = {}
    for event in sorted(events, key=lambda e: (e.checked_at, e.id or 0)):
        row = held.get((event.replica or "", event.path))
        if row is not None and event.checked_at >= row.stored_at:
            since_stored.setdefault((event.replica, event.path), []).append(event)
    for key in held:
        checks = since_stored.get(key, [])
        deep_ok = any(e.method == DEEP and e.outcome == "ok" for e in checks)
        if not checks or not deep_ok or checks[-1].outcome != "ok":
            return False
    return True


def preserved(held: PreservedObject) -> Digests:
    """The digests a preserved object must have."""
    return Digests(held.size, held.sha256, held.sha512, held.crc64nvme)


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
    intact = _still_held(store, snapshot, [row for row in rows if preserved(row) == digests])
    targets = [c for c in store.copies if (c.name, path) not in intact]
    if targets:
        _note_pending_write(ledger, snapshot.id, path, digests, payload=payload)
        upload = store.put_bytes(targets, key, data)
        record_stored(ledger, store, snapshot.id, {path: upload}, payload=payload)


def _note_pending_write(
    ledger: Ledger, snapshot_id: str, path: str, digests: Digests, *, payload: bool
) -> None:
    values = {
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
    held = _held(ledger, snapshot.id)
    adopted = False
    for write in pending:
        key = snapshot.prefix + write.path
        digests = Digests(write.size, write.sha256, write.sha512, write.crc64nvme)
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


def _still_held(
    store: ReplicatedStore, snapshot: Snapshot, rows: Collection[PreservedObject]
) -> set[tuple[str, str]]:
    """(replica, path) of each row whose replica still holds the recorded version,
    unchanged and current: one version listing per replica."""
    intact: set[tuple[str, str]] = set()
    for copy in store.copies:
        mine = [row for row in rows if row.replica == copy.name]
        intact |= {(copy.name, row.path) for row in still_held(copy, snapshot.prefix, mine)}
    return intact


def _open_snapshot(
    ledger: Ledger, store: ReplicatedStore, run: DeprecationRun, model: CatalogModel
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


def snapshot_files(ledger: Ledger, snapshot_id: str) -> list[SnapshotFile]:
    with ledger.session() as db:
        return list(
            db.exec(
                select(SnapshotFile)
                .where(SnapshotFile.snapshot_id == snapshot_id)
                .order_by(SnapshotFile.path)
            )
        )


def _held(ledger: Ledger, snapshot_id: str) -> dict[tuple[str, str], PreservedObject]:
    with ledger.session() as db:
        rows = db.exec(select(PreservedObject).where(PreservedObject.snapshot_id == snapshot_id))
        return {(row.replica, row.path): row for row in rows}


def _digests(file: SnapshotFile) -> Digests:
    return Digests(file.size, file.sha256, file.sha512, file.crc64nvme)


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
            fixity = {
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
