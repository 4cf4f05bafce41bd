"""Where the per-file work of a snapshot, a verification and an audit runs.

The unit of work is one file stored on the replicas that need it (``store_file``) or one
recorded object version re-read and re-hashed (``reread``). Each is given everything it
needs as plain data and returns what it found, so it can run in this process or on
another machine; the caller alone writes the ledger, in batches, from what the units
return, so a unit that dies mid-way has written nothing and is simply done again.

``ThreadWorkers`` runs them in this process, as a single run always did. The fan-out
onto a Dask cluster, one Prefect task per unit, is ``tasks/fanout.py``: the core never
imports Prefect.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from sunset.ledger import PreservedObject
from sunset.preservation.fixity import Finding, reread_finding
from sunset.preservation.replicas import ReplicatedStore, Upload
from sunset.preservation.store import Digests, OpenUpload
from sunset.preservation.weights import SourceFile, WeightsReader

# Files smaller than a part are sent this many at a time in one process: for small files
# the time goes to the round trips, not the bytes. Larger files go one at a time, each
# with PARTS_IN_FLIGHT parts, so memory stays bounded by parts either way.
SMALL_FILES_IN_FLIGHT = 8
# Objects re-read at a time in one process, as `rclone check --download` does with its
# default four checkers: each read hashes on its own thread (SHA-256 and the CRC release
# the GIL) and waits on the network between chunks, so several in flight keep the cores
# and the connection busy. Memory stays one read chunk per object in flight.
DEEP_CHECKS_AT_ONCE = 4


@dataclass(frozen=True)
class FileToStore:
    """One weights file to store: its key, the replicas (by name) that must receive it,
    the digests it must have (a resumed snapshot) and the multipart uploads to resume."""

    source: SourceFile
    key: str
    targets: tuple[str, ...]
    expected: Digests | None = None
    resume: Mapping[str, OpenUpload] = field(default_factory=dict)


@dataclass(frozen=True)
class ObjectToReread:
    """One recorded object version to re-read on one replica, re-hashed with SHA-256 and
    CRC64NVME, and with SHA-512 too when ``all_digests``."""

    replica: str
    key: str
    held: PreservedObject
    all_digests: bool = False


def store_file(store: ReplicatedStore, weights: WeightsReader, item: FileToStore) -> Upload:
    """Read one file once and store it on its target replicas, hashing it on the way."""
    targets = [store.copy(name) for name in item.targets]
    if any(target is None for target in targets):
        missing = [n for n, t in zip(item.targets, targets, strict=True) if t is None]
        raise ValueError(f"Replicas {missing} are not configured here (SUNSET_REPLICAS).")
    with weights.open(item.source) as stream:
        return store.upload(
            [t for t in targets if t is not None],
            item.key,
            stream,
            expected=item.expected,
            resume=item.resume,
        )


def reread(store: ReplicatedStore, item: ObjectToReread) -> Finding:
    """Re-read one object version on its replica (the deep check), raising the store's
    error: whoever asked decides whether to try again or record it unreadable."""
    copy = store.copy(item.replica)
    if copy is None:
        raise ValueError(f"Replica {item.replica} is not configured here (SUNSET_REPLICAS).")
    return reread_finding(copy, item.key, item.held, all_digests=item.all_digests)


class Workers(Protocol):
    """Where the units of work run. Each call returns at once with a future."""

    @property
    def files_at_once(self) -> int:
        """How many files to keep in flight."""

    @property
    def objects_at_once(self) -> int:
        """How many re-reads to keep in flight."""

    @property
    def large_files_alone(self) -> bool:
        """A file of a part or more is stored with nothing else in flight (one process's
        memory holds one large file's parts); else each worker holds its own."""

    def store_file(self, item: FileToStore) -> Future[Upload]: ...

    def reread(self, item: ObjectToReread) -> Future[Finding]: ...


@dataclass(frozen=True)
class ThreadWorkers:
    """The units run on threads of this process, with this process's clients."""

    store: ReplicatedStore
    weights: WeightsReader | None  # None: workers that only re-read
    pool: ThreadPoolExecutor
    files_at_once: int = SMALL_FILES_IN_FLIGHT
    objects_at_once: int = DEEP_CHECKS_AT_ONCE
    large_files_alone: bool = True

    def store_file(self, item: FileToStore) -> Future[Upload]:
        assert self.weights is not None, "these workers were made to re-read, not to store"
        return self.pool.submit(store_file, self.store, self.weights, item)

    def reread(self, item: ObjectToReread) -> Future[Finding]:
        return self.pool.submit(reread, self.store, item)


@contextmanager
def thread_workers(
    store: ReplicatedStore, weights: WeightsReader | None = None
) -> Iterator[ThreadWorkers]:
    """Workers on this process's threads, stopped when the block ends."""
    with ThreadPoolExecutor(SMALL_FILES_IN_FLIGHT, thread_name_prefix="file") as pool:
        yield ThreadWorkers(store, weights, pool)
