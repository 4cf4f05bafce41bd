"""The package store: a primary bucket and its replicas, written in one read pass.

Every object goes to every replica, and each may sit on its own endpoint with its own
credentials. A source is read once: each part read is hashed, then sent to every replica
that still needs it. Server-side copy from the primary would be cheaper on one endpoint,
but it cannot cross endpoints or accounts (the destination's credentials would have to
read the source bucket), so the same parts are streamed to all replicas instead; the
parts in flight are shared, so memory does not grow with the number of replicas.

Each replica's upload carries the CRC64NVME full-object checksum, so every replica checks
on its own side that it received exactly the bytes that were read.

A multipart upload that a killed process left open is resumed, not started again: each
part it already holds with the size and MD5 (its ETag) of the part just read is kept, the
rest are sent, and the store completes the object only if the whole has the CRC64NVME of
the bytes read now.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import IO, Any

import botocore.exceptions
from awscrt import checksums

from sunset.config import PRIMARY, S3Connection, Settings
from sunset.errors import SourceChanged
from sunset.ledger import utcnow
from sunset.preservation.store import (
    LOCK_MODE,
    Digests,
    DigestStream,
    ObjectStore,
    OpenUpload,
    StoredObject,
    crc64nvme_b64,
    digest_bytes,
    make_s3_client,
    read_exactly,
)
from sunset.preservation.weights import WeightsReader

PARTS_IN_FLIGHT = 4
DEFAULT_REPLICA = "replica"


@dataclass(frozen=True)
class Upload:
    """One object stored on some replicas: its digests, the version each now holds, and
    the bytes actually sent for it (all replicas together; kept parts are not sent)."""

    digests: Digests
    stored: dict[str, StoredObject]
    bytes_sent: int


@dataclass
class ReplicatedStore:
    """Where packages live: ``copies[0]`` is the primary, the rest are its replicas."""

    copies: list[ObjectStore]
    part_size: int
    retention: timedelta

    @property
    def primary(self) -> ObjectStore:
        return self.copies[0]

    @property
    def bucket(self) -> str:
        """The primary bucket, the one a package's location names."""
        return self.primary.bucket

    @property
    def endpoint(self) -> str:
        return self.primary.endpoint

    def copy(self, name: str) -> ObjectStore | None:
        """The copy the ledger calls ``name``, if it is configured."""
        return next((c for c in self.copies if c.name == name), None)

    def retain_until(self) -> datetime:
        """The lock date for a version stored now (whole seconds, as S3 keeps it)."""
        return (utcnow() + self.retention).replace(microsecond=0)

    def require_ready(self) -> None:
        """Every bucket exists, is reachable and has Object Lock, or an InputError says which."""
        for copy in self.copies:
            copy.require_bucket()

    def ensure_buckets(self) -> None:
        """Create any missing bucket with Object Lock (the demo and the tests)."""
        for copy in self.copies:
            copy.ensure_bucket()

    def put_bytes(self, targets: Sequence[ObjectStore], key: str, data: bytes) -> Upload:
        """Store a small in-memory object on each target, locked."""
        digests = digest_bytes(data)
        until = self.retain_until()
        stored = {
            t.name: t.put_bytes(key, data, crc64nvme=digests.crc64nvme, retain_until=until)
            for t in targets
        }
        return Upload(digests, stored, len(data) * len(targets))

    def upload(
        self,
        targets: Sequence[ObjectStore],
        key: str,
        source: IO[bytes],
        *,
        expected: Digests | None = None,
        resume: Mapping[str, OpenUpload] | None = None,
    ) -> Upload:
        """Stream ``source`` once to ``key`` on every target, hashing it on the way.

        With ``expected``, nothing is completed unless the bytes read have exactly those
        digests (a resumed snapshot, a repair copying from another replica). ``resume``
        holds, by target name, the multipart upload of this key a killed process left
        open; the parts it holds that match the bytes read are kept.

        Raises:
            SourceChanged: the bytes read do not match ``expected``; every upload is aborted.
        """
        resume = resume or {}
        stream = DigestStream()
        first = read_exactly(source, self.part_size)
        stream.update(first)
        until = self.retain_until()
        if len(first) < self.part_size:
            digests = _checked(stream.result(), expected, key)
            stored = {
                t.name: t.put_bytes(key, first, crc64nvme=digests.crc64nvme, retain_until=until)
                for t in targets
            }
            return Upload(digests, stored, len(first) * len(targets))
        uploads: dict[str, str] = {}
        try:
            for target in targets:
                left = resume.get(target.name)
                uploads[target.name] = (
                    left.upload_id if left else target.start_upload(key, retain_until=until)
                )
            kept = {name: left.parts for name, left in resume.items() if name in uploads}
            parts, sent = self._send_parts(targets, uploads, kept, key, first, source, stream)
            digests = _checked(stream.result(), expected, key)
            stored = {}
            for target in targets:
                version, etag = target.finish_upload(
                    key, uploads.pop(target.name), parts[target.name], digests.crc64nvme
                )
                lock_mode: str | None = LOCK_MODE
                retain_until: datetime | None = until
                if target.name in kept:  # locked when the killed process opened it
                    head = target.head(key, version)
                    assert head is not None, f"{key} version {version} vanished on completion"
                    lock_mode, retain_until = head.lock_mode, head.retain_until
                stored[target.name] = StoredObject(
                    digests.size, digests.crc64nvme, version, lock_mode, retain_until, etag
                )
            return Upload(digests, stored, sent)
        finally:
            for target in targets:
                if target.name in uploads:
                    # Best effort: failing to clean up must not hide why the upload failed.
                    with contextlib.suppress(
                        botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError
                    ):
                        target.abort_upload(key, uploads[target.name])

    def _send_parts(
        self,
        targets: Sequence[ObjectStore],
        uploads: dict[str, str],
        kept: dict[str, dict[int, tuple[int, str]]],
        key: str,
        first: bytes,
        source: IO[bytes],
        stream: DigestStream,
    ) -> tuple[dict[str, list[dict[str, Any]]], int]:
        # Reading and hashing stay in this thread, in order; only the sends run in
        # parallel, and at most PARTS_IN_FLIGHT parts are held in memory, each shared by
        # every target's send.
        parts: dict[str, list[dict[str, Any]]] = {t.name: [] for t in targets}
        in_flight: deque[list[tuple[str, Future[dict[str, Any]]]]] = deque()
        sent = 0

        def collect(sends: list[tuple[str, Future[dict[str, Any]]]]) -> None:
            for name, future in sends:
                parts[name].append(future.result())

        workers = PARTS_IN_FLIGHT * len(targets)
        with ThreadPoolExecutor(workers, thread_name_prefix="s3-part") as pool:
            chunk, number = first, 1
            while chunk:
                crc = crc64nvme_b64(checksums.crc64nvme(chunk))
                etag = _part_etag(chunk) if _may_keep(kept, number, chunk) else None
                sends = []
                for target in targets:
                    held = kept.get(target.name, {}).get(number)
                    if held == (len(chunk), etag):
                        parts[target.name].append(
                            {"PartNumber": number, "ETag": etag, "ChecksumCRC64NVME": crc}
                        )
                        continue
                    send = pool.submit(
                        target.send_part, key, uploads[target.name], number, chunk, crc
                    )
                    sends.append((target.name, send))
                    sent += len(chunk)
                in_flight.append(sends)
                if len(in_flight) >= PARTS_IN_FLIGHT:
                    collect(in_flight.popleft())
                chunk = read_exactly(source, self.part_size)
                stream.update(chunk)
                number += 1
            while in_flight:
                collect(in_flight.popleft())
        return parts, sent


def _may_keep(kept: dict[str, dict[int, tuple[int, str]]], number: int, chunk: bytes) -> bool:
    """Some target already holds a part ``number`` of this size (so its MD5 is worth taking)."""
    return any(held.get(number, (-1, ""))[0] == len(chunk) for held in kept.values())


def _part_etag(chunk: bytes) -> str:
    """The ETag S3 gives a part it received: the quoted MD5 of its bytes."""
    return f'"{hashlib.md5(chunk, usedforsecurity=False).hexdigest()}"'


def _checked(actual: Digests, expected: Digests | None, key: str) -> Digests:
    if expected is not None and actual != expected:
        raise SourceChanged(
            f"The bytes read for {key} ({actual.size} bytes, SHA-256 {actual.sha256[:16]}...) "
            f"differ from the recorded ones ({expected.size} bytes, SHA-256 "
            f"{expected.sha256[:16]}...); nothing was stored."
        )
    return actual


def connect_store(settings: Settings) -> ReplicatedStore:
    """The primary bucket and every configured replica, each with its own S3 client."""
    primary = primary_connection(settings)
    timeout = settings.s3_read_timeout_seconds
    copies = [ObjectStore(s3_client(primary, primary, timeout), settings.bucket, PRIMARY)]
    replicas = settings.replicas
    if replicas is None:
        copies.append(
            ObjectStore(
                s3_client(primary, primary, timeout), f"{settings.bucket}-replica", DEFAULT_REPLICA
            )
        )
    else:
        copies += [ObjectStore(s3_client(r, primary, timeout), r.bucket, r.name) for r in replicas]
    return ReplicatedStore(
        copies=copies,
        part_size=settings.upload_part_size,
        retention=timedelta(days=settings.retention_days),
    )


def primary_connection(settings: Settings) -> S3Connection:
    """The primary's endpoint and keys, which every other connection falls back to."""
    return S3Connection(
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        access_key_id=settings.s3_access_key_id,
        secret_access_key=settings.s3_secret_access_key,
    )


def weights_reader(settings: Settings) -> WeightsReader:
    """Reads weights from local directories and, with SUNSET_WEIGHTS_S3, from S3."""
    connection = settings.weights_s3 or S3Connection()
    return WeightsReader(
        s3_client(connection, primary_connection(settings), settings.s3_read_timeout_seconds)
    )


def s3_client(
    connection: S3Connection, fallback: S3Connection, read_timeout_s: float = 60.0
) -> Any:
    """A client for ``connection``; unset fields, and an unset key pair, come from ``fallback``."""
    keys = connection if connection.access_key_id else fallback
    return make_s3_client(
        connection.endpoint_url or fallback.endpoint_url,
        connection.region or fallback.region or "us-east-1",
        keys.access_key_id,
        keys.secret_access_key,
        read_timeout_s,
    )
