"""The object store: S3 through boto3, every byte hashed in the same pass that moves it.

Uploads compute the manifest digests (SHA-256, SHA-512) and S3's CRC64NVME full-object
checksum while the bytes stream out, so each source file is read exactly once. S3 has no
full-object SHA-256 for multipart uploads; the store checks CRC64NVME on its side and
Sunset keeps its own SHA digests in the manifest.
"""

from __future__ import annotations

import base64
import hashlib
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import boto3
import botocore.config
import botocore.exceptions
from awscrt import checksums
from pydantic import SecretStr

from sunset.errors import InputError

PART_SIZE = 16 * 1024 * 1024
PARTS_IN_FLIGHT = 4
READ_CHUNK = 1024 * 1024


def crc64nvme_b64(crc: int) -> str:
    """S3's textual form of a CRC64NVME value: base64 of its 8 big-endian bytes."""
    return base64.b64encode(crc.to_bytes(8, "big")).decode("ascii")


@dataclass(frozen=True)
class Digests:
    """The fixity values of one file: size, manifest digests and the store's checksum."""

    size: int
    sha256: str
    sha512: str
    crc64nvme: str


class DigestStream:
    """Accumulates every digest Sunset needs from chunks of one file, in order."""

    def __init__(self) -> None:
        self._sha256 = hashlib.sha256()
        self._sha512 = hashlib.sha512()
        self._crc = 0
        self._size = 0

    def update(self, chunk: bytes) -> None:
        self._sha256.update(chunk)
        self._sha512.update(chunk)
        self._crc = checksums.crc64nvme(chunk, self._crc)
        self._size += len(chunk)

    def result(self) -> Digests:
        return Digests(
            size=self._size,
            sha256=self._sha256.hexdigest(),
            sha512=self._sha512.hexdigest(),
            crc64nvme=crc64nvme_b64(self._crc),
        )


def digest_bytes(data: bytes) -> Digests:
    """The digests of an in-memory file."""
    stream = DigestStream()
    stream.update(data)
    return stream.result()


@dataclass(frozen=True)
class StoredObject:
    """What the store holds under one key, as reported by a HEAD with checksums."""

    size: int
    crc64nvme: str | None
    version_id: str | None


def make_s3_client(
    endpoint_url: str | None,
    region: str,
    access_key_id: str | None,
    secret_access_key: SecretStr | None,
    read_timeout_s: float = 60.0,
) -> Any:
    """A boto3 S3 client that leaves checksums to Sunset (it sends its own CRC64NVME)."""
    config = botocore.config.Config(
        s3={"addressing_style": "path"},
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
    """One bucket on one S3 endpoint."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

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
        """Fail with a clear sentence when the bucket is missing or unreachable."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except botocore.exceptions.ClientError as exc:
            status = _status(exc)
            if status == 404:
                raise InputError(
                    f"Bucket {self.bucket!r} does not exist at {self.endpoint}; "
                    "create it with Object Lock enabled, or set SUNSET_BUCKET."
                ) from None
            if status == 403:
                raise InputError(
                    f"Access to bucket {self.bucket!r} at {self.endpoint} was refused; "
                    "check SUNSET_S3_ACCESS_KEY_ID and SUNSET_S3_SECRET_ACCESS_KEY."
                ) from None
            raise

    def head(self, key: str, version_id: str | None = None) -> StoredObject | None:
        """Size, CRC64NVME and version of the object at ``key``, or None if absent."""
        extra = {"VersionId": version_id} if version_id else {}
        try:
            head = self.client.head_object(
                Bucket=self.bucket, Key=key, ChecksumMode="ENABLED", **extra
            )
        except botocore.exceptions.ClientError as exc:
            if _status(exc) == 404:
                return None
            raise
        return StoredObject(
            size=head["ContentLength"],
            crc64nvme=head.get("ChecksumCRC64NVME"),
            version_id=head.get("VersionId"),
        )

    def put_bytes(self, key: str, data: bytes, content_type: str = "text/plain") -> StoredObject:
        """Store a small in-memory object with its CRC64NVME checksum."""
        crc = digest_bytes(data).crc64nvme
        response = self.client.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=data,
            ChecksumCRC64NVME=crc,
            ContentType=content_type,
        )
        return StoredObject(size=len(data), crc64nvme=crc, version_id=response.get("VersionId"))

    def upload_file(self, key: str, path: Path) -> tuple[Digests, StoredObject]:
        """Stream ``path`` to ``key``, computing every digest in the same read pass."""
        stream = DigestStream()
        with path.open("rb") as source:
            first = source.read(PART_SIZE)
            stream.update(first)
            if len(first) < PART_SIZE:
                digests = stream.result()
                response = self.client.put_object(
                    Bucket=self.bucket, Key=key, Body=first, ChecksumCRC64NVME=digests.crc64nvme
                )
                version_id = response.get("VersionId")
            else:
                version_id = self._multipart(key, first, source, stream)
                digests = stream.result()
        return digests, StoredObject(digests.size, digests.crc64nvme, version_id)

    def _multipart(
        self, key: str, first: bytes, source: IO[bytes], stream: DigestStream
    ) -> str | None:
        upload = self.client.create_multipart_upload(
            Bucket=self.bucket, Key=key, ChecksumAlgorithm="CRC64NVME", ChecksumType="FULL_OBJECT"
        )
        upload_id = upload["UploadId"]
        try:
            parts = self._send_parts(key, upload_id, first, source, stream)
            response = self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
                ChecksumCRC64NVME=stream.result().crc64nvme,
                ChecksumType="FULL_OBJECT",
            )
        except BaseException:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise
        return response.get("VersionId")

    def _send_parts(
        self, key: str, upload_id: str, first: bytes, source: IO[bytes], stream: DigestStream
    ) -> list[dict[str, Any]]:
        # Reading and hashing stay in this thread, in order; only the sends run in
        # parallel, and at most PARTS_IN_FLIGHT parts are held in memory at once.
        parts: list[dict[str, Any]] = []
        in_flight: deque[Future[dict[str, Any]]] = deque()
        with ThreadPoolExecutor(PARTS_IN_FLIGHT, thread_name_prefix="s3-part") as pool:
            chunk, number = first, 1
            while chunk:
                in_flight.append(pool.submit(self._send_part, key, upload_id, number, chunk))
                if len(in_flight) >= PARTS_IN_FLIGHT:
                    parts.append(in_flight.popleft().result())
                chunk = source.read(PART_SIZE)
                stream.update(chunk)
                number += 1
            parts.extend(future.result() for future in in_flight)
        return parts

    def _send_part(self, key: str, upload_id: str, number: int, chunk: bytes) -> dict[str, Any]:
        crc = crc64nvme_b64(checksums.crc64nvme(chunk))
        response = self.client.upload_part(
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=chunk,
            ChecksumCRC64NVME=crc,
        )
        return {"PartNumber": number, "ETag": response["ETag"], "ChecksumCRC64NVME": crc}

    def iter_object(self, key: str, version_id: str | None = None) -> Iterator[bytes]:
        """Stream an object back in bounded chunks, never holding it whole."""
        extra = {"VersionId": version_id} if version_id else {}
        body = self.client.get_object(Bucket=self.bucket, Key=key, **extra)["Body"]
        try:
            yield from body.iter_chunks(READ_CHUNK)
        finally:
            body.close()

    def read_digests(self, key: str, version_id: str | None = None) -> Digests:
        """Re-read an object and recompute its digests (the deep check)."""
        stream = DigestStream()
        for chunk in self.iter_object(key, version_id):
            stream.update(chunk)
        return stream.result()

    def get_bytes(self, key: str, version_id: str | None = None) -> bytes:
        """A small object, whole."""
        return b"".join(self.iter_object(key, version_id))


def _status(exc: botocore.exceptions.ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
