"""Verification: proof that every replica holds every object of a package intact, each
check recorded as a fixity event, and the question whether a package stands verified."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.sql.expression import Select

from sunset.errors import VerificationFailed
from sunset.ledger import FixityEvent, Ledger, PreservedObject, Snapshot
from sunset.preservation.fixity import (
    DEEP,
    FAST,
    MISMATCH,
    OK,
    Finding,
    absent,
    deep_check,
    fast_check,
    record,
)
from sunset.preservation.records import (
    held_objects,
    load_snapshot,
    package_tag_files,
    preserved,
    snapshot_files,
)
from sunset.preservation.replicas import ReplicatedStore
from sunset.preservation.store import ObjectStore, digest_bytes


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
) -> VerificationSummary:
    """Check every payload file (or just ``paths``) and every tag file on every replica:
    fast (one version listing per replica: each version present, same size and ETag,
    still current), then deep (re-read, re-hashed, lock confirmed) for each object the
    fast check passed.

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

    for copy in store.copies:
        refused, listed = _before_listing(copy, snapshot, wanted, held, tags)
        fast = fast_check(copy, snapshot.prefix, listed)
        tally(refused + fast)
        for row, finding in zip(listed, fast, strict=True):
            if not finding.ok:
                continue
            deep = deep_check(copy, snapshot.prefix + row.path, row)
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


def is_verified(ledger: Ledger, snapshot_id: str) -> bool:
    """True when every replica holds every payload file and, for every object recorded on
    every replica, both its latest fast check and its latest deep check since it was
    stored are ``ok``: a passing deep check does not clear a fast check that found the
    object shadowed, only a later passing fast check does (a repair's re-check counts)."""
    paths = {f.path for f in snapshot_files(ledger, snapshot_id)}
    with ledger.session() as db:
        outcomes = db.exec(_latest_checks(snapshot_id)).all()
    held = {(replica, path) for replica, path, _, _ in outcomes}
    replicas = {replica for replica, _ in held}
    # Nothing held anywhere is nothing verified, however many files the manifest lists.
    if not paths or not held or any((r, p) not in held for r in replicas for p in paths):
        return False
    passed = {(r, p, method) for r, p, method, outcome in outcomes if outcome == OK}
    return all((r, p, method) in passed for r, p in held for method in (FAST, DEEP))


def _latest_checks(snapshot_id: str) -> Select[str, str, Any, Any]:
    """Each object the package holds on each replica, with the method and outcome of its
    latest fast and latest deep check since it was stored: one row per check found, one
    row of ``None`` for an object never checked since."""
    event, stored = FixityEvent, PreservedObject
    ranked = (
        sa.select(
            col(event.replica),
            col(event.path),
            col(event.method),
            col(event.outcome),
            sa.func.row_number()
            .over(
                partition_by=(col(event.replica), col(event.path), col(event.method)),
                order_by=(col(event.checked_at).desc(), col(event.id).desc()),
            )
            .label("recency"),
        )
        .join(
            stored,
            sa.and_(
                col(stored.snapshot_id) == col(event.snapshot_id),
                col(stored.replica) == col(event.replica),
                col(stored.path) == col(event.path),
            ),
        )
        .where(
            col(event.snapshot_id) == snapshot_id,
            col(event.method).in_([FAST, DEEP]),
            col(event.checked_at) >= col(stored.stored_at),
        )
        .subquery()
    )
    return (
        select(stored.replica, stored.path, ranked.c.method, ranked.c.outcome)
        .outerjoin(
            ranked,
            sa.and_(
                ranked.c.replica == col(stored.replica),
                ranked.c.path == col(stored.path),
                ranked.c.recency == 1,
            ),
        )
        .where(stored.snapshot_id == snapshot_id)
    )
