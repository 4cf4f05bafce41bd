"""Helpers for the preservation tests: weights, runs, and looking at the real store."""

from __future__ import annotations

import random
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from awscrt import checksums

from sunset.config import Settings
from sunset.ledger import CatalogModel, DeprecationRun, Ledger, utcnow
from sunset.preservation.audit import AuditSummary, begin_audit, conclude
from sunset.preservation.audit_checks import deep_audit, fast_audit
from sunset.preservation.reach import Reach
from sunset.preservation.repair import extend_retention, repair
from sunset.preservation.replicas import ReplicatedStore, connect_store
from sunset.preservation.snapshot import SnapshotSummary, snapshot_weights
from sunset.preservation.store import ObjectStore
from sunset.preservation.weights import SourceFile, WeightsReader
from sunset.preservation.workers import Workers
from sunset_dev.example_model import EXAMPLE_MODEL_ID
from sunset_dev.seaweedfs import s3_client

MIB = 1024 * 1024
PART = 5 * MIB  # the smallest part S3 (and SeaweedFS) accepts
# A small model whose one large file is sent in three parts.
WEIGHTS = {
    "config.json": 300,
    "model-00001-of-00002.bin": 2 * PART + 123,
    "model-00002-of-00002.bin": MIB,
    "tokenizer/tokenizer.json": 4000,
}


def write_weights(directory: Path, sizes: dict[str, int] = WEIGHTS) -> Path:
    """Deterministic, incompressible files: the same bytes on every run."""
    for name, size in sizes.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(random.Random(name).randbytes(size))
    return directory


def start_run(ledger: Ledger, *, run_id: str | None = None, at: datetime | None = None) -> str:
    """A deprecation run of the example model, as preflight would begin it."""
    with ledger.session() as db:
        run = DeprecationRun(model_id=EXAMPLE_MODEL_ID, started_at=at or utcnow())
        if run_id:
            run.id = run_id
        db.add(run)
        return run.id


def snapshot(
    ledger: Ledger,
    store: ReplicatedStore,
    weights: str,
    run_id: str,
    reader: WeightsReader,
    workers: Workers | None = None,
) -> SnapshotSummary:
    with ledger.session() as db:
        run = db.get(DeprecationRun, run_id)
        model = db.get(CatalogModel, EXAMPLE_MODEL_ID)
    assert run is not None and model is not None
    return snapshot_weights(
        ledger,
        store,
        run=run,
        model=model,
        sources=reader.scan(weights),
        weights=reader,
        organization="Example Lab",
        workers=workers,
    )


class CountingReader(WeightsReader):
    """Counts how often each source file is opened (each open is one read pass)."""

    def __init__(self, s3_client: Any = None) -> None:
        super().__init__(s3_client)
        self.opened: Counter[str] = Counter()

    @contextmanager
    def open(self, file: SourceFile) -> Iterator[IO[bytes]]:
        self.opened[file.relative_path] += 1
        with super().open(file) as stream:
            yield stream


class FailingReader(CountingReader):
    """Fails reading one file, as a disk error would, after handing out its stream."""

    def __init__(self, fails: str) -> None:
        super().__init__()
        self.fails = fails

    @contextmanager
    def open(self, file: SourceFile) -> Iterator[IO[bytes]]:
        with super().open(file) as stream:
            if file.relative_path == self.fails:
                raise OSError(f"Input/output error reading {file.relative_path}")
            yield stream


def configured_store() -> ReplicatedStore:
    """The store the current SUNSET_* settings describe, buckets created."""
    store = connect_store(Settings())
    store.ensure_buckets()
    return store


def versions(copy: ObjectStore, prefix: str = "") -> dict[str, list[dict[str, Any]]]:
    """Every version (and delete marker) of every key, newest first."""
    listing = copy.client.list_object_versions(Bucket=copy.bucket, Prefix=prefix)
    found: dict[str, list[dict[str, Any]]] = {}
    for item in [*listing.get("Versions", []), *listing.get("DeleteMarkers", [])]:
        found.setdefault(item["Key"], []).append(item)
    for items in found.values():
        items.sort(key=lambda v: v["LastModified"], reverse=True)
    return found


def current_package(copy: ObjectStore, prefix: str) -> dict[str, bytes]:
    """The current bytes of every object under ``prefix``, by path inside the package."""
    listing = copy.client.list_objects_v2(Bucket=copy.bucket, Prefix=prefix)
    return {
        item["Key"].removeprefix(prefix): copy.get_bytes(item["Key"])
        for item in listing.get("Contents", [])
    }


def parts_sent(copy: ObjectStore, key_suffix: str) -> int:
    """Parts the bucket holds of the open multipart upload of the key ending so (the
    most, if several are open)."""
    uploads = copy.client.list_multipart_uploads(Bucket=copy.bucket).get("Uploads", [])
    held = 0
    for upload in uploads:
        if upload["Key"].endswith(key_suffix):
            listed = copy.client.list_parts(
                Bucket=copy.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            )
            held = max(held, len(listed.get("Parts", [])))
    return held


def bagit_validates(package: dict[str, bytes], directory: Path) -> subprocess.CompletedProcess[str]:
    """Write a package out and run the Library of Congress validator on it."""
    for path, data in package.items():
        target = directory / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return subprocess.run(
        [sys.executable, "-m", "bagit", "--validate", str(directory)],
        capture_output=True,
        text=True,
    )


def rot_on_disk(seaweedfs_dir: Path, bucket: str, data: bytes) -> None:
    """Flip one bit of ``data`` where SeaweedFS keeps it on disk for ``bucket``: bit rot
    the store itself does not notice.

    SeaweedFS keeps each bucket in volumes of its own collection, ``<bucket>_<n>.dat``; a
    needle holds a chunk of the object followed by its CRC32C. The needle's CRC is
    rewritten to match the flipped bytes: otherwise SeaweedFS refuses the read itself
    (after retrying for 13 s or more), and only Sunset's own digests can catch the rest.
    """
    probe = len(data) // 2
    for volume in sorted(seaweedfs_dir.glob(f"{bucket}_*.dat")):
        blob = bytearray(volume.read_bytes())
        offset = blob.find(data[probe : probe + 64])
        if offset < 0:
            continue
        start, inside = offset, probe  # walk back to where the needle's data begins
        while inside > 0 and blob[start - 1] == data[inside - 1]:
            start, inside = start - 1, inside - 1
        size = int.from_bytes(blob[start - 4 : start], "big")
        old_crc = checksums.crc32c(bytes(blob[start : start + size])).to_bytes(4, "big")
        crc_at = blob.find(old_crc, start + size, start + size + 64)
        assert crc_at > 0, "no needle checksum after the data"
        blob[offset] ^= 0x01
        blob[crc_at : crc_at + 4] = checksums.crc32c(bytes(blob[start : start + size])).to_bytes(
            4, "big"
        )
        with volume.open("r+b") as file:
            file.seek(start)
            file.write(blob[start : crc_at + 4])
        return
    raise AssertionError(f"the bytes were not found in any volume of {bucket}")


def audit_in_process(
    ledger: Ledger,
    store: ReplicatedStore,
    *,
    delays: tuple[float, ...] = (0.01,),
    budget_bytes: int = 1 << 40,
    margin: timedelta = timedelta(days=1),
) -> AuditSummary:
    """One audit run through the core functions, step by step as the flow chains them
    (each step beginning with the replicas set aside by the one before), without Prefect."""
    audit_id = begin_audit(ledger, None, "audit-in-process")
    fast = fast_audit(ledger, store, audit_id, Reach(delays))
    deep = deep_audit(
        ledger,
        store,
        audit_id,
        Reach(delays, fast.unanswered),
        budget_bytes=budget_bytes,
        period=timedelta(days=90),
    )
    damaged = [*fast.damaged, *deep.damaged]
    repairs = repair(ledger, store, audit_id, damaged, Reach(delays, deep.unanswered))
    retention = extend_retention(
        ledger, store, audit_id, margin=margin, reach=Reach(delays, repairs.unanswered)
    )
    return conclude(ledger, audit_id, fast, deep, repairs, retention)


def impatient(copy: ObjectStore, endpoint: str | None = None) -> ObjectStore:
    """``copy`` through a client that tries each request once and gives up on a silent
    store in a second, at ``endpoint`` (default: the same one): outages show at once."""
    client = s3_client(
        endpoint or copy.endpoint,
        "sunset-devstack",
        "sunset-devstack",
        retries={"total_max_attempts": 1},
        connect_timeout=1,
        read_timeout=5,
    )
    return ObjectStore(client, copy.bucket, copy.name)


def with_copy(store: ReplicatedStore, copy: ObjectStore) -> ReplicatedStore:
    """``store`` with the copy of the same name replaced by ``copy``."""
    return replace(store, copies=[copy if c.name == copy.name else c for c in store.copies])
