"""Verification: proof that every replica holds every object of a package intact, each
check recorded as a fixity event (whether a package stands verified is read from those
events in ``standing.py``)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass

from sunset.errors import VerificationFailed
from sunset.ledger import Ledger, PreservedObject, Snapshot
from sunset.preservation.fixity import (
    STORE_ERRORS,
    Finding,
    absent,
    fast_check,
    record,
    unreadable,
)
from sunset.preservation.outcomes import FAST, MISMATCH
from sunset.preservation.records import (
    held_objects,
    load_snapshot,
    package_tag_files,
    preserved,
    snapshot_files,
)
from sunset.preservation.replicas import ReplicatedStore
from sunset.preservation.store import ObjectStore, digest_bytes
from sunset.preservation.workers import ObjectToReread, Workers, thread_workers


@dataclass(frozen=True)
class VerificationSummary:
    snapshot_id: str
    bucket: str
    files_checked: int
    bytes_read: int
    passed: bool
    replicas: tuple[str, ...] = ()


def verify_snapshot(
    ledger: Ledger,
    store: ReplicatedStore,
    *,
    snapshot_id: str,
    run_id: str | None,
    organization: str,
    paths: Sequence[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    workers: Workers | None = None,
    all_digests: bool = False,
) -> VerificationSummary:
    """Check every payload file (or just ``paths``) and every tag file on every replica:
    fast (one version listing per replica: each version present, same size and ETag,
    still current), then deep (every byte re-read and re-hashed with SHA-256 and
    CRC64NVME, and SHA-512 too with ``all_digests``; lock confirmed) for each object the
    fast check passed. The deep checks run on ``workers`` (default: threads of this
    process, several objects at a time) and are recorded here as they come back.

    Every check is recorded as a fixity event. The tag files must also be the ones the
    ledger derives now, so a package whose manifests were not rewritten fails.

    Raises:
        VerificationFailed: any object is missing, shadowed, unlocked or differs; the
            message names them.
    """
    snapshot = load_snapshot(ledger, snapshot_id)
    tags = package_tag_files(ledger, snapshot, organization)
    files = snapshot_files(ledger, snapshot_id)
    wanted = [f.path for f in files if paths is None or f.path in paths]
    wanted += list(tags)
    held = held_objects(ledger, snapshot_id)
    failures: list[str] = []
    total = sum(held[(c.name, p)].size for c in store.copies for p in wanted if (c.name, p) in held)
    bytes_read = 0

    def tally(findings: list[Finding]) -> None:
        record(ledger, findings, run_id=run_id)
        failures.extend(
            f"{f.replica}:{f.path} ({f.outcome}: {f.detail})" for f in findings if not f.ok
        )

    rereads: list[ObjectToReread] = []
    for copy in store.copies:
        refused, listed = _before_listing(copy, snapshot, wanted, held, tags)
        fast = fast_check(copy, snapshot.prefix, listed)
        tally(refused + fast)
        rereads += [
            ObjectToReread(copy.name, snapshot.prefix + row.path, row, all_digests)
            for row, finding in zip(listed, fast, strict=True)
            if finding.ok
        ]
    own = thread_workers(store) if workers is None else contextlib.nullcontext(workers)
    with own as chosen:
        for deep in deep_checks(store, chosen, rereads):
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


def deep_checks(
    store: ReplicatedStore, workers: Workers, rereads: Iterable[ObjectToReread]
) -> Iterator[Finding]:
    """The deep check of each object, ``workers.objects_at_once`` at a time, as each comes
    back; a read the store did not answer is the object's ``unreadable`` finding."""
    in_flight: dict[Future[Finding], ObjectToReread] = {}
    pending = iter(rereads)
    while True:
        for item in pending:
            in_flight[workers.reread(item)] = item
            if len(in_flight) >= workers.objects_at_once:
                break
        if not in_flight:
            return
        finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
        for future in finished:
            item = in_flight.pop(future)
            error = future.exception()
            if error is None:
                yield future.result()
                continue
            copy = store.copy(item.replica)
            if not isinstance(error, STORE_ERRORS) or copy is None:
                raise error
            yield unreadable(copy, item.held, error)


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
