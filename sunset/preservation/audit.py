"""The preservation audit: every preserved package checked on every replica, damage
repaired from a good copy, and the locks kept far ahead.

One audit run does, in order:

1. fast checks of every object on every replica (one version listing per package and
   replica: the recorded version present, same size and ETag, still current);
2. deep checks (re-read, re-hash, lock confirmed) of a rolling share: the objects
   checked longest ago first, as many as the byte budget allows, so successive runs
   cover every byte; it reports what would still be older than the period afterwards,
   so a budget too small for the period is noticed;
3. repair of what was found damaged, from a replica whose copy matches the manifest
   (streamed and re-hashed on the way, so a bad source is never copied), then re-checked;
4. the retention heartbeat: every lock that ends within the margin is moved out to the
   full retention period.

Nothing here raises for damage it finds; the audit's last step decides, from what is
recorded, whether the run fails.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import botocore.exceptions
from sqlmodel import col, func, select

from sunset.errors import PreservationError, SourceChanged
from sunset.ledger import (
    AuditRun,
    FixityEvent,
    Ledger,
    PreservedObject,
    RunState,
    Snapshot,
    SnapshotFile,
    SnapshotState,
    utcnow,
)
from sunset.preservation.fixity import (
    DEEP,
    FAILED,
    FAST,
    OK,
    REPAIR,
    RETENTION,
    SHADOWED,
    UNLOCKED,
    UNREACHABLE,
    Finding,
    deep_check,
    fast_check,
    record,
)
from sunset.preservation.records import preserved, record_stored
from sunset.preservation.replicas import ReplicatedStore
from sunset.runs.attempts import summarize

_S3_ERRORS = (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError)

BEGIN_STEP = "begin_audit"
FAST_STEP = "fast_verify"
DEEP_STEP = "deep_verify"
REPAIR_STEP = "repair_damage"
RETENTION_STEP = "extend_retention"
CONCLUDE_STEP = "conclude_audit"


@dataclass(frozen=True)
class Damage:
    """An object found wrong on one replica."""

    snapshot_id: str
    replica: str
    path: str
    outcome: str
    detail: str | None

    def describe(self) -> str:
        return f"{self.snapshot_id} {self.replica}:{self.path} ({self.outcome}: {self.detail})"


@dataclass(frozen=True)
class CheckSummary:
    """What one kind of check covered and what it found."""

    method: str
    snapshots: int
    objects_checked: int
    bytes_read: int
    damaged: list[Damage] = field(default_factory=list)
    overdue_objects: int = 0  # deep only: still unchecked for longer than the period
    overdue_bytes: int = 0


@dataclass(frozen=True)
class RepairSummary:
    repaired: list[str] = field(default_factory=list)
    irreparable: list[Damage] = field(default_factory=list)


@dataclass(frozen=True)
class RetentionSummary:
    extended: int
    retain_until: str
    failed: list[Damage] = field(default_factory=list)


@dataclass(frozen=True)
class AuditSummary:
    audit_id: str
    snapshots: int
    fast_checked: int
    deep_checked: int
    deep_bytes: int
    damaged: int
    repaired: int
    irreparable: list[str]
    retention_extended: int
    overdue_objects: int
    overdue_bytes: int
    irreparable_by_snapshot: dict[str, list[str]] = field(default_factory=dict)


def begin_audit(ledger: Ledger, flow_run_id: str | None) -> str:
    """Record the start of an audit run; its id ties every event of the run together."""
    with ledger.session() as db:
        run = AuditRun(flow_run_id=flow_run_id)
        db.add(run)
        return run.id


def finish_audit(ledger: Ledger, flow_run_id: str, *, error: str | None) -> None:
    """Mark the audit run of a Prefect flow run completed, or failed with its error."""
    with ledger.session() as db:
        run = db.exec(select(AuditRun).where(AuditRun.flow_run_id == flow_run_id)).first()
        if run is not None:
            run.state = RunState.FAILED if error else RunState.COMPLETED
            run.error, run.finished_at = error, utcnow()
            db.add(run)


def fast_audit(ledger: Ledger, store: ReplicatedStore, audit_id: str) -> CheckSummary:
    """Fast-check every object of every preserved snapshot on every replica that holds
    it: one version listing per package and replica, one transaction of events each."""
    objects = _preserved_objects(ledger)
    by_package: dict[tuple[str, str], list[PreservedObject]] = {}
    snapshots = {snapshot.id: snapshot for snapshot, _ in objects}
    for snapshot, held in objects:
        by_package.setdefault((snapshot.id, held.replica), []).append(held)
    damaged: list[Damage] = []
    for (snapshot_id, _), rows in by_package.items():
        findings = _fast(store, snapshots[snapshot_id], rows)
        record(ledger, findings, audit_id=audit_id)
        damaged += [_damage(f) for f in findings if not f.ok]
    return CheckSummary("fast", len(snapshots), len(objects), 0, damaged)


def deep_audit(
    ledger: Ledger,
    store: ReplicatedStore,
    audit_id: str,
    *,
    budget_bytes: int,
    period: timedelta,
) -> CheckSummary:
    """Re-read and re-hash the objects deep-checked longest ago, within ``budget_bytes``.

    The objects are taken strictly in order of their last successful deep check (never
    checked first), and the run stops at the first one that no longer fits, so none is
    passed over for long. An object larger than the whole budget is checked alone, in a
    run of its own, rather than never.
    """
    now = utcnow()
    last_ok = _last_deep_ok(ledger)
    never = datetime.min.replace(tzinfo=UTC)
    due = []
    for snapshot, held in _preserved_objects(ledger):
        checked = last_ok.get((held.snapshot_id, held.replica, held.path))
        due.append((checked if checked and checked >= held.stored_at else None, snapshot, held))
    due.sort(key=lambda item: (item[0] or never, item[2].id or 0))
    chosen: list[tuple[Snapshot, PreservedObject]] = []
    planned = 0
    for _, snapshot, held in due:
        if chosen and planned + held.size > budget_bytes:
            break
        chosen.append((snapshot, held))
        planned += held.size
    left = due[len(chosen) :]
    overdue = [h for c, _, h in left if (c or h.stored_at) < now - period]
    damaged: list[Damage] = []
    bytes_read = 0
    for snapshot, held in chosen:
        finding = _deep(store, snapshot, held)
        record(ledger, [finding], audit_id=audit_id)
        bytes_read += finding.bytes_read
        if not finding.ok:
            damaged.append(_damage(finding))
    return CheckSummary(
        "deep",
        len({s.id for s, _ in chosen}),
        len(chosen),
        bytes_read,
        damaged,
        overdue_objects=len(overdue),
        overdue_bytes=sum(h.size for h in overdue),
    )


def repair(
    ledger: Ledger, store: ReplicatedStore, audit_id: str, damaged: Sequence[Damage]
) -> RepairSummary:
    """Restore each damaged object from a replica whose copy matches the manifest.

    The good copy is streamed into a new, locked version on the damaged replica; the
    bytes are re-hashed on the way and the upload is completed only if they match the
    manifest, so a second bad copy is never spread. The new version is then fast- and
    deep-checked, and the repair is recorded as a fixity event. A lock that is merely
    too short is extended instead.
    """
    summary = RepairSummary()
    bad = {(d.snapshot_id, d.replica, d.path) for d in damaged}
    seen: set[tuple[str, str, str]] = set()
    for damage in damaged:
        key = (damage.snapshot_id, damage.replica, damage.path)
        if key in seen:
            continue
        seen.add(key)
        if _repair_one(ledger, store, audit_id, damage, bad):
            summary.repaired.append(damage.describe())
        else:
            summary.irreparable.append(damage)
    return summary


def extend_retention(
    ledger: Ledger, store: ReplicatedStore, audit_id: str, *, margin: timedelta
) -> RetentionSummary:
    """Move every lock that ends within ``margin`` out to the full retention from now."""
    threshold = utcnow() + margin
    until = store.retain_until()
    with ledger.session() as db:
        rows = db.exec(
            select(Snapshot, PreservedObject)
            .join(PreservedObject, PreservedObject.snapshot_id == Snapshot.id)  # type: ignore[arg-type]
            .where(PreservedObject.retain_until < threshold)
        ).all()
    extended = 0
    failed: list[Damage] = []
    for snapshot, held in rows:
        copy = store.copy(held.replica)
        detail = f"retain until {_when(held.retain_until)} -> {_when(until)}"
        outcome = OK
        if copy is None or held.version_id is None:
            outcome, detail = FAILED, f"replica {held.replica} is not configured"
        else:
            try:
                copy.extend_retention(snapshot.prefix + held.path, held.version_id, until)
            except _S3_ERRORS as exc:
                outcome, detail = FAILED, f"{type(exc).__name__}: {exc}"
        finding = Finding(
            held.snapshot_id,
            held.replica,
            held.bucket,
            held.path,
            held.version_id,
            RETENTION,
            outcome,
            detail,
        )
        record(ledger, [finding], audit_id=audit_id)
        if outcome == OK:
            _move_lock(ledger, held, until)
            extended += 1
        else:
            failed.append(Damage(held.snapshot_id, held.replica, held.path, outcome, detail))
    return RetentionSummary(extended, until.isoformat(), failed)


def conclude(
    ledger: Ledger,
    audit_id: str,
    fast: CheckSummary,
    deep: CheckSummary,
    repairs: RepairSummary,
    retention: RetentionSummary,
) -> AuditSummary:
    """Record the run's summary; the caller fails the run when anything is irreparable."""
    lost = [*repairs.irreparable, *retention.failed]
    summary = AuditSummary(
        audit_id=audit_id,
        snapshots=fast.snapshots,
        fast_checked=fast.objects_checked,
        deep_checked=deep.objects_checked,
        deep_bytes=deep.bytes_read,
        damaged=len({(d.snapshot_id, d.replica, d.path) for d in fast.damaged + deep.damaged}),
        repaired=len(repairs.repaired),
        irreparable=[d.describe() for d in lost],
        retention_extended=retention.extended,
        overdue_objects=deep.overdue_objects,
        overdue_bytes=deep.overdue_bytes,
        irreparable_by_snapshot={
            snapshot_id: [d.describe() for d in lost if d.snapshot_id == snapshot_id]
            for snapshot_id in sorted({d.snapshot_id for d in lost})
        },
    )
    with ledger.session() as db:
        run = db.get(AuditRun, audit_id)
        assert run is not None
        run.summary = summarize(summary)
        db.add(run)
    return summary


def irreparable_error(summary: AuditSummary) -> PreservationError:
    """The sentence a failed audit ends with."""
    return PreservationError(
        f"Audit {summary.audit_id} found {len(summary.irreparable)} object(s) with no good copy "
        f"left to restore from, or whose lock could not be kept: "
        f"{'; '.join(summary.irreparable[:10])}. Restore them from an offline copy or "
        "backup and record how; the ledger holds every check of this run."
    )


def _repair_one(
    ledger: Ledger,
    store: ReplicatedStore,
    audit_id: str,
    damage: Damage,
    bad: set[tuple[str, str, str]],
) -> bool:
    with ledger.session() as db:
        snapshot = db.get(Snapshot, damage.snapshot_id)
        copies = db.exec(
            select(PreservedObject).where(
                PreservedObject.snapshot_id == damage.snapshot_id,
                PreservedObject.path == damage.path,
            )
        ).all()
        entry = db.exec(
            select(SnapshotFile).where(
                SnapshotFile.snapshot_id == damage.snapshot_id, SnapshotFile.path == damage.path
            )
        ).first()
    assert snapshot is not None
    held = next(c for c in copies if c.replica == damage.replica)
    target = store.copy(damage.replica)
    key = snapshot.prefix + damage.path

    def log(outcome: str, detail: str, bytes_read: int = 0) -> None:
        finding = Finding(
            snapshot.id,
            damage.replica,
            held.bucket,
            damage.path,
            held.version_id,
            REPAIR,
            outcome,
            detail,
            bytes_read,
        )
        record(ledger, [finding], audit_id=audit_id)

    if target is None or damage.outcome == UNREACHABLE:
        log(FAILED, f"replica {damage.replica} is not configured; nothing can be written to it")
        return False
    if damage.outcome == UNLOCKED and held.version_id is not None:
        try:
            target.extend_retention(key, held.version_id, held.retain_until)
        except _S3_ERRORS as exc:
            log(FAILED, f"the lock could not be set again: {type(exc).__name__}: {exc}")
            return False
        log(OK, f"lock set again until {_when(held.retain_until)}")
        return _recheck(ledger, store, audit_id, snapshot, damage)
    # The manifest is the truth for payload files; tag files are what was written.
    expected = preserved(entry) if entry else None
    expected = expected or preserved(held)
    # The other replicas not found damaged in this run; the damaged replica's own version
    # only when a newer version or a delete marker merely hides it.
    sources = [
        c
        for c in copies
        if (c.snapshot_id, c.replica, c.path) not in bad
        or (c.replica == damage.replica and damage.outcome == SHADOWED)
    ]
    sources.sort(key=lambda c: c.replica == damage.replica)
    tried: list[str] = []
    for source_row in sources:
        source = store.copy(source_row.replica)
        if source is None or source_row.version_id is None:
            continue
        try:
            with contextlib.closing(source.open_object(key, source_row.version_id)) as body:
                upload = store.upload([target], key, body, expected=expected)
        except (SourceChanged, *_S3_ERRORS) as exc:
            tried.append(f"{source_row.replica}: {type(exc).__name__}")
            continue
        record_stored(ledger, store, snapshot.id, {damage.path: upload}, payload=entry is not None)
        new_version = upload.stored[target.name].version_id
        log(
            OK,
            f"{damage.outcome}: restored from {source_row.replica} version "
            f"{source_row.version_id} as version {new_version} (was {held.version_id})",
            upload.digests.size,
        )
        return _recheck(ledger, store, audit_id, snapshot, damage)
    tried_sources = ", ".join(tried) or "every copy was found damaged in this run"
    log(FAILED, f"no replica holds a copy that matches the manifest ({tried_sources})")
    return False


def _recheck(
    ledger: Ledger, store: ReplicatedStore, audit_id: str, snapshot: Snapshot, damage: Damage
) -> bool:
    with ledger.session() as db:
        held = db.exec(
            select(PreservedObject).where(
                PreservedObject.snapshot_id == damage.snapshot_id,
                PreservedObject.replica == damage.replica,
                PreservedObject.path == damage.path,
            )
        ).one()
    findings = [*_fast(store, snapshot, [held]), _deep(store, snapshot, held)]
    record(ledger, findings, audit_id=audit_id)
    return all(f.ok for f in findings)


def _fast(store: ReplicatedStore, snapshot: Snapshot, rows: list[PreservedObject]) -> list[Finding]:
    """Fast-check rows of one package held on one replica."""
    copy = store.copy(rows[0].replica)
    if copy is None:
        return [_unreachable(held, FAST) for held in rows]
    return fast_check(copy, snapshot.prefix, rows)


def _deep(store: ReplicatedStore, snapshot: Snapshot, held: PreservedObject) -> Finding:
    copy = store.copy(held.replica)
    if copy is None:
        return _unreachable(held, DEEP)
    return deep_check(copy, snapshot.prefix + held.path, held)


def _unreachable(held: PreservedObject, method: str) -> Finding:
    return Finding(
        held.snapshot_id,
        held.replica,
        held.bucket,
        held.path,
        held.version_id,
        method,
        UNREACHABLE,
        f"replica {held.replica} is not configured (SUNSET_REPLICAS)",
    )


def _damage(finding: Finding) -> Damage:
    return Damage(
        finding.snapshot_id, finding.replica, finding.path, finding.outcome, finding.detail
    )


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%dT%H:%M:%SZ}"


def _preserved_objects(ledger: Ledger) -> list[tuple[Snapshot, PreservedObject]]:
    with ledger.session() as db:
        rows = db.exec(
            select(Snapshot, PreservedObject)
            .join(PreservedObject, PreservedObject.snapshot_id == Snapshot.id)  # type: ignore[arg-type]
            .where(Snapshot.state == SnapshotState.STORED)
            .order_by(Snapshot.id, PreservedObject.replica, PreservedObject.path)
        ).all()
    return [(snapshot, held) for snapshot, held in rows]


def _last_deep_ok(ledger: Ledger) -> dict[tuple[str, str | None, str], datetime]:
    with ledger.session() as db:
        rows = db.exec(
            select(
                FixityEvent.snapshot_id,
                FixityEvent.replica,
                FixityEvent.path,
                func.max(FixityEvent.checked_at),
            )
            .where(FixityEvent.method == DEEP, FixityEvent.outcome == OK)
            .group_by(col(FixityEvent.snapshot_id), col(FixityEvent.replica), col(FixityEvent.path))
        ).all()
    return {(s, r, p): checked for s, r, p, checked in rows}


def _move_lock(ledger: Ledger, held: PreservedObject, until: datetime) -> None:
    with ledger.session() as db:
        row = db.get(PreservedObject, held.id)
        assert row is not None
        row.retain_until = until
        db.add(row)
