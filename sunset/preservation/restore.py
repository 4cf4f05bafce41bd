"""Reinstatement: a preserved snapshot's weights copied back to where they can be served.

The destination is a local directory or a bucket prefix (``s3://bucket/prefix``) on the
configured S3 endpoint. Every file is hashed while it is written and compared with the
manifest before it is kept; afterwards every restored file is read back and checked
again, so the serving copy is proven identical to the preserved one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import botocore.exceptions
from sqlmodel import select

from sunset.errors import InputError, VerificationFailed
from sunset.ledger import (
    CatalogModel,
    DeprecationRun,
    Ledger,
    Restoration,
    RestorationState,
    RunState,
    ServingStatus,
    Snapshot,
    SnapshotFile,
    SnapshotState,
    utcnow,
)
from sunset.preservation.package import WEIGHTS_DIR
from sunset.preservation.records import snapshot_files
from sunset.preservation.store import Digests, DigestStream, ObjectStore
from sunset.runs.request import check_model_id
from sunset.serving.lifecycle import ACTIVE, ON_REQUEST, REINSTATEMENT

TARGETS = {"active": ACTIVE, "on_request": ON_REQUEST}


@dataclass(frozen=True)
class ReinstatementRequest:
    """What a release manager asks for; plain values, so it can travel as flow parameters."""

    model_id: str
    destination: str
    reason: str
    snapshot_id: str | None = None
    status: str = "active"
    approvals: int = 0

    def parameters(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ReinstatementPlan:
    """A validated request: the snapshot to restore, where to, and the status to reach."""

    request: ReinstatementRequest
    snapshot: Snapshot
    target: ServingStatus
    current: ServingStatus


@dataclass(frozen=True)
class RestoreSummary:
    snapshot_id: str
    destination: str
    files: int
    bytes_written: int


class Destination(Protocol):
    """Where restored files go; paths are relative to the weights directory."""

    description: str

    def is_empty(self) -> bool: ...

    def write(self, path: str, chunks: Iterable[bytes]) -> Digests: ...

    def read_digests(self, path: str) -> Digests: ...


class LocalDirectory:
    """A directory on a disk the serving hosts read."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.description = str(self.root)

    def is_empty(self) -> bool:
        return not self.root.exists() or not any(self.root.iterdir())

    def write(self, path: str, chunks: Iterable[bytes]) -> Digests:
        target = self._inside(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        stream = DigestStream()
        # Written beside the target and renamed: a crash never leaves a half file under
        # the real name.
        with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as out:
            try:
                for chunk in chunks:
                    stream.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            except BaseException:
                Path(out.name).unlink(missing_ok=True)
                raise
        Path(out.name).replace(target)
        return stream.result()

    def read_digests(self, path: str) -> Digests:
        stream = DigestStream()
        with self._inside(path).open("rb") as source:
            while chunk := source.read(1024 * 1024):
                stream.update(chunk)
        return stream.result()

    def _inside(self, path: str) -> Path:
        target = (self.root / path).resolve()
        if not target.is_relative_to(self.root):
            raise VerificationFailed(f"Package path {path!r} would leave {self.root}.")
        return target


class BucketDestination:
    """A prefix in a bucket on the configured S3 endpoint."""

    def __init__(self, store: ObjectStore, prefix: str, spool_dir: Path) -> None:
        self.store, self.prefix, self.spool_dir = store, prefix, spool_dir
        self.description = f"s3://{store.bucket}/{prefix}"

    def is_empty(self) -> bool:
        listing = self.store.client.list_objects_v2(
            Bucket=self.store.bucket, Prefix=self.prefix, MaxKeys=1
        )
        return listing.get("KeyCount", 0) == 0

    def write(self, path: str, chunks: Iterable[bytes]) -> Digests:
        # A serving copy, not a preserved one: no lock. Spooled to a file so boto3 can send
        # it in parts, hashed on the way in so the check after restoring has its digests.
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        stream = DigestStream()
        with tempfile.NamedTemporaryFile(dir=self.spool_dir) as spool:
            for chunk in chunks:
                stream.update(chunk)
                spool.write(chunk)
            spool.flush()
            self.store.client.upload_file(
                spool.name,
                self.store.bucket,
                self.prefix + path,
                ExtraArgs={"ChecksumAlgorithm": "CRC64NVME"},
            )
        return stream.result()

    def read_digests(self, path: str) -> Digests:
        if self.store.head(self.prefix + path) is None:
            raise FileNotFoundError(self.prefix + path)
        return self.store.read_digests(self.prefix + path)


def open_destination(destination: str, source: ObjectStore, spool_dir: Path) -> Destination:
    """A local directory, or ``s3://bucket/prefix`` on the same endpoint as the packages.

    Raises:
        InputError: the destination is not usable.
    """
    if destination.startswith("s3://"):
        bucket, _, prefix = destination.removeprefix("s3://").partition("/")
        if not bucket:
            raise InputError(
                f"Destination {destination!r} names no bucket; use s3://BUCKET/PREFIX."
            )
        store = ObjectStore(source.client, bucket)
        try:
            store.client.head_bucket(Bucket=bucket)
        except botocore.exceptions.ClientError:
            raise InputError(
                f"Destination bucket {bucket!r} cannot be reached at {store.endpoint}; "
                "create it or check its name and the S3 keys."
            ) from None
        return BucketDestination(store, prefix.rstrip("/") + "/" if prefix else "", spool_dir)
    if "://" in destination:
        raise InputError(
            f"Destination {destination!r} is neither a local directory nor an s3:// URL."
        )
    path = Path(destination).expanduser()
    if path.exists() and not path.is_dir():
        raise InputError(f"Destination {path} exists and is not a directory.")
    return LocalDirectory(path)


def plan_reinstatement(
    ledger: Ledger, request: ReinstatementRequest, destination: Destination
) -> ReinstatementPlan:
    """Check a reinstatement request whole before anything is copied.

    Raises:
        InputError: one sentence naming what is wrong and what to do.
    """
    check_model_id(request.model_id)
    if not request.reason.strip():
        raise InputError("Say why the model is reinstated: pass --reason TEXT (it is recorded).")
    target = TARGETS.get(request.status)
    if target is None:
        raise InputError(
            f"A model is reinstated as 'active' or 'on_request', not {request.status!r}."
        )
    if not 0 <= request.approvals <= 2:
        raise InputError(f"Approvals must be 0, 1 or 2, not {request.approvals}.")
    with ledger.session() as db:
        model = db.get(CatalogModel, request.model_id)
        if model is None:
            raise InputError(f"Model {request.model_id!r} is not in the catalog.")
        query = select(Snapshot).where(
            Snapshot.model_id == model.id, Snapshot.state == SnapshotState.STORED
        )
        if request.snapshot_id:
            query = query.where(Snapshot.id == request.snapshot_id)
        snapshot = db.exec(query.order_by(Snapshot.created_at.desc())).first()  # type: ignore[attr-defined]
        resumable = db.exec(
            select(DeprecationRun).where(
                DeprecationRun.model_id == model.id,
                DeprecationRun.kind == REINSTATEMENT,
                DeprecationRun.state.in_([RunState.RUNNING, RunState.FAILED]),  # type: ignore[attr-defined]
            )
        ).all()
    if snapshot is None:
        which = f"snapshot {request.snapshot_id}" if request.snapshot_id else "a stored snapshot"
        raise InputError(
            f"{model.id} has no {which} to reinstate from; `sunset status {model.id}` lists "
            "its packages."
        )
    if not weights_files(ledger, snapshot.id):
        raise InputError(f"Snapshot {snapshot.id} holds no weights files; choose another one.")
    resuming = any(run.parameters == request.parameters() for run in resumable)
    if not resuming and not destination.is_empty():
        raise InputError(
            f"Destination {destination.description} is not empty; restore into an empty "
            "directory or prefix so that no other file is mistaken for the model's."
        )
    return ReinstatementPlan(request, snapshot, target, ServingStatus(model.serving_status))


def weights_files(ledger: Ledger, snapshot_id: str) -> list[SnapshotFile]:
    """The payload files under ``data/weights/`` of a snapshot, by path."""
    return [f for f in snapshot_files(ledger, snapshot_id) if f.path.startswith(WEIGHTS_DIR + "/")]


def restore_snapshot(
    ledger: Ledger,
    source: ObjectStore,
    destination: Destination,
    *,
    run_id: str,
    snapshot_id: str,
) -> RestoreSummary:
    """Copy every weights file of the snapshot (the exact stored version) to the destination.

    Raises:
        VerificationFailed: a file read from the package differs from its manifest entry;
            the file is not kept under its name.
    """
    with ledger.session() as db:
        snapshot = db.get(Snapshot, snapshot_id)
        assert snapshot is not None
    restoration = _restoration(ledger, run_id, snapshot_id, destination.description)
    files = weights_files(ledger, snapshot_id)
    written = 0
    for stored in files:
        relative = stored.path.removeprefix(WEIGHTS_DIR + "/")
        chunks = source.iter_object(snapshot.prefix + stored.path, stored.version_id)
        digests = destination.write(relative, chunks)
        problem = _mismatch(digests, stored)
        if problem:
            raise VerificationFailed(
                f"{stored.path} read from package {snapshot_id} has {problem}; the package "
                "copy cannot be trusted and the model is not reinstated from it."
            )
        written += digests.size
    _update(
        ledger,
        restoration,
        state=RestorationState.RESTORED,
        files=len(files),
        bytes_written=written,
    )
    return RestoreSummary(snapshot_id, destination.description, len(files), written)


def verify_restoration(
    ledger: Ledger, destination: Destination, *, run_id: str, snapshot_id: str
) -> RestoreSummary:
    """Read every restored file back and compare it with the manifest.

    Raises:
        VerificationFailed: a restored file is missing or differs; the message names them.
    """
    restoration = _restoration(ledger, run_id, snapshot_id, destination.description)
    problems: list[str] = []
    checked = 0
    for stored in weights_files(ledger, snapshot_id):
        relative = stored.path.removeprefix(WEIGHTS_DIR + "/")
        try:
            digests = destination.read_digests(relative)
        except OSError as exc:  # FileNotFoundError included
            problems.append(f"{relative} (cannot be read: {type(exc).__name__})")
            continue
        problem = _mismatch(digests, stored)
        if problem:
            problems.append(f"{relative} ({problem})")
        checked += digests.size
    if problems:
        raise VerificationFailed(
            f"{len(problems)} restored file(s) in {destination.description} differ from the "
            f"manifest: {'; '.join(problems[:10])}. The model was not reinstated."
        )
    files = len(weights_files(ledger, snapshot_id))
    _update(ledger, restoration, state=RestorationState.VERIFIED, verified_at=utcnow())
    return RestoreSummary(snapshot_id, destination.description, files, checked)


def _mismatch(digests: Digests, stored: SnapshotFile) -> str | None:
    if digests.size != stored.size:
        return f"size {digests.size}, not {stored.size}"
    for name in ("sha256", "sha512"):
        if getattr(digests, name) != getattr(stored, name):
            return f"a {name} that differs from the manifest"
    return None


def _restoration(ledger: Ledger, run_id: str, snapshot_id: str, destination: str) -> int:
    with ledger.session() as db:
        row = db.exec(
            select(Restoration).where(
                Restoration.run_id == run_id, Restoration.snapshot_id == snapshot_id
            )
        ).first()
        if row is None:
            row = Restoration(run_id=run_id, snapshot_id=snapshot_id, destination=destination)
            db.add(row)
            db.flush()
        assert row.id is not None
        return row.id


def _update(ledger: Ledger, restoration_id: int, **values: Any) -> None:
    with ledger.session() as db:
        row = db.get(Restoration, restoration_id)
        assert row is not None
        if "state" in values and values["state"] == RestorationState.RESTORED:
            values["restored_at"] = utcnow()
        row.sqlmodel_update(values)
        db.add(row)
