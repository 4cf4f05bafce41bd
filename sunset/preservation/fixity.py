"""Fixity checks: is a preserved object version still the one the ledger recorded?

Two checks, both of object versions on one replica:

* fast: one version listing (``ListObjectVersions``, one request per 1,000 versions) of
  the objects checked together. Each recorded version must be listed with the recorded
  size and ETag, and must be the latest: no newer version or delete marker shadows it,
  so a reader who copies the bucket gets these bytes. The listing reads no object and
  shows no lock, so a fast check cannot see bytes that rotted inside a version whose
  listing is unchanged, nor a lock; both are the deep check's.
* deep: the recorded version streamed back and every byte re-hashed with SHA-256 and
  CRC64NVME (and SHA-512 too when every digest is asked for: ``all_digests``), in
  bounded chunks and without temporary files, several objects at a time; the same GET
  reports the version's lock, which must be COMPLIANCE and last at least as long as
  recorded. Its finding names the digests it compared.

Every check becomes a ``FixityEvent``: when, which snapshot, replica, file and version,
which check, bytes read, how long it took and what was found. A fast check's time is the
listing's, shared evenly among the objects it covered. The methods and outcomes are named,
and what each outcome proves is said, in ``outcomes.py``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import botocore.exceptions

from sunset.ledger import FindingKind, FixityEvent, Ledger, PreservedObject
from sunset.preservation.outcomes import (
    DEEP,
    FAST,
    MISMATCH,
    MISSING,
    OK,
    SHADOWED,
    UNLOCKED,
    UNREADABLE,
    digest_names,
    digests_rehashed,
    finding_kind,
)
from sunset.preservation.store import LOCK_MODE, ListedVersion, ObjectStore

# What a check records as unreadable rather than raising: the store gave no usable answer.
STORE_ERRORS = (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError)


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

    @property
    def kind(self) -> FindingKind | None:
        return finding_kind(self.outcome)


def fast_check(copy: ObjectStore, prefix: str, held: Sequence[PreservedObject]) -> list[Finding]:
    """Check the recorded versions of ``held`` (paths under ``prefix``) against one
    listing of their versions on ``copy``: present, same size and ETag, still current.

    One finding per row, in the order given; a listing the store fails to return makes
    every row ``unreadable``. Detects a deleted version, a version replaced or hidden by
    a newer one or a delete marker, and a changed size or ETag; it cannot detect bit rot
    inside a version or a lock (see the module docstring).
    """
    try:
        return listed_findings(copy, prefix, held)
    except STORE_ERRORS as exc:
        return [
            _finding(row, copy, FAST, UNREADABLE, f"{type(exc).__name__}: {exc}", 0, 0.0)
            for row in held
        ]


def listed_findings(
    copy: ObjectStore, prefix: str, held: Sequence[PreservedObject]
) -> list[Finding]:
    """``fast_check``, raising the store's error instead of recording it, for a caller
    that tries again (the audit)."""
    if not held:
        return []
    started = time.monotonic()
    outcomes = _list_and_compare(copy, prefix, held)
    share = (time.monotonic() - started) / len(held)
    return [
        _finding(row, copy, FAST, outcome, detail, 0, share)
        for row, (outcome, detail) in zip(held, outcomes, strict=True)
    ]


def still_held(
    copy: ObjectStore, prefix: str, held: Sequence[PreservedObject]
) -> list[PreservedObject]:
    """The rows of ``held`` whose recorded version ``copy`` still holds unchanged and
    current, by the fast check's rules; an S3 error is raised, not taken for absence, so
    a failed listing never makes a resumed snapshot send everything again."""
    if not held:
        return []
    outcomes = _list_and_compare(copy, prefix, held)
    return [row for row, (outcome, _) in zip(held, outcomes, strict=True) if outcome == OK]


def _list_and_compare(
    copy: ObjectStore, prefix: str, held: Sequence[PreservedObject]
) -> list[tuple[str, str | None]]:
    wanted = {prefix + row.path for row in held}
    # Listing the longest common prefix: a whole package in one request per 1,000
    # versions, a single object in one request.
    listed = _versions_by_key(copy.list_versions(os.path.commonprefix(sorted(wanted))), wanted)
    return [_compare(row, listed.get(prefix + row.path, [])) for row in held]


def _versions_by_key(
    versions: Iterable[ListedVersion], wanted: set[str]
) -> dict[str, list[ListedVersion]]:
    found: dict[str, list[ListedVersion]] = {}
    for version in versions:
        if version.key in wanted:
            found.setdefault(version.key, []).append(version)
    return found


def _compare(held: PreservedObject, versions: list[ListedVersion]) -> tuple[str, str | None]:
    recorded = next((v for v in versions if v.version_id == (held.version_id or "null")), None)
    if recorded is None or recorded.delete_marker:
        return MISSING, f"version {held.version_id} is gone"
    if recorded.size != held.size or (held.etag is not None and recorded.etag != held.etag):
        return (
            MISMATCH,
            f"listed size {recorded.size} and ETag {recorded.etag} differ from the recorded "
            f"{held.size} and {held.etag}",
        )
    if not recorded.is_latest:
        latest = next((v for v in versions if v.is_latest), None)
        if latest is None or latest.delete_marker:
            return SHADOWED, "a delete marker hides the preserved version"
        return SHADOWED, f"version {latest.version_id} stands in front of the preserved version"
    return OK, None


def deep_check(
    copy: ObjectStore, key: str, held: PreservedObject, *, all_digests: bool = False
) -> Finding:
    """Stream the recorded version back, compare its SHA-256 and CRC64NVME (and SHA-512
    with ``all_digests``) with the record, and its lock with the recorded one."""
    try:
        return reread_finding(copy, key, held, all_digests=all_digests)
    except STORE_ERRORS as exc:
        return unreadable(copy, held, exc)


def unreadable(copy: ObjectStore, held: PreservedObject, error: Exception) -> Finding:
    """The deep check's finding when the store did not answer the read."""
    return _finding(held, copy, DEEP, UNREADABLE, f"{type(error).__name__}: {error}", 0, 0.0)


def reread_finding(
    copy: ObjectStore, key: str, held: PreservedObject, *, all_digests: bool = False
) -> Finding:
    """``deep_check``, raising the store's error (other than "no such version") instead
    of recording it, for a caller that tries again (the audit). The finding of a version
    read back says which digests were compared."""
    started = time.monotonic()
    compared = digests_rehashed(all_digests)
    matched = f"{digest_names(compared)} of every byte match the record"

    def found(outcome: str, detail: str | None = None, read: int = 0) -> Finding:
        return _finding(held, copy, DEEP, outcome, detail, read, time.monotonic() - started)

    try:
        back = copy.read_back(key, held.version_id, sha512="sha512" in compared)
    except botocore.exceptions.ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        # A missing bucket says nothing about the version: the settings may name the
        # wrong one. A missing key or version is the object gone.
        if status == 404 and exc.response.get("Error", {}).get("Code") != "NoSuchBucket":
            return found(MISSING, f"version {held.version_id} is gone")
        raise
    actual = back.digests
    if actual.size != held.size:
        return found(MISMATCH, f"read {actual.size} bytes, recorded {held.size}", actual.size)
    for name in compared:
        if getattr(actual, name) != getattr(held, name):
            return found(
                MISMATCH,
                f"{digest_names((name,))} differs from the record "
                f"(re-hashed: {digest_names(compared)})",
                actual.size,
            )
    if (
        back.lock_mode != LOCK_MODE
        or back.retain_until is None
        or back.retain_until < held.retain_until
    ):
        return found(
            UNLOCKED,
            f"locked {back.lock_mode or 'not at all'} until {back.retain_until}; "
            f"required {LOCK_MODE} until {held.retain_until:%Y-%m-%dT%H:%M:%SZ}; {matched}",
            actual.size,
        )
    return found(OK, matched, actual.size)


def absent(snapshot_id: str, replica: str, bucket: str, path: str, method: str) -> Finding:
    """A finding for an object the ledger has no record of on a replica that must hold it."""
    return Finding(snapshot_id, replica, bucket, path, None, method, MISSING, "never stored here")


def record(
    ledger: Ledger,
    findings: Iterable[Finding],
    *,
    run_id: str | None = None,
    audit_id: str | None = None,
) -> None:
    """Append the findings to the ledger as fixity events, in one transaction."""
    with ledger.session() as db:
        for finding in findings:
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
