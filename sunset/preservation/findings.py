"""The audit's findings: what it found wrong, or could not learn, object by object, kept
open in ``audit_findings`` until a check proves the object healthy again.

* a check that is not ok opens a damage finding for its object and replica, or carries
  the open one forward: damaged (bytes, size, ETag or lock differ) or missing (the
  version is gone or hidden);
* a check that could not be made (the replica did not answer) opens an unreachable
  finding, a separate one: not knowing never overwrites knowing;
* a repair that wrote a new version and re-checked it closes the damage finding as
  repaired;
* a later run closes a damage finding as healthy when it checked the object and found it
  intact (for damage to the bytes or the lock, only a deep check proves that), and an
  unreachable finding as reached when the replica answered for the object again;
* a package whose findings, opened by earlier runs, are all closed is healthy again: the
  run gives it an all-clear, once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from sunset.ledger import (
    AuditFinding,
    FindingKind,
    FixityEvent,
    Ledger,
    PreservedObject,
    Snapshot,
    utcnow,
)
from sunset.preservation.fixity import Finding
from sunset.preservation.outcomes import DEEP, FAST, OK, UNREACHABLE

REPAIRED = "repaired"
HEALTHY = "healthy"
REACHED = "reached"

ObjectKey = tuple[str, str, str]  # snapshot id, replica, path
# An object, and whether the finding is that it could not be reached.
FindingKey = tuple[str, str, str, bool]


@dataclass(frozen=True)
class AllClear:
    """A package that had open damage or an incomplete audit, found healthy again."""

    snapshot_id: str
    model_id: str
    open_since: datetime
    objects: int  # findings closed
    repaired: int  # of which by a repair

    def text(self, run: str) -> str:
        return (
            f"Sunset: all clear for model {self.model_id} (package {self.snapshot_id}): every "
            f"object on every replica checked ok by audit {run}; {self.objects} finding(s) "
            f"open since {self.open_since:%Y-%m-%d %H:%M} UTC are closed, "
            f"{self.repaired} of them by a repair."
        )


def note_findings(ledger: Ledger, audit_id: str, findings: Iterable[Finding]) -> None:
    """Open, or carry forward, a finding for every check in ``findings`` that was not ok."""
    wrong = [f for f in findings if f.kind is not None]
    with ledger.session() as db:
        opened = _open_findings(db, {f.snapshot_id for f in wrong})
        for finding in wrong:
            assert finding.kind is not None
            key = (finding.snapshot_id, finding.replica, finding.path)
            _note(db, opened, audit_id, key, finding.kind, finding.outcome, finding.detail)


def note_unreached(
    ledger: Ledger, audit_id: str, rows: Sequence[PreservedObject], error: str
) -> None:
    """Record that the objects of ``rows`` could not be checked: their replica did not
    answer. Open damage findings stay as they were."""
    with ledger.session() as db:
        opened = _open_findings(db, {row.snapshot_id for row in rows})
        for row in rows:
            key = (row.snapshot_id, row.replica, row.path)
            _note(db, opened, audit_id, key, FindingKind.UNREACHABLE, UNREACHABLE, error)


def close_repaired(ledger: Ledger, audit_id: str, key: ObjectKey, detail: str) -> None:
    """Close the object's open damage finding: a new version was written and passed its
    checks."""
    with ledger.session() as db:
        finding = _open_findings(db, {key[0]}).get((*key, False))
        if finding is not None:
            _close(db, finding, audit_id, REPAIRED, detail)


def close_healthy(ledger: Ledger, audit_id: str) -> list[AllClear]:
    """Close every finding not found again by this run whose object this run checked:
    damage found intact again (bytes or lock damage only by a passing deep check; absence
    by any passing check), an outage answered; return the packages healthy again."""
    with ledger.session() as db:
        open_rows = list(db.exec(select(AuditFinding).where(col(AuditFinding.closed_at).is_(None))))
        checked = _checked_this_run(db, audit_id, {f.snapshot_id for f in open_rows})
        for finding in open_rows:
            if finding.last_audit_id == audit_id:
                continue  # found again by this run
            outcomes = checked.get((finding.snapshot_id, finding.replica, finding.path), set())
            passed = sorted(method for method, outcome in outcomes if outcome == OK)
            if finding.kind == FindingKind.UNREACHABLE:
                if outcomes:
                    _close(db, finding, audit_id, REACHED, "the replica answered for it again")
            elif (DEEP in passed) or (passed and finding.kind == FindingKind.MISSING):
                _close(db, finding, audit_id, HEALTHY, f"checked ok ({', '.join(passed)})")
        db.flush()
        return _all_clear(db, audit_id)


def _note(
    db: Session,
    opened: dict[FindingKey, AuditFinding],
    audit_id: str,
    key: ObjectKey,
    kind: FindingKind,
    outcome: str,
    detail: str | None,
) -> None:
    now = utcnow()
    slot = (*key, kind == FindingKind.UNREACHABLE)
    finding = opened.get(slot)
    if finding is None:
        snapshot_id, replica, path = key
        finding = AuditFinding(
            snapshot_id=snapshot_id,
            replica=replica,
            path=path,
            kind=kind,
            outcome=outcome,
            detail=detail,
            first_audit_id=audit_id,
            first_found_at=now,
            last_audit_id=audit_id,
            last_found_at=now,
        )
        opened[slot] = finding
    else:
        finding.kind, finding.outcome, finding.detail = kind, outcome, detail
        finding.last_audit_id, finding.last_found_at = audit_id, now
    db.add(finding)


def _close(db: Session, finding: AuditFinding, audit_id: str, resolution: str, detail: str) -> None:
    finding.resolution, finding.resolution_detail = resolution, detail
    finding.closed_audit_id, finding.closed_at = audit_id, utcnow()
    db.add(finding)


def _open_findings(db: Session, snapshot_ids: set[str]) -> dict[FindingKey, AuditFinding]:
    rows = db.exec(
        select(AuditFinding).where(
            col(AuditFinding.snapshot_id).in_(snapshot_ids), col(AuditFinding.closed_at).is_(None)
        )
    )
    return {(f.snapshot_id, f.replica, f.path, f.kind == FindingKind.UNREACHABLE): f for f in rows}


def _checked_this_run(
    db: Session, audit_id: str, snapshot_ids: set[str]
) -> dict[ObjectKey, set[tuple[str, str]]]:
    """The method and outcome of each check this run made of each object's current
    version."""
    events = db.exec(
        select(FixityEvent)
        .join(
            PreservedObject,
            (col(PreservedObject.snapshot_id) == col(FixityEvent.snapshot_id))
            & (col(PreservedObject.replica) == col(FixityEvent.replica))
            & (col(PreservedObject.path) == col(FixityEvent.path))
            & (col(PreservedObject.version_id) == col(FixityEvent.version_id)),
        )
        .where(
            FixityEvent.audit_id == audit_id,
            col(FixityEvent.method).in_([FAST, DEEP]),
            col(FixityEvent.snapshot_id).in_(snapshot_ids),
        )
    )
    checked: dict[ObjectKey, set[tuple[str, str]]] = {}
    for event in events:
        key = (event.snapshot_id, event.replica or "", event.path)
        checked.setdefault(key, set()).add((event.method, event.outcome))
    return checked


def _all_clear(db: Session, audit_id: str) -> list[AllClear]:
    closed_now = db.exec(select(AuditFinding).where(AuditFinding.closed_audit_id == audit_id)).all()
    earlier = {f.snapshot_id for f in closed_now if f.first_audit_id != audit_id}
    still_open = set(
        db.exec(
            select(AuditFinding.snapshot_id).where(
                col(AuditFinding.snapshot_id).in_(earlier), col(AuditFinding.closed_at).is_(None)
            )
        )
    )
    cleared = []
    for snapshot_id in sorted(earlier - still_open):
        snapshot = db.get(Snapshot, snapshot_id)
        assert snapshot is not None
        mine = [f for f in closed_now if f.snapshot_id == snapshot_id]
        cleared.append(
            AllClear(
                snapshot_id=snapshot_id,
                model_id=snapshot.model_id,
                open_since=min(f.first_found_at for f in mine),
                objects=len(mine),
                repaired=sum(f.resolution == REPAIRED for f in mine),
            )
        )
    return cleared
