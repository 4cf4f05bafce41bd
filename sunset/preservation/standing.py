"""Where a model's package stands, read from the ledger alone: its latest package, whether
that package stands verified, and its latest fingerprint.

The status record, the serving guards, the approval summary and the report read it
here; nothing in it talks to a store, so reading it loads no S3 client.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import Select

from sunset.ledger import Fingerprint, FixityEvent, Ledger, PreservedObject, Snapshot, SnapshotFile
from sunset.preservation.outcomes import DEEP, FAST, OK


def latest_snapshot(db: Session, model_id: str) -> Snapshot | None:
    """The model's most recent preservation package."""
    return db.exec(
        select(Snapshot).where(Snapshot.model_id == model_id).order_by(Snapshot.created_at.desc())  # type: ignore[attr-defined]
    ).first()


def latest_fingerprint(db: Session, snapshot_id: str) -> Fingerprint | None:
    """The snapshot's most recently recorded fingerprint, or None if it has none."""
    return db.exec(
        select(Fingerprint)
        .where(Fingerprint.snapshot_id == snapshot_id)
        .order_by(col(Fingerprint.id).desc())
    ).first()


def is_verified(ledger: Ledger, snapshot_id: str) -> bool:
    """True when every replica holds every payload file and, for every object recorded on
    every replica, both its latest fast check and its latest deep check since it was
    stored are ``ok``: a passing deep check does not clear a fast check that found the
    object shadowed, only a later passing fast check does (a repair's re-check counts)."""
    with ledger.session() as db:
        paths = set(
            db.exec(select(SnapshotFile.path).where(SnapshotFile.snapshot_id == snapshot_id))
        )
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
