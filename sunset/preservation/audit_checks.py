"""The audit's checks: every object fast-checked on every replica, a rolling share
deep-checked, each check a fixity event and each result that is not ok a finding.

A replica that does not answer (see ``reach``) leaves its objects unchecked: no fixity
event is written for them, since nothing was learned, and an ``unreachable`` finding
says so until a later run checks them.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlmodel import col, select

from sunset.ledger import (
    AuditFinding,
    FindingKind,
    Ledger,
    PreservedObject,
    Snapshot,
    SnapshotState,
    utcnow,
)
from sunset.preservation.findings import note_findings, note_unreached
from sunset.preservation.fixity import Finding, listed_findings, record
from sunset.preservation.health import last_ok
from sunset.preservation.outcomes import DEEP
from sunset.preservation.reach import Reach, Unanswered, Unreached
from sunset.preservation.replicas import ReplicatedStore
from sunset.preservation.workers import ObjectToReread, Workers, thread_workers

_NEVER = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Damage:
    """An object this run found damaged or missing on one replica."""

    snapshot_id: str
    replica: str
    path: str
    outcome: str
    detail: str | None

    @property
    def key(self) -> tuple[str, str, str]:
        return self.snapshot_id, self.replica, self.path

    def describe(self) -> str:
        return f"{self.snapshot_id} {self.replica}:{self.path} ({self.outcome}: {self.detail})"


@dataclass(frozen=True)
class CheckSummary:
    """What one kind of check covered, found, and could not reach."""

    method: str
    snapshots: int
    objects_checked: int
    bytes_read: int
    damaged: list[Damage] = field(default_factory=list)
    unchecked: int = 0  # objects whose replica did not answer
    unanswered: Unanswered = field(default_factory=Unanswered)  # so far in the run
    overdue_objects: int = 0  # deep only: still unchecked for longer than the period
    overdue_bytes: int = 0
    all_digests: bool = False  # deep only: every byte read was re-hashed with SHA-512 too


def fast_audit(ledger: Ledger, store: ReplicatedStore, audit_id: str, reach: Reach) -> CheckSummary:
    """Fast-check every object of every preserved snapshot on every replica that holds
    it: one version listing per package and replica, one transaction of events each."""
    objects = preserved_objects(ledger)
    by_package: dict[tuple[str, str], list[PreservedObject]] = {}
    snapshots = {snapshot.id: snapshot for snapshot, _ in objects}
    for snapshot, held in objects:
        by_package.setdefault((snapshot.id, held.replica), []).append(held)
    damaged: list[Damage] = []
    checked = unchecked = 0
    for (snapshot_id, _), rows in by_package.items():
        findings = check_fast(ledger, store, audit_id, snapshots[snapshot_id], rows, reach)
        if isinstance(findings, Unreached):
            unchecked += len(rows)
            continue
        checked += len(rows)
        damaged += [_damage(f) for f in findings if not f.ok]
    return CheckSummary("fast", len(snapshots), checked, 0, damaged, unchecked, reach.unanswered)


def deep_audit(
    ledger: Ledger,
    store: ReplicatedStore,
    audit_id: str,
    reach: Reach,
    *,
    budget_bytes: int,
    period: timedelta,
    workers: Workers | None = None,
    all_digests: bool = False,
) -> CheckSummary:
    """Re-read and re-hash (SHA-256 and CRC64NVME, and SHA-512 too with ``all_digests``)
    the objects with open damage, then those deep-checked longest ago, within
    ``budget_bytes``, on the replicas that answer.

    The objects are taken strictly in that order, and the run stops at the first one
    that no longer fits, so none is passed over for long. An object larger than the
    whole budget is checked alone, in a run of its own, rather than never. The re-reads
    run on ``workers`` (default: ``DEEP_CHECKS_AT_ONCE`` at a time in this process).
    """
    now = utcnow()
    last_passed = last_ok(ledger, DEEP)
    suspect = _with_open_damage(ledger)
    due = []
    for snapshot, held in preserved_objects(ledger):
        if not reach.reachable(held.replica):
            continue
        key = (held.snapshot_id, held.replica, held.path)
        checked = last_passed.get(key)
        checked = checked if checked and checked >= held.stored_at else None
        due.append((key not in suspect, checked or _NEVER, held.id or 0, checked, snapshot, held))
    due.sort(key=lambda item: item[:3])
    chosen: list[tuple[Snapshot, PreservedObject]] = []
    planned = 0
    for *_, snapshot, held in due:
        if chosen and planned + held.size > budget_bytes:
            break
        chosen.append((snapshot, held))
        planned += held.size
    overdue = [h for _, _, _, c, _, h in due[len(chosen) :] if (c or h.stored_at) < now - period]
    damaged: list[Damage] = []
    bytes_read = checked_count = unchecked = 0
    own = thread_workers(store) if workers is None else contextlib.nullcontext(workers)
    with own as rereading, ThreadPoolExecutor(rereading.objects_at_once) as asking:
        # Asked objects_at_once at a time (each with its retries); recorded here, in order.
        answers = asking.map(
            lambda pair: ask_deep(
                store, rereading, pair[0].prefix, pair[1], reach, all_digests=all_digests
            ),
            chosen,
        )
        results = [
            _recorded(ledger, audit_id, [held], found)
            for (_, held), found in zip(chosen, answers, strict=True)
        ]
    for recorded in results:
        finding = recorded if isinstance(recorded, Unreached) else recorded[0]
        if isinstance(finding, Unreached):
            unchecked += 1
            continue
        checked_count += 1
        bytes_read += finding.bytes_read
        if not finding.ok:
            damaged.append(_damage(finding))
    return CheckSummary(
        "deep",
        len({s.id for s, _ in chosen}),
        checked_count,
        bytes_read,
        damaged,
        unchecked,
        reach.unanswered,
        overdue_objects=len(overdue),
        overdue_bytes=sum(h.size for h in overdue),
        all_digests=all_digests,
    )


def check_fast(
    ledger: Ledger,
    store: ReplicatedStore,
    audit_id: str,
    snapshot: Snapshot,
    rows: list[PreservedObject],
    reach: Reach,
) -> list[Finding] | Unreached:
    """Fast-check rows of one package held on one replica, and record what was learned."""
    replica = rows[0].replica
    copy = store.copy(replica)
    found = (
        reach.ask(replica, lambda: listed_findings(copy, snapshot.prefix, rows))
        if copy is not None
        else reach.not_configured(replica)
    )
    return _recorded(ledger, audit_id, rows, found)


def check_deep(
    ledger: Ledger,
    store: ReplicatedStore,
    audit_id: str,
    snapshot: Snapshot,
    held: PreservedObject,
    reach: Reach,
    *,
    all_digests: bool = False,
) -> Finding | Unreached:
    """Deep-check one object on its replica, and record what was learned."""
    with thread_workers(store) as workers:
        found = ask_deep(store, workers, snapshot.prefix, held, reach, all_digests=all_digests)
    recorded = _recorded(ledger, audit_id, [held], found)
    return recorded if isinstance(recorded, Unreached) else recorded[0]


def ask_deep(
    store: ReplicatedStore,
    workers: Workers,
    prefix: str,
    held: PreservedObject,
    reach: Reach,
    *,
    all_digests: bool = False,
) -> list[Finding] | Unreached:
    """Have ``workers`` re-read one object, asking its replica again as ``reach`` says."""
    if store.copy(held.replica) is None:
        return reach.not_configured(held.replica)
    item = ObjectToReread(held.replica, prefix + held.path, held, all_digests)
    return reach.ask(held.replica, lambda: [workers.reread(item).result()])


def _recorded(
    ledger: Ledger,
    audit_id: str,
    rows: list[PreservedObject],
    found: list[Finding] | Unreached,
) -> list[Finding] | Unreached:
    if isinstance(found, Unreached):
        note_unreached(ledger, audit_id, rows, f"replica {found.replica}: {found.error}")
        return found
    record(ledger, found, audit_id=audit_id)
    note_findings(ledger, audit_id, found)
    return found


def _damage(finding: Finding) -> Damage:
    return Damage(
        finding.snapshot_id, finding.replica, finding.path, finding.outcome, finding.detail
    )


def preserved_objects(ledger: Ledger) -> list[tuple[Snapshot, PreservedObject]]:
    """Every object of every stored package on every replica, by package, replica, path."""
    with ledger.session() as db:
        rows = db.exec(
            select(Snapshot, PreservedObject)
            .join(PreservedObject, col(PreservedObject.snapshot_id) == col(Snapshot.id))
            .where(Snapshot.state == SnapshotState.STORED)
            .order_by(col(Snapshot.id), col(PreservedObject.replica), col(PreservedObject.path))
        ).all()
    return [(snapshot, held) for snapshot, held in rows]


def _with_open_damage(ledger: Ledger) -> set[tuple[str, str, str]]:
    # Not the objects left unchecked by an outage: they come early anyway, checked longest
    # ago, and one the store will not read must not hold up the rest at the front.
    with ledger.session() as db:
        rows = db.exec(
            select(AuditFinding.snapshot_id, AuditFinding.replica, AuditFinding.path).where(
                col(AuditFinding.closed_at).is_(None),
                AuditFinding.kind != FindingKind.UNREACHABLE,
            )
        ).all()
    return {(s, r, p) for s, r, p in rows}
