"""Snapshot: a model's weights read once into a BagIt package on every replica.

A resumed snapshot writes into the same package and sends only what the replicas do not
already hold; what each replica holds is recorded as the uploads complete, in batches.
A version a killed process stored but never recorded is adopted or named
(``leftovers.py``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass

from sunset.errors import PreservationError
from sunset.ledger import CatalogModel, DeprecationRun, Ledger, Snapshot, SnapshotState, utcnow
from sunset.preservation.leftovers import (
    Adoption,
    adopt_unrecorded,
    describe,
    record_leftovers,
    stray_versions,
)
from sunset.preservation.package import WEIGHTS_DIR, package_prefix
from sunset.preservation.records import (
    held_objects,
    intact_objects,
    preserved,
    record_stored,
    snapshot_files,
)
from sunset.preservation.replicas import ReplicatedStore, Upload
from sunset.preservation.seal import write_tag_files
from sunset.preservation.weights import SourceFile, WeightsReader
from sunset.preservation.workers import FileToStore, Workers, thread_workers

MIB = 1024 * 1024
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
    # The run that made the package, when this run reuses its deprecation's package.
    reused_from_run: str | None = None
    # Files a killed process stored but never recorded, found whole and recorded as they are.
    adopted_files: int = 0
    # Versions under the package's weights that it does not use, locked: see leftovers.py.
    leftovers: tuple[str, ...] = ()


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
    progress: Callable[[int, int], None] | None = None,
    workers: Workers | None = None,
) -> SnapshotSummary:
    """Read every weights file once into a new package on every replica, then write its
    tag files.

    A file already recorded in this snapshot and still held by a replica (the recorded
    version, with the recorded size and ETag, and current) is not sent to that replica
    again, and the parts of a multipart upload a killed process left open are kept, so a
    resumed snapshot only sends what is missing; when it must read a file again for one
    replica, the bytes must match what the others hold.

    A file not recorded yet that a replica already holds, in a version with exactly the
    bytes read now, is recorded with that version instead of being sent again; every other
    version of the package's weights that the package does not use is recorded as a
    leftover and named in the summary.

    Each file is stored by ``workers`` (default: threads of this process, reading with
    ``weights``); what they return is recorded here, in batches, so the ledger has one
    writer however many workers there are.

    Raises:
        PreservationError: a source file changed since this snapshot recorded it, or
            cannot be read any more.
    """
    snapshot = _open_snapshot(ledger, store, run, model, len(sources))
    own = thread_workers(store, weights) if workers is None else contextlib.nullcontext(workers)
    with own as chosen:
        return _store_package(
            ledger, store, run, snapshot, sources, weights, organization, progress, chosen
        )


def _store_package(
    ledger: Ledger,
    store: ReplicatedStore,
    run: DeprecationRun,
    snapshot: Snapshot,
    sources: Sequence[SourceFile],
    weights: WeightsReader,
    organization: str,
    progress: Callable[[int, int], None] | None,
    workers: Workers,
) -> SnapshotSummary:
    left_open = {copy.name: copy.open_uploads(snapshot.prefix) for copy in store.copies}
    recorded = {f.path: f for f in snapshot_files(ledger, snapshot.id)}
    held = held_objects(ledger, snapshot.id)
    intact = intact_objects(store, snapshot, held.values()) if recorded else set()
    strays = stray_versions(store.copies, snapshot, held.values())
    total = sum(source.size for source in sources)
    done = uploaded = adopted = sent = 0
    batch = _RecordBatch(ledger, store, snapshot.id)
    in_flight: dict[Future[Upload], FileToStore] = {}
    failures: list[BaseException] = []

    def advanced(source: SourceFile, upload: Upload | None = None, *, found: bool = False) -> None:
        nonlocal done, uploaded, adopted, sent
        if upload is not None:
            batch.add(_payload_path(source), upload)
            uploaded, adopted = uploaded + (not found), adopted + found
            sent += upload.bytes_sent
        done += source.size
        if progress:
            progress(done, total)

    def collect(until_at_most: int) -> None:
        # Waits in slices of a batch's age, so a batch of small files stored while a large
        # one is still on its way is recorded on time.
        while len(in_flight) > until_at_most:
            finished, _ = wait(in_flight, RECORD_BATCH_SECONDS, FIRST_COMPLETED)
            for future in finished:
                item = in_flight.pop(future)
                error = future.exception()
                if error is None:
                    advanced(item.source, future.result())
                else:
                    failures.append(error)
            batch.flush_if_due()

    try:
        for source in sources:
            path = _payload_path(source)
            key = snapshot.prefix + path
            known = recorded.get(path)
            expected = preserved(known) if known else None
            if known is not None and known.size != source.size:
                raise PreservationError(
                    f"{source.location} is {source.size} bytes now but {known.size} bytes "
                    "when this snapshot stored it; restore the original file, or start a "
                    "new deprecation run."
                )
            targets = tuple(
                c.name
                for c in store.copies
                if expected is None
                or (c.name, path) not in intact
                or preserved(held[(c.name, path)]) != expected
            )
            if not targets:
                advanced(source)
                continue
            adoption: Adoption | None = None
            if known is None and any((name, key) in strays for name in targets):
                adoption = adopt_unrecorded(
                    [c for c in store.copies if c.name in targets],
                    key,
                    source,
                    weights,
                    strays,
                    store.part_size,
                )
                targets = tuple(name for name in targets if name not in adoption.stored)
                expected = adoption.digests  # what is sent must be what was adopted
                if not targets:
                    advanced(source, _joined(adoption, None), found=True)
                    continue
            resume = {name: left_open[name].pop(key) for name in targets if key in left_open[name]}
            item = FileToStore(source, key, targets, expected, resume)
            if adoption is not None:  # rare: sent at once, beside the versions it keeps
                collect(0)
                if failures:
                    break
                advanced(source, _joined(adoption, workers.store_file(item).result()))
                continue
            if workers.large_files_alone and (source.size >= store.part_size or resume):
                collect(0)  # one large file at a time, after the small ones before it
                batch.flush()
                if not failures:
                    in_flight[workers.store_file(item)] = item
                    collect(0)
            else:
                collect(workers.files_at_once - 1)
                if not failures:
                    in_flight[workers.store_file(item)] = item
            if failures:
                break
    finally:
        # Uploads that completed are recorded even when another one failed, so that a
        # rerun does not send them again.
        collect(0)
        batch.flush()
    if failures:
        raise failures[0]
    for copy in store.copies:
        # Uploads no file completed: of files no longer in the weights or now small, or
        # opened by a worker that died mid-file (its file was stored again from the start).
        for upload in copy.open_uploads(snapshot.prefix).values():
            copy.abort_upload(upload.key, upload.upload_id)
    now_held = held_objects(ledger, snapshot.id).values()
    leftovers = record_leftovers(
        ledger, store.copies, snapshot, run.id, stray_versions(store.copies, snapshot, now_held)
    )
    digest = write_tag_files(ledger, store, snapshot.id, organization)
    with ledger.session() as db:
        stored_snapshot = db.get(Snapshot, snapshot.id)
        assert stored_snapshot is not None
        stored_snapshot.state, stored_snapshot.stored_at = SnapshotState.STORED, utcnow()
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
        adopted_files=adopted,
        leftovers=describe(leftovers),
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

    def flush_if_due(self) -> None:
        """Record the batch once it is a batch's age old, even with no file added since."""
        if self.uploads and time.monotonic() - self.opened >= RECORD_BATCH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self.uploads:
            record_stored(self.ledger, self.store, self.snapshot_id, self.uploads, payload=True)
            self.uploads = {}


def _open_snapshot(
    ledger: Ledger, store: ReplicatedStore, run: DeprecationRun, model: CatalogModel, files: int
) -> Snapshot:
    """The run's package, new or resumed. While it is uploading, its file count is the
    number of weights files to store, so a package left half-stored shows how much is
    missing; writing the tag files sets it to the files the manifest lists."""
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
        if snapshot.state == SnapshotState.UPLOADING:
            snapshot.file_count = files
        db.add(snapshot)
        return snapshot


def _joined(adoption: Adoption, upload: Upload | None) -> Upload:
    """A file's versions: those adopted, and those just sent to the other replicas."""
    if upload is None:
        return Upload(adoption.digests, dict(adoption.stored), 0)
    return Upload(adoption.digests, adoption.stored | upload.stored, upload.bytes_sent)
