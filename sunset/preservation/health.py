"""Package health, read from the ledger alone: for each stored package on each replica,
since when every object passed a fast and a deep check, how much of it was deep-checked
within the period, what is open, and how far its locks reach; the deep-coverage clock;
and what one audit run did, model by model and replica by replica.

``sunset audit``, ``sunset status MODEL`` and the audit run's artifact all read it here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlmodel import col, func, select

from sunset.ledger import (
    AuditFinding,
    AuditRun,
    FindingKind,
    FixityEvent,
    Ledger,
    PreservedObject,
    Snapshot,
    SnapshotState,
    utcnow,
)
from sunset.preservation.outcomes import (
    DEEP,
    FAST,
    OK,
    REPAIR,
    RETENTION,
    digest_names,
    proves_damage,
)


@dataclass(frozen=True)
class ReplicaHealth:
    """One package on one replica."""

    replica: str
    objects: int
    bytes: int
    last_fast: datetime | None  # every object passed a fast check since; None: one never did
    last_deep: datetime | None  # every object passed a deep check since; None: one never did
    deep_covered_bytes: int  # bytes whose last passing deep check is within the period
    open_damage: int  # objects with open damaged or missing findings
    unchecked: int  # objects a run could not check, not checked since
    locked_until: datetime | None  # the earliest lock of its objects


@dataclass(frozen=True)
class PackageHealth:
    """One stored package on every replica, with its open findings."""

    snapshot_id: str
    model_id: str
    period_days: int
    replicas: list[ReplicaHealth]
    findings: list[AuditFinding] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.findings

    def one_line(self) -> str:
        """The package's health as one line, for `sunset status MODEL`."""
        damage = sum(r.open_damage for r in self.replicas)
        unchecked = sum(r.unchecked for r in self.replicas)
        fast = _since_all(r.last_fast for r in self.replicas)
        deep = _since_all(r.last_deep for r in self.replicas)
        locked = _earliest(r.locked_until for r in self.replicas)
        covered = sum(r.deep_covered_bytes for r in self.replicas)
        total = sum(r.bytes for r in self.replicas)
        parts = [
            f"{damage} object(s) with open damage" if damage else "no open damage",
            f"{unchecked} check(s) could not be made" if unchecked else "",
            f"fast-checked ok since {day(fast)} on {len(self.replicas)} replica(s)",
            f"deep-checked since {day(deep)}, {percent(covered, total)} within "
            f"{self.period_days} days",
            f"locked until {day(locked)}",
        ]
        return f"Package health: {'; '.join(p for p in parts if p)}."


@dataclass(frozen=True)
class CoverageClock:
    """How long ago the object deep-checked longest ago was last deep-checked (or stored,
    if it never was), against the period every byte should be re-read in."""

    oldest: datetime | None  # None: nothing is preserved
    where: str  # model, replica and object of that oldest check
    period_days: int

    def sentence(self, now: datetime) -> str:
        if self.oldest is None:
            return "Deep-coverage clock: nothing is preserved yet."
        age = (now - self.oldest).days
        verdict = (
            f"behind by {age - self.period_days} day(s)"
            if age > self.period_days
            else f"{self.period_days - age} day(s) to spare"
        )
        return (
            f"Deep-coverage clock: the oldest deep check is {age} day(s) old "
            f"({self.where}, {day(self.oldest)}) against a period of {self.period_days} "
            f"days: {verdict}."
        )


@dataclass(frozen=True)
class RunRow:
    """What one audit run did to one model's packages on one replica."""

    model_id: str
    replica: str
    fast: int = 0  # objects fast-checked
    deep: int = 0  # objects deep-checked
    bytes_read: int = 0  # by deep checks
    damaged: int = 0  # objects found damaged or missing
    repaired: int = 0
    locks_extended: int = 0
    unreachable: int = 0  # objects it could not check


def package_health(ledger: Ledger, snapshot_id: str, period_days: int) -> PackageHealth:
    """The health of one stored package on every replica that holds it."""
    [health] = _health(ledger, period_days, snapshot_id=snapshot_id)
    return health


def model_package_health(ledger: Ledger, model_id: str, period_days: int) -> PackageHealth | None:
    """The health of the model's latest stored package, or None if it has none."""
    with ledger.session() as db:
        latest = db.exec(
            select(Snapshot.id)
            .where(Snapshot.model_id == model_id, Snapshot.state == SnapshotState.STORED)
            .order_by(col(Snapshot.stored_at).desc())
        ).first()
    return None if latest is None else package_health(ledger, latest, period_days)


def every_package_health(ledger: Ledger, period_days: int) -> list[PackageHealth]:
    """The health of every stored package, by model and package."""
    return _health(ledger, period_days)


def coverage_clock(ledger: Ledger, period_days: int) -> CoverageClock:
    """The deep-coverage clock over every object of every stored package."""
    held = _held(ledger)
    last = last_ok(ledger, DEEP)
    oldest: tuple[datetime, str] | None = None
    for model_id, row in held:
        checked = last.get((row.snapshot_id, row.replica, row.path))
        moment = checked if checked and checked >= row.stored_at else row.stored_at
        if oldest is None or moment < oldest[0]:
            oldest = (moment, f"{model_id} {row.replica}:{row.path}")
    if oldest is None:
        return CoverageClock(None, "", period_days)
    return CoverageClock(oldest[0], oldest[1], period_days)


def last_audit(ledger: Ledger) -> AuditRun | None:
    """The audit run begun last."""
    with ledger.session() as db:
        return db.exec(select(AuditRun).order_by(col(AuditRun.started_at).desc())).first()


def run_table(ledger: Ledger, audit_id: str) -> list[RunRow]:
    """What the audit run did, by model and replica, counted from its fixity events and
    findings: objects (not checks) for every count but bytes."""
    with ledger.session() as db:
        events = db.exec(
            select(FixityEvent, Snapshot.model_id)
            .join(Snapshot, col(Snapshot.id) == col(FixityEvent.snapshot_id))
            .where(FixityEvent.audit_id == audit_id)
        ).all()
        unreached = db.exec(
            select(AuditFinding, Snapshot.model_id)
            .join(Snapshot, col(Snapshot.id) == col(AuditFinding.snapshot_id))
            .where(
                AuditFinding.last_audit_id == audit_id,
                AuditFinding.kind == FindingKind.UNREACHABLE,
            )
        ).all()
    objects: dict[tuple[str, str, str], set[tuple[str, str]]] = {}
    bytes_read: dict[tuple[str, str], int] = {}

    def add(model_id: str, replica: str, column: str, snapshot_id: str, path: str) -> None:
        objects.setdefault((model_id, replica, column), set()).add((snapshot_id, path))

    for event, model_id in events:
        replica = event.replica or ""
        if event.method in (FAST, DEEP):
            add(model_id, replica, event.method, event.snapshot_id, event.path)
            if proves_damage(event.outcome):
                add(model_id, replica, "damaged", event.snapshot_id, event.path)
        elif event.outcome == OK:  # a repair or a lock extension that was done
            add(model_id, replica, event.method, event.snapshot_id, event.path)
        if event.method == DEEP:
            bytes_read[(model_id, replica)] = (
                bytes_read.get((model_id, replica), 0) + event.bytes_read
            )
    for finding, model_id in unreached:
        add(model_id, finding.replica, "unreachable", finding.snapshot_id, finding.path)
    rows = sorted({(m, r) for m, r, _ in objects} | set(bytes_read))

    def count(model_id: str, replica: str, column: str) -> int:
        return len(objects.get((model_id, replica, column), set()))

    return [
        RunRow(
            model_id=m,
            replica=r,
            fast=count(m, r, FAST),
            deep=count(m, r, DEEP),
            bytes_read=bytes_read.get((m, r), 0),
            damaged=count(m, r, "damaged"),
            repaired=count(m, r, REPAIR),
            locks_extended=count(m, r, RETENTION),
            unreachable=count(m, r, "unreachable"),
        )
        for m, r in rows
    ]


def run_markdown(
    name: str, state: str, rows: list[RunRow], clock: CoverageClock, rehashed: tuple[str, ...]
) -> str:
    """The audit run's artifact: its table by model and replica, what a deep check
    compared (``rehashed``: the digests of every byte re-read), and the coverage clock."""
    lines = [
        f"# Preservation audit {name}: {state}",
        "",
        "| model | replica | fast | deep | bytes re-read | damaged | repaired "
        "| locks extended | unreachable |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {_cell(r.model_id)} | {_cell(r.replica)} | {r.fast} | {r.deep} | {r.bytes_read} "
        f"| {r.damaged} | {r.repaired} | {r.locks_extended} | {r.unreachable} |"
        for r in rows
    ]
    if not rows:
        lines.append("| (nothing preserved) | | | | | | | | |")
    lines.append("")
    if any(r.deep for r in rows):
        lines += [
            f"Deep checks re-read every byte and compared its {digest_names(rehashed)} "
            "with the record, and confirmed the lock.",
            "",
        ]
    return "\n".join([*lines, clock.sentence(utcnow()), ""])


def day(moment: datetime | None) -> str:
    """A moment as the health views show it: its UTC date, or 'never'."""
    return f"{moment:%Y-%m-%d}" if moment else "never"


def percent(part: int, whole: int) -> str:
    """``part`` of ``whole`` as a whole percentage, rounded down (100% means all of it)."""
    return f"{100 * part // whole if whole else 100}%"


def _health(
    ledger: Ledger, period_days: int, *, snapshot_id: str | None = None
) -> list[PackageHealth]:
    horizon = utcnow() - timedelta(days=period_days)
    held = _held(ledger, snapshot_id)
    fast, deep = last_ok(ledger, FAST, snapshot_id), last_ok(ledger, DEEP, snapshot_id)
    with ledger.session() as db:
        query = select(AuditFinding).where(col(AuditFinding.closed_at).is_(None))
        if snapshot_id is not None:
            query = query.where(AuditFinding.snapshot_id == snapshot_id)
        findings = list(db.exec(query.order_by(col(AuditFinding.replica), col(AuditFinding.path))))
    by_package: dict[tuple[str, str], dict[str, list[PreservedObject]]] = {}
    for model_id, row in held:
        by_package.setdefault((model_id, row.snapshot_id), {}).setdefault(row.replica, []).append(
            row
        )
    packages = []
    for (model_id, package), replicas in sorted(by_package.items()):
        mine = [f for f in findings if f.snapshot_id == package]
        packages.append(
            PackageHealth(
                snapshot_id=package,
                model_id=model_id,
                period_days=period_days,
                replicas=[
                    _replica_health(name, rows, fast, deep, mine, horizon)
                    for name, rows in sorted(replicas.items())
                ],
                findings=mine,
            )
        )
    return packages


def _replica_health(
    name: str,
    rows: list[PreservedObject],
    fast: dict[tuple[str, str, str], datetime],
    deep: dict[tuple[str, str, str], datetime],
    findings: list[AuditFinding],
    horizon: datetime,
) -> ReplicaHealth:
    def since(last: dict[tuple[str, str, str], datetime], row: PreservedObject) -> datetime | None:
        checked = last.get((row.snapshot_id, row.replica, row.path))
        return checked if checked and checked >= row.stored_at else None

    fast_ok = [since(fast, row) for row in rows]
    deep_ok = [since(deep, row) for row in rows]
    mine = [f for f in findings if f.replica == name]
    return ReplicaHealth(
        replica=name,
        objects=len(rows),
        bytes=sum(row.size for row in rows),
        last_fast=_since_all(fast_ok),
        last_deep=_since_all(deep_ok),
        deep_covered_bytes=sum(
            row.size for row, ok in zip(rows, deep_ok, strict=True) if ok and ok >= horizon
        ),
        open_damage=len({f.path for f in mine if proves_damage(f.outcome)}),
        unchecked=len({f.path for f in mine if f.kind == FindingKind.UNREACHABLE}),
        locked_until=_earliest(row.retain_until for row in rows),
    )


def _held(ledger: Ledger, snapshot_id: str | None = None) -> list[tuple[str, PreservedObject]]:
    with ledger.session() as db:
        query = (
            select(Snapshot.model_id, PreservedObject)
            .join(PreservedObject, col(PreservedObject.snapshot_id) == col(Snapshot.id))
            .where(Snapshot.state == SnapshotState.STORED)
        )
        if snapshot_id is not None:
            query = query.where(Snapshot.id == snapshot_id)
        return [(model_id, row) for model_id, row in db.exec(query)]


def last_ok(
    ledger: Ledger, method: str, snapshot_id: str | None = None
) -> dict[tuple[str, str, str], datetime]:
    """When each object last passed a check of ``method`` on each replica."""
    with ledger.session() as db:
        query = (
            select(
                FixityEvent.snapshot_id,
                FixityEvent.replica,
                FixityEvent.path,
                func.max(FixityEvent.checked_at),
            )
            .where(FixityEvent.method == method, FixityEvent.outcome == OK)
            .group_by(col(FixityEvent.snapshot_id), col(FixityEvent.replica), col(FixityEvent.path))
        )
        if snapshot_id is not None:
            query = query.where(FixityEvent.snapshot_id == snapshot_id)
        return {(s, r or "", p): checked for s, r, p, checked in db.exec(query)}


def _since_all(moments: Iterable[datetime | None]) -> datetime | None:
    """The earliest of ``moments``, or None if one of them is None (it never happened)."""
    known = list(moments)
    return None if not known or None in known else _earliest(known)


def _earliest(moments: Iterable[datetime | None]) -> datetime | None:
    known = [m for m in moments if m is not None]
    return min(known) if known else None


def _cell(text: str) -> str:
    return text.replace("|", "\\|")
