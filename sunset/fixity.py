"""Fixity checks: is a preserved object version still the one the ledger recorded?

Two checks, both of one object version on one replica:

* fast: a HEAD with checksum mode. The recorded version exists with the recorded size and
  CRC64NVME full-object checksum, it is locked (COMPLIANCE) at least as long as required,
  and it is still the current version: no newer version or delete marker shadows it, so
  a reader who copies the bucket gets these bytes.
* deep: the recorded version streamed back and re-hashed (SHA-256, SHA-512, CRC64NVME),
  in bounded chunks and without temporary files.

Every check becomes a ``FixityEvent``: when, which snapshot, replica, file and version,
which check, bytes read, how long it took and what was found.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import botocore.exceptions

from sunset.ledger import FixityEvent, Ledger, PreservedObject
from sunset.store import LOCK_MODE, ObjectStore

FAST = "fast"
DEEP = "deep"
REPAIR = "repair"
RETENTION = "retention"

OK = "ok"
MISSING = "missing"  # the recorded version is gone
MISMATCH = "mismatch"  # its size or a digest differs from the record
SHADOWED = "shadowed"  # a newer version or a delete marker stands in front of it
UNLOCKED = "unlocked"  # its lock is absent, not COMPLIANCE, or ends too early
UNREADABLE = "unreadable"  # the store failed to return it (bit rot shows up here too)
UNREACHABLE = "unreachable"  # its replica is not configured any more
FAILED = "failed"  # a repair or a retention extension did not succeed

_S3_ERRORS = (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError)


@dataclass(frozen=True)
class Finding:
    """The result of one check of one object version on one replica."""

    snapshot_id: str
    replica: str
    bucket: str
    path: str
    version_id: str | None
    method: str
    outcome: str
    detail: str | None = None
    bytes_read: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.outcome == OK


def fast_check(copy: ObjectStore, key: str, held: PreservedObject) -> Finding:
    """HEAD the recorded version and the current one; compare size, checksum and lock."""
    started = time.monotonic()

    def found(outcome: str, detail: str | None = None) -> Finding:
        return _finding(held, copy, FAST, outcome, detail, 0, time.monotonic() - started)

    try:
        version = copy.head(key, held.version_id)
        if version is None:
            return found(MISSING, f"version {held.version_id} is gone")
        if version.size != held.size or version.crc64nvme != held.crc64nvme:
            return found(
                MISMATCH,
                f"stored size {version.size} and CRC64NVME {version.crc64nvme} differ from "
                f"the recorded {held.size} and {held.crc64nvme}",
            )
        if (
            version.lock_mode != LOCK_MODE
            or version.retain_until is None
            or version.retain_until < held.retain_until
        ):
            return found(
                UNLOCKED,
                f"locked {version.lock_mode or 'not at all'} until {version.retain_until}; "
                f"required {LOCK_MODE} until {held.retain_until:%Y-%m-%dT%H:%M:%SZ}",
            )
        current = copy.head(key)
        if current is None:
            return found(SHADOWED, "a delete marker hides the preserved version")
        if current.version_id != held.version_id:
            return found(
                SHADOWED, f"version {current.version_id} stands in front of the preserved version"
            )
    except _S3_ERRORS as exc:
        return found(UNREADABLE, f"{type(exc).__name__}: {exc}")
    return found(OK)


def deep_check(copy: ObjectStore, key: str, held: PreservedObject) -> Finding:
    """Stream the recorded version back and compare every digest with the record."""
    started = time.monotonic()

    def found(outcome: str, detail: str | None = None, read: int = 0) -> Finding:
        return _finding(held, copy, DEEP, outcome, detail, read, time.monotonic() - started)

    try:
        actual = copy.read_digests(key, held.version_id)
    except botocore.exceptions.ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status == 404:
            return found(MISSING, f"version {held.version_id} is gone")
        return found(UNREADABLE, f"{type(exc).__name__}: {exc}")
    except botocore.exceptions.BotoCoreError as exc:
        return found(UNREADABLE, f"{type(exc).__name__}: {exc}")
    if actual.size != held.size:
        return found(MISMATCH, f"read {actual.size} bytes, recorded {held.size}", actual.size)
    for name in ("sha512", "sha256", "crc64nvme"):
        if getattr(actual, name) != getattr(held, name):
            return found(MISMATCH, f"{name} differs from the manifest", actual.size)
    return found(OK, None, actual.size)


def absent(snapshot_id: str, replica: str, bucket: str, path: str, method: str) -> Finding:
    """A finding for an object the ledger has no record of on a replica that must hold it."""
    return Finding(snapshot_id, replica, bucket, path, None, method, MISSING, "never stored here")


def record(
    ledger: Ledger, finding: Finding, *, run_id: str | None = None, audit_id: str | None = None
) -> None:
    """Append the finding to the ledger as a fixity event."""
    with ledger.session() as db:
        db.add(
            FixityEvent(
                snapshot_id=finding.snapshot_id,
                run_id=run_id,
                bucket=finding.bucket,
                path=finding.path,
                method=finding.method,
                bytes_read=finding.bytes_read,
                duration_s=finding.seconds,
                outcome=finding.outcome,
                detail=finding.detail,
                replica=finding.replica,
                version_id=finding.version_id,
                audit_id=audit_id,
            )
        )


def _finding(
    held: PreservedObject,
    copy: ObjectStore,
    method: str,
    outcome: str,
    detail: str | None,
    bytes_read: int,
    seconds: float,
) -> Finding:
    return Finding(
        snapshot_id=held.snapshot_id,
        replica=copy.name,
        bucket=copy.bucket,
        path=held.path,
        version_id=held.version_id,
        method=method,
        outcome=outcome,
        detail=detail,
        bytes_read=bytes_read,
        seconds=seconds,
    )
