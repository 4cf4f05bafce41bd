"""One bucket on one S3 endpoint, through boto3: the moves every preserved byte makes.

Uploads carry S3's CRC64NVME full-object checksum, so the store checks what it receives;
S3 has no full-object SHA-256 for multipart uploads, so Sunset keeps its own SHA digests
in the manifest. Every object is written under Object Lock COMPLIANCE retention. The
fan-out of one read to every replica lives in ``sunset.preservation.replicas``.
"""

from __future__ import annotations

import base64
import hashlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import boto3
import botocore.config
import botocore.exceptions
from awscrt import checksums
from pydantic import SecretStr

from sunset.errors import InputError, TransientError

# Bytes per read of a stored object: large enough that Python's per-read cost is small
# next to hashing, small enough that a read plus the chunk being hashed stay a few MiB.
READ_CHUNK = 8 * 1024 * 1024
# Below this, handing a chunk to the hashing threads costs more than hashing it inline.
PARALLEL_HASH_MIN = 256 * 1024
# How many chunks a digest lane may hold (the one it hashes and those queued behind it):
# enough that the two lanes and the caller's reads rarely wait on each other, few enough
# that memory stays a few chunks per stream.
DIGEST_LAG_CHUNKS = 3
LOCK_MODE = "COMPLIANCE"


def crc64nvme_b64(crc: int) -> str:
    """S3's textual form of a CRC64NVME value: base64 of its 8 big-endian bytes."""
    return base64.b64encode(crc.to_bytes(8, "big")).decode("ascii")


@dataclass(frozen=True)
class Digests:
    """The fixity values of one file: size, manifest digests and the store's checksum.

    ``sha512`` is None where it was not computed (``DigestStream(sha512=False)``: a deep
    check not asked for every digest).
    """

    size: int
    sha256: str
    sha512: str | None
    crc64nvme: str


class DigestStream:
    """Accumulates the digests of one file from its chunks, in order: SHA-256 and
    CRC64NVME always, SHA-512 unless ``sha512=False``.

    SHA-512 is the slowest of the three (about 0.6 GiB/s on these machines, SHA-256 with
    SHA-NI about 1.2 GiB/s, CRC64NVME about 11 GiB/s), and hashlib releases the GIL, so
    with SHA-512, from the first large chunk on, each chunk is hashed on two lanes,
    SHA-512 on one and SHA-256 with the CRC on the other, while the caller reads or sends
    the next chunk. Each lane takes its chunks in order and runs up to
    ``DIGEST_LAG_CHUNKS`` behind the caller without waiting for the other lane, so the
    caller waits only when the slower lane is that far behind, and at most that many
    chunks per lane are held for hashing. Without SHA-512 there is one lane's work, and
    it is hashed on the caller's thread: a thread of its own would only move it there
    (the deep check reads several objects at once, which keeps the cores busy).
    """

    def __init__(self, *, sha512: bool = True) -> None:
        self._sha256 = hashlib.sha256()
        self._sha512 = hashlib.sha512() if sha512 else None
        self._crc = 0
        self._size = 0
        self._lanes: tuple[_DigestLane, _DigestLane] | None = None

    def update(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._sha512 is None:
            self._sha256_and_crc(chunk)
            return
        if self._lanes is None and len(chunk) < PARALLEL_HASH_MIN:
            self._sha512.update(chunk)
            self._sha256_and_crc(chunk)
            return
        if self._lanes is None:
            self._lanes = (_DigestLane(self._sha512.update), _DigestLane(self._sha256_and_crc))
        for lane in self._lanes:
            lane.feed(chunk)

    def result(self) -> Digests:
        if self._lanes is not None:
            for lane in self._lanes:
                lane.finish()
            self._lanes = None
        return Digests(
            size=self._size,
            sha256=self._sha256.hexdigest(),
            sha512=None if self._sha512 is None else self._sha512.hexdigest(),
            crc64nvme=crc64nvme_b64(self._crc),
        )

    def _sha256_and_crc(self, chunk: bytes) -> None:
        self._sha256.update(chunk)
        self._crc = checksums.crc64nvme(chunk, self._crc)


class _DigestLane:
    """One thread feeding chunks, in order, to some digests, at most DIGEST_LAG_CHUNKS behind.

    A stream abandoned before ``finish`` (its read failed) loses its thread with it: the
    executor's worker exits once the executor is garbage-collected.
    """

    def __init__(self, update: Callable[[bytes], None]) -> None:
        self._update = update
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="digest")
        self._pending: deque[Future[None]] = deque()

    def feed(self, chunk: bytes) -> None:
        if len(self._pending) >= DIGEST_LAG_CHUNKS:
            self._pending.popleft().result()
        self._pending.append(self._thread.submit(self._update, chunk))

    def finish(self) -> None:
        while self._pending:
            self._pending.popleft().result()
        self._thread.shutdown()


def read_exactly(source: IO[bytes], size: int) -> bytes:
    """Up to ``size`` bytes, fewer only at the end (a network body may return less per read)."""
    chunks: list[bytes] = []
    wanted = size
    while wanted > 0:
        chunk = source.read(wanted)
        if not chunk:
            break
        chunks.append(chunk)
        wanted -= len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def digest_bytes(data: bytes) -> Digests:
    """The digests of an in-memory file."""
    stream = DigestStream()
    stream.update(data)
    return stream.result()


@dataclass(frozen=True)
class StoredObject:
    """What the store holds in one object version, as a write or a HEAD reports it."""

    size: int
    crc64nvme: str | None
    version_id: str | None
    lock_mode: str | None = None
    retain_until: datetime | None = None
    etag: str | None = None


@dataclass(frozen=True)
class ListedVersion:
    """One entry of a version listing: an object version, or a delete marker."""

    key: str
    version_id: str
    is_latest: bool
    delete_marker: bool
    size: int = 0
    etag: str | None = None


@dataclass(frozen=True)
class ReadBack:
    """An object version read back whole: its digests and what the store said of it."""

    digests: Digests
    lock_mode: str | None
    retain_until: datetime | None


@dataclass
class OpenUpload:
    """A multipart upload a killed process left open, and the parts it already holds."""

    key: str
    upload_id: str
    parts: dict[int, tuple[int, str]] = field(default_factory=dict)  # number: (size, ETag)


def make_s3_client(
    endpoint_url: str | None,
    region: str,
    access_key_id: str | None,
    secret_access_key: SecretStr | None,
    read_timeout_s: float = 60.0,
) -> Any:
    """A boto3 S3 client that leaves checksums to Sunset (it sends its own CRC64NVME).

    Over TLS (AWS's default endpoint, or an https one) the body is not also hashed into
    the SigV4 signature: TLS protects it in transit and the store checks each part's
    CRC64NVME, so signing would only cost a SHA-256 of every byte sent (about 1
    CPU-second per GiB). Over plain http the signature is the body's only protection
    against tampering on the way, so it is kept there.
    """
    s3_options: dict[str, Any] = {"addressing_style": "path"}
    if endpoint_url is None or endpoint_url.lower().startswith("https://"):
        s3_options["payload_signing_enabled"] = False
    config = botocore.config.Config(
        s3=s3_options,
        retries={"max_attempts": 3, "mode": "standard"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        connect_timeout=10,
        read_timeout=read_timeout_s,
    )
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key.get_secret_value() if secret_access_key else None,
        config=config,
    )


class ObjectStore:
    """One bucket on one S3 endpoint; ``name`` is what the ledger calls this copy."""

    def __init__(self, client: Any, bucket: str, name: str = "primary") -> None:
        self.client = client
        self.bucket = bucket
        self.name = name

    @property
    def endpoint(self) -> str:
        return str(self.client.meta.endpoint_url)

    def ensure_bucket(self) -> None:
        """Create the bucket with Object Lock enabled, unless it exists already."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except botocore.exceptions.ClientError as exc:
            if _status(exc) != 404:
                raise
            self.client.create_bucket(Bucket=self.bucket, ObjectLockEnabledForBucket=True)

    def require_bucket(self) -> None:
        """Fail with a clear sentence when the bucket is missing, unreachable or unlocked.

        Raises:
            InputError: no credentials, access refused, no such bucket, no Object Lock.
            TransientError: the store could not be reached or answered 5xx; it may pass.
        """
        try:
            self._require_bucket()
        except botocore.exceptions.NoCredentialsError:
            raise InputError(
                f"No S3 credentials were found for bucket {self.bucket!r} ({self.name}) at "
                f"{self.endpoint}; set SUNSET_S3_ACCESS_KEY_ID and SUNSET_S3_SECRET_ACCESS_KEY "
                "(`sunset ops up` prints the local store's), or configure the AWS credential "
                "chain."
            ) from None
        except (
            botocore.exceptions.EndpointConnectionError,
            botocore.exceptions.ConnectionClosedError,
            botocore.exceptions.ConnectTimeoutError,
            botocore.exceptions.ReadTimeoutError,
        ) as exc:
            raise TransientError(
                f"The object store at {self.endpoint} could not be reached for bucket "
                f"{self.bucket!r} ({self.name}): {type(exc).__name__}; check "
                "SUNSET_S3_ENDPOINT_URL (for a replica, its endpoint_url in SUNSET_REPLICAS) "
                "and that the store is up."
            ) from None

    def _require_bucket(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except botocore.exceptions.ClientError as exc:
            status = _status(exc)
            if status == 404:
                raise InputError(
                    f"Bucket {self.bucket!r} ({self.name}) does not exist at {self.endpoint}; "
                    "create it with Object Lock enabled, or correct SUNSET_BUCKET or "
                    "SUNSET_REPLICAS."
                ) from None
            if status == 403:
                raise InputError(
                    f"Access to bucket {self.bucket!r} ({self.name}) at {self.endpoint} was "
                    "refused; check SUNSET_S3_ACCESS_KEY_ID and SUNSET_S3_SECRET_ACCESS_KEY (for a "
                    "replica, its keys in SUNSET_REPLICAS)."
                ) from None
            raise
        if not self._object_lock_enabled():
            raise InputError(
                f"Bucket {self.bucket!r} ({self.name}) at {self.endpoint} has no Object Lock, so "
                "preserved weights could be deleted or overwritten; use a bucket created with "
                "Object Lock enabled."
            )

    def _object_lock_enabled(self) -> bool:
        try:
            found = self.client.get_object_lock_configuration(Bucket=self.bucket)
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ObjectLockConfigurationNotFoundError":
                return False
            raise
        return bool(found.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled")

    def head(self, key: str, version_id: str | None = None) -> StoredObject | None:
        """Size, CRC64NVME, version and lock of the object at ``key``, or None if absent.

        Without ``version_id`` it is the current version: None when a delete marker
        hides the object.
        """
        extra = {"VersionId": version_id} if version_id else {}
        try:
            head = self.client.head_object(
                Bucket=self.bucket, Key=key, ChecksumMode="ENABLED", **extra
            )
        except botocore.exceptions.ClientError as exc:
            if _status(exc) in (404, 405):  # 405: the version is a delete marker
                return None
            raise
        return StoredObject(
            size=head["ContentLength"],
            crc64nvme=head.get("ChecksumCRC64NVME"),
            version_id=head.get("VersionId"),
            lock_mode=head.get("ObjectLockMode"),
            retain_until=head.get("ObjectLockRetainUntilDate"),
            etag=head.get("ETag"),
        )

    def list_versions(self, prefix: str) -> Iterator[ListedVersion]:
        """Every version and delete marker under ``prefix``, one request per 1,000."""
        pages = self.client.get_paginator("list_object_versions").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        for page in pages:
            for item in page.get("Versions", []):
                yield ListedVersion(
                    key=item["Key"],
                    version_id=item["VersionId"],
                    is_latest=item["IsLatest"],
                    delete_marker=False,
                    size=item["Size"],
                    etag=item["ETag"],
                )
            for item in page.get("DeleteMarkers", []):
                yield ListedVersion(
                    key=item["Key"],
                    version_id=item["VersionId"],
                    is_latest=item["IsLatest"],
                    delete_marker=True,
                )

    def put_bytes(
        self, key: str, data: bytes, *, crc64nvme: str, retain_until: datetime
    ) -> StoredObject:
        """Store a whole object in one request, locked until ``retain_until``."""
        response = self.client.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=data,
            ChecksumCRC64NVME=crc64nvme,
            ObjectLockMode=LOCK_MODE,
            ObjectLockRetainUntilDate=retain_until,
        )
        return StoredObject(
            len(data),
            crc64nvme,
            response.get("VersionId"),
            LOCK_MODE,
            retain_until,
            response.get("ETag"),
        )

    def start_upload(self, key: str, *, retain_until: datetime) -> str:
        """Open a multipart upload whose object will be locked until ``retain_until``."""
        upload = self.client.create_multipart_upload(
            Bucket=self.bucket,
            Key=key,
            ChecksumAlgorithm="CRC64NVME",
            ChecksumType="FULL_OBJECT",
            ObjectLockMode=LOCK_MODE,
            ObjectLockRetainUntilDate=retain_until,
        )
        return str(upload["UploadId"])

    def send_part(
        self, key: str, upload_id: str, number: int, chunk: bytes, crc64nvme: str
    ) -> dict[str, Any]:
        """Send one part with its own CRC64NVME; returns what completing the upload needs."""
        response = self.client.upload_part(
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=chunk,
            ChecksumCRC64NVME=crc64nvme,
        )
        return {"PartNumber": number, "ETag": response["ETag"], "ChecksumCRC64NVME": crc64nvme}

    def finish_upload(
        self, key: str, upload_id: str, parts: list[dict[str, Any]], crc64nvme: str
    ) -> tuple[str | None, str | None]:
        """Complete the upload; the store refuses it unless the whole object has ``crc64nvme``.

        Returns the new version's id and ETag.
        """
        response = self.client.complete_multipart_upload(
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": sorted(parts, key=lambda p: p["PartNumber"])},
            ChecksumCRC64NVME=crc64nvme,
            ChecksumType="FULL_OBJECT",
        )
        return response.get("VersionId"), response.get("ETag")

    def abort_upload(self, key: str, upload_id: str) -> None:
        self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)

    def open_uploads(self, prefix: str) -> dict[str, OpenUpload]:
        """The multipart uploads left open under ``prefix``, one per key, with their parts.

        When a key has several (a process killed twice before it could resume), the one
        with the most bytes is kept and the others are aborted.
        """
        found: dict[str, OpenUpload] = {}
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        for page in pages:
            for item in page.get("Uploads", []):
                upload = OpenUpload(item["Key"], item["UploadId"])
                parts = self.client.get_paginator("list_parts").paginate(
                    Bucket=self.bucket, Key=upload.key, UploadId=upload.upload_id
                )
                for listed in parts:
                    for part in listed.get("Parts", []):
                        upload.parts[part["PartNumber"]] = (part["Size"], part["ETag"])
                kept = found.get(upload.key)
                if kept is not None and _held_bytes(kept) >= _held_bytes(upload):
                    self.abort_upload(upload.key, upload.upload_id)
                    continue
                if kept is not None:
                    self.abort_upload(kept.key, kept.upload_id)
                found[upload.key] = upload
        return found

    def extend_retention(self, key: str, version_id: str, retain_until: datetime) -> None:
        """Move the COMPLIANCE lock of one version later (the store refuses earlier)."""
        self.client.put_object_retention(
            Bucket=self.bucket,
            Key=key,
            VersionId=version_id,
            Retention={"Mode": LOCK_MODE, "RetainUntilDate": retain_until},
        )

    def iter_object(self, key: str, version_id: str | None = None) -> Iterator[bytes]:
        """Stream an object back in bounded chunks, never holding it whole."""
        extra = {"VersionId": version_id} if version_id else {}
        body = self.client.get_object(Bucket=self.bucket, Key=key, **extra)["Body"]
        try:
            yield from body.iter_chunks(READ_CHUNK)
        finally:
            body.close()

    def open_object(self, key: str, version_id: str | None = None) -> IO[bytes]:
        """A readable stream of one object version, for copying it elsewhere."""
        extra = {"VersionId": version_id} if version_id else {}
        body: IO[bytes] = self.client.get_object(Bucket=self.bucket, Key=key, **extra)["Body"]
        return body

    def read_back(
        self, key: str, version_id: str | None = None, *, sha512: bool = True
    ) -> ReadBack:
        """Re-read an object version, recomputing its digests (the deep check: SHA-512
        too unless ``sha512=False``), with the lock the store reports for it on the same
        GET."""
        extra = {"VersionId": version_id} if version_id else {}
        response = self.client.get_object(Bucket=self.bucket, Key=key, **extra)
        body = response["Body"]
        stream = DigestStream(sha512=sha512)
        try:
            for chunk in body.iter_chunks(READ_CHUNK):
                stream.update(chunk)
        finally:
            body.close()
        return ReadBack(
            stream.result(),
            response.get("ObjectLockMode"),
            response.get("ObjectLockRetainUntilDate"),
        )

    def read_digests(self, key: str, version_id: str | None = None) -> Digests:
        """Re-read an object and recompute its digests."""
        return self.read_back(key, version_id).digests

    def get_bytes(self, key: str, version_id: str | None = None) -> bytes:
        """A small object, whole."""
        return b"".join(self.iter_object(key, version_id))

    def download_file(self, key: str, path: Path) -> Digests:
        """Stream an object into ``path``, computing every digest as the bytes are written."""
        stream = DigestStream()
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as target:
            for chunk in self.iter_object(key):
                stream.update(chunk)
                target.write(chunk)
        return stream.result()


def _held_bytes(upload: OpenUpload) -> int:
    return sum(size for size, _ in upload.parts.values())


def _status(exc: botocore.exceptions.ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
