"""The audit's repairs and its retention heartbeat.

Only what this run proved damaged or missing is repaired, and only from a copy this run
proved good: a replica whose every check of the object in this run passed (or, for a
version merely hidden by a newer one, that version itself). The good copy is streamed
into a new, locked version, re-hashed on the way and completed only if it matches the
manifest, so a second bad copy is never spread; the new version is then fast- and
deep-checked, and every step is a fixity event.

An object ends the repair step in one of three ways:

* repaired: a new version holds the manifest's bytes and passed its checks;
* deferred: no copy could be proven good in this run because a replica did not answer
  (or the write did not get through); the next run tries again;
* irreparable: every copy was checked in this run and none is good.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlmodel import col, select

from sunset.errors import SourceChanged
from sunset.ledger import (
    FixityEvent,
    Ledger,
    PreservedObject,
    Snapshot,
    SnapshotFile,
    utcnow,
)
from sunset.preservation.audit_checks import Damage, check_deep, check_fast
from sunset.preservation.findings import close_repaired
from sunset.preservation.fixity import Finding, record
from sunset.preservation.outcomes import (
    DEEP,
    FAILED,
    FAST,
    OK,
    REPAIR,
    RETENTION,
    SHADOWED,
    UNLOCKED,
    proves_damage,
)
from sunset.preservation.reach import STORE_ERRORS, Reach, Unanswered, Unreached
from sunset.preservation.records import preserved, record_stored
from sunset.preservation.replicas import ReplicatedStore, Upload
from sunset.preservation.store import Digests, ObjectStore

DEFERRED = "deferred"  # a repair outcome: not attempted or not finished, for want of an answer


@dataclass(frozen=True)
class Repair:
    """What became of one damaged object: how it was repaired, or why it was not."""

    damage: Damage
    detail: str


@dataclass(frozen=True)
class RepairSummary:
    repaired: list[Repair] = field(default_factory=list)
    deferred: list[Repair] = field(default_factory=list)
    irreparable: list[Repair] = field(default_factory=list)
    unanswered: Unanswered = field(default_factory=Unanswered)  # so far in the run


@dataclass(frozen=True)
class RetentionSummary:
    extended: int
    retain_until: str
    not_extended: int = 0  # on a replica that did not answer
    unanswered: Unanswered = field(default_factory=Unanswered)  # in the whole run


def repair(
    ledger: Ledger,
    store: ReplicatedStore,
    audit_id: str,
    damaged: Sequence[Damage],
    reach: Reach,
    *,
    all_digests: bool = False,
) -> RepairSummary:
    """Repair each object of ``damaged`` (found by this run) from a copy proven good in
    this run; see the module docstring. The new version's deep check re-hashes SHA-512
    too with ``all_digests``, as the run's deep checks did."""
    repaired: list[Repair] = []
    deferred: list[Repair] = []
    irreparable: list[Repair] = []
    seen: set[tuple[str, str, str]] = set()
    for damage in damaged:
        if damage.key in seen:
            continue
        seen.add(damage.key)
        outcome, detail = _repair_one(ledger, store, audit_id, damage, reach, all_digests)
        if outcome == OK:
            repaired.append(Repair(damage, detail))
        elif outcome == DEFERRED:
            deferred.append(Repair(damage, detail))
        else:
            irreparable.append(Repair(damage, detail))
    return RepairSummary(repaired, deferred, irreparable, reach.unanswered)


def extend_retention(
    ledger: Ledger, store: ReplicatedStore, audit_id: str, *, margin: timedelta, reach: Reach
) -> RetentionSummary:
    """Move every lock that ends within ``margin`` out to the full retention from now, on
    every replica that answers."""
    threshold = utcnow() + margin
    until = store.retain_until()
    with ledger.session() as db:
        rows = db.exec(
            select(Snapshot, PreservedObject)
            .join(PreservedObject, col(PreservedObject.snapshot_id) == col(Snapshot.id))
            .where(PreservedObject.retain_until < threshold)
        ).all()
    extended = not_extended = 0
    for snapshot, held in rows:
        copy = store.copy(held.replica)
        if copy is None or held.version_id is None:
            reach.not_configured(held.replica)
            not_extended += 1
            continue
        done = reach.ask(
            held.replica, _extension(copy, snapshot.prefix + held.path, held.version_id, until)
        )
        if isinstance(done, Unreached):
            not_extended += 1
            continue
        detail = f"retain until {_when(held.retain_until)} -> {_when(until)}"
        record(ledger, [_event(held, RETENTION, OK, detail)], audit_id=audit_id)
        _move_lock(ledger, held, until)
        extended += 1
    return RetentionSummary(extended, until.isoformat(), not_extended, reach.unanswered)


def _repair_one(
    ledger: Ledger,
    store: ReplicatedStore,
    audit_id: str,
    damage: Damage,
    reach: Reach,
    all_digests: bool,
) -> tuple[str, str]:
    """Repair one object; returns ok, deferred or failed, and what happened."""
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

    def log(outcome: str, detail: str, bytes_read: int = 0) -> tuple[str, str]:
        record(ledger, [_event(held, REPAIR, outcome, detail, bytes_read)], audit_id=audit_id)
        return outcome, detail

    if target is None or not reach.reachable(damage.replica):
        return log(DEFERRED, f"replica {damage.replica} did not answer; nothing was written")
    if damage.outcome == UNLOCKED and held.version_id is not None:
        done = reach.ask(
            damage.replica, _extension(target, key, held.version_id, held.retain_until)
        )
        if isinstance(done, Unreached):
            return log(DEFERRED, f"the lock could not be set again: {done.error}")
        log(OK, f"lock set again until {_when(held.retain_until)}")
        return _recheck(
            ledger, store, audit_id, snapshot, damage, reach, "lock set again", all_digests
        )
    # The manifest is the truth for payload files; tag files are what was written.
    expected = preserved(entry) if entry else None
    expected = expected or preserved(held)
    proven = _proven_this_run(ledger, audit_id, damage)
    others = [c for c in copies if c.replica != damage.replica]
    sources = [c for c in others if proven.get(c.replica) == {OK}]
    # Copies neither proven good nor proven bad in this run: the reason to wait for one.
    in_doubt = {
        c.replica
        for c in others
        if c not in sources
        and not any(proves_damage(outcome) for outcome in proven.get(c.replica, ()))
    }
    if damage.outcome == SHADOWED:  # the version itself is there, hidden by a newer one
        sources.append(held)
    tried: list[str] = []
    for source_row in sources:
        source = store.copy(source_row.replica)
        version = source_row.version_id
        if source is None or version is None or not reach.reachable(source_row.replica):
            in_doubt.add(source_row.replica)
            continue
        try:
            upload = reach.retrying(_restoration(store, source, target, key, version, expected))
        except SourceChanged:
            tried.append(f"{source_row.replica}: its bytes differ from the manifest")
            continue
        except STORE_ERRORS as exc:
            tried.append(f"{source_row.replica}: {type(exc).__name__}: {exc}")
            in_doubt.add(source_row.replica)
            continue
        record_stored(ledger, store, snapshot.id, {damage.path: upload}, payload=entry is not None)
        new_version = upload.stored[target.name].version_id
        how = (
            f"{damage.outcome}: restored from {source_row.replica} version "
            f"{source_row.version_id} as version {new_version} (was {held.version_id})"
        )
        log(OK, how, upload.digests.size)
        return _recheck(ledger, store, audit_id, snapshot, damage, reach, how, all_digests)
    if in_doubt:
        tried_sources = f" ({'; '.join(tried)})" if tried else ""
        return log(
            DEFERRED,
            f"no copy proven good in this run to restore from{tried_sources}; not known "
            f"this run: {', '.join(sorted(in_doubt))}",
        )
    tried_sources = "; ".join(tried) or "every copy was found damaged in this run"
    return log(FAILED, f"no replica holds a copy that matches the manifest ({tried_sources})")


def _restoration(
    store: ReplicatedStore,
    source: ObjectStore,
    target: ObjectStore,
    key: str,
    version_id: str,
    expected: Digests,
) -> Callable[[], Upload]:
    """Streaming one version from ``source`` into a new locked version on ``target``,
    completed only if the bytes have the ``expected`` digests."""

    def restore() -> Upload:
        with contextlib.closing(source.open_object(key, version_id)) as body:
            return store.upload([target], key, body, expected=expected)

    return restore


def _extension(copy: ObjectStore, key: str, version_id: str, until: datetime) -> Callable[[], None]:
    """Moving one version's lock out to ``until``."""

    def extend() -> None:
        copy.extend_retention(key, version_id, until)

    return extend


def _recheck(
    ledger: Ledger,
    store: ReplicatedStore,
    audit_id: str,
    snapshot: Snapshot,
    damage: Damage,
    reach: Reach,
    how: str,
    all_digests: bool,
) -> tuple[str, str]:
    with ledger.session() as db:
        held = db.exec(
            select(PreservedObject).where(
                PreservedObject.snapshot_id == damage.snapshot_id,
                PreservedObject.replica == damage.replica,
                PreservedObject.path == damage.path,
            )
        ).one()
    fast = check_fast(ledger, store, audit_id, snapshot, [held], reach)
    deep = check_deep(ledger, store, audit_id, snapshot, held, reach, all_digests=all_digests)
    if isinstance(fast, Unreached) or isinstance(deep, Unreached):
        return DEFERRED, f"{how}; the new version could not be checked yet"
    if fast[0].ok and deep.ok:
        close_repaired(ledger, audit_id, damage.key, how)
        return OK, how
    return FAILED, f"{how}; but the new version fails its check: {deep.detail or fast[0].detail}"


def _proven_this_run(ledger: Ledger, audit_id: str, damage: Damage) -> dict[str, set[str]]:
    """The outcomes of this run's fast and deep checks of the object, by replica."""
    with ledger.session() as db:
        rows = db.exec(
            select(FixityEvent.replica, FixityEvent.outcome).where(
                FixityEvent.audit_id == audit_id,
                FixityEvent.snapshot_id == damage.snapshot_id,
                FixityEvent.path == damage.path,
                col(FixityEvent.method).in_([FAST, DEEP]),
            )
        ).all()
    found: dict[str, set[str]] = {}
    for replica, outcome in rows:
        found.setdefault(replica or "", set()).add(outcome)
    return found


def _event(
    held: PreservedObject, method: str, outcome: str, detail: str, bytes_read: int = 0
) -> Finding:
    return Finding(
        held.snapshot_id,
        held.replica,
        held.bucket,
        held.path,
        held.version_id,
        method,
        outcome,
        detail,
        bytes_read,
    )


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%dT%H:%M:%SZ}"


def _move_lock(ledger: Ledger, held: PreservedObject, until: datetime) -> None:
    with ledger.session() as db:
        row = db.get(PreservedObject, held.id)
        assert row is not None
        row.retain_until = until
        db.add(row)
