"""The preservation audit: every preserved package checked on every replica, damage
repaired from a good copy, the locks kept far ahead, and a verdict that says what is
known.

One audit run does, in order:

1. fast checks of every object on every replica (``audit_checks``);
2. deep checks of a rolling share: objects with an open finding first, then those
   checked longest ago, as many as the byte budget allows (``audit_checks``);
3. repair of what this run proved damaged or missing, from a copy this run proved good
   (``repair``);
4. the retention heartbeat: every lock that ends within the margin is moved out to the
   full retention period (``repair``);
5. the conclusion (here): findings proven healthy again are closed (``findings``), and
   the run is recorded as completed, incomplete (a replica did not answer, so what it
   holds is not known: nothing about it is called damage, nothing is repaired from or
   to it) or failed (an object has no good copy left).

A replica that does not answer is asked again with growing waits, then set aside for the
rest of the run (``reach``). Nothing here raises for what it finds; the flow decides,
from the conclusion, how the run ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlmodel import col, func, select

from sunset.config import Settings
from sunset.errors import PreservationError
from sunset.ledger import AuditFinding, AuditRun, AuditState, FindingKind, Ledger, utcnow
from sunset.preservation.audit_checks import CheckSummary
from sunset.preservation.findings import AllClear, close_healthy
from sunset.preservation.reach import Reach, Unanswered
from sunset.preservation.repair import RepairSummary, RetentionSummary
from sunset.runs.attempts import summarize

BEGIN_STEP = "begin_audit"
FAST_STEP = "fast_verify"
DEEP_STEP = "deep_verify"
REPAIR_STEP = "repair_damage"
RETENTION_STEP = "extend_retention"
CONCLUDE_STEP = "conclude_audit"


@dataclass(frozen=True)
class AuditSummary:
    audit_id: str
    name: str
    state: AuditState
    snapshots: int
    fast_checked: int
    deep_checked: int
    deep_bytes: int
    damaged: int
    repaired: int
    irreparable: list[str]
    deferred: list[str]
    retention_extended: int
    overdue_objects: int
    overdue_bytes: int
    # Replicas that did not answer, with the error, and the checks that could not be made.
    unreachable: dict[str, str] = field(default_factory=dict)
    unchecked: int = 0
    locks_not_extended: int = 0
    all_clear: list[AllClear] = field(default_factory=list)
    irreparable_by_snapshot: dict[str, list[str]] = field(default_factory=dict)

    @property
    def error(self) -> str | None:
        """The sentence a run that did not complete ends with, or None."""
        if self.state == AuditState.FAILED:
            return (
                f"Audit {self.name} found {len(self.irreparable)} object(s) with no good copy "
                f"left to restore from: {'; '.join(self.irreparable[:10])}. Restore them from "
                "an offline copy or backup and record how; the ledger holds every check of "
                "this run."
            )
        return self.incomplete

    @property
    def incomplete(self) -> str | None:
        """What the run could not do, in a sentence, or None if it did everything."""
        reasons = [
            f"could not audit replica {name!r} ({error})"
            for name, error in sorted(self.unreachable.items())
        ]
        if self.deferred:
            reasons.append(
                f"{len(self.deferred)} damaged object(s) wait for a copy proven good to restore "
                "from"
            )
        if not reasons:
            return None
        locks = (
            f", {self.locks_not_extended} lock(s) not extended" if self.locks_not_extended else ""
        )
        return (
            f"Audit {self.name} could not complete: {'; '.join(reasons)}. {self.unchecked} "
            f"object check(s) could not be made{locks}; no damage was recorded for them and "
            "nothing was repaired from or to a replica that did not answer. The next audit "
            "checks them again."
        )


def reach_for(settings: Settings, earlier: Unanswered | None = None) -> Reach:
    """How this deployment asks its replicas: SUNSET_AUDIT_STORE_RETRIES tries more, the
    first after SUNSET_AUDIT_STORE_RETRY_SECONDS, each next wait twice the last."""
    return Reach.doubling(settings.audit_store_retries, settings.audit_store_retry_seconds, earlier)


def begin_audit(ledger: Ledger, flow_run_id: str | None, name: str) -> str:
    """Record the start of an audit run; its id ties every event of the run together."""
    with ledger.session() as db:
        run = AuditRun(flow_run_id=flow_run_id, name=name)
        db.add(run)
        return run.id


def finish_audit(ledger: Ledger, flow_run_id: str, *, error: str | None) -> None:
    """Close the audit run of a Prefect flow run that ended before its conclusion was
    recorded (a step failed or the process crashed); a concluded run stays as it is."""
    with ledger.session() as db:
        run = db.exec(select(AuditRun).where(AuditRun.flow_run_id == flow_run_id)).first()
        if run is not None and run.state == AuditState.RUNNING:
            run.state = AuditState.FAILED if error else AuditState.COMPLETED
            run.error, run.finished_at = error, utcnow()
            db.add(run)


def conclude(
    ledger: Ledger,
    audit_id: str,
    fast: CheckSummary,
    deep: CheckSummary,
    repairs: RepairSummary,
    retention: RetentionSummary,
) -> AuditSummary:
    """Close the findings this run proved healthy and record how the run ended."""
    all_clear = close_healthy(ledger, audit_id)
    with ledger.session() as db:
        run = db.get(AuditRun, audit_id)
        assert run is not None
        unchecked = db.exec(
            select(func.count())
            .select_from(AuditFinding)
            .where(
                AuditFinding.last_audit_id == audit_id,
                AuditFinding.kind == FindingKind.UNREACHABLE,
                col(AuditFinding.closed_at).is_(None),
            )
        ).one()
    lost = [r.damage.describe() + f": {r.detail}" for r in repairs.irreparable]
    unreachable = retention.unanswered.errors  # each step began with what came before
    if lost:
        state = AuditState.FAILED
    elif unreachable or repairs.deferred:
        state = AuditState.INCOMPLETE
    else:
        state = AuditState.COMPLETED
    by_snapshot: dict[str, list[str]] = {}
    for r in repairs.irreparable:
        by_snapshot.setdefault(r.damage.snapshot_id, []).append(r.damage.describe())
    summary = AuditSummary(
        audit_id=audit_id,
        name=run.name or audit_id,
        state=state,
        snapshots=fast.snapshots,
        fast_checked=fast.objects_checked,
        deep_checked=deep.objects_checked,
        deep_bytes=deep.bytes_read,
        damaged=len({d.key for d in fast.damaged + deep.damaged}),
        repaired=len(repairs.repaired),
        irreparable=lost,
        deferred=[r.damage.describe() + f": {r.detail}" for r in repairs.deferred],
        retention_extended=retention.extended,
        overdue_objects=deep.overdue_objects,
        overdue_bytes=deep.overdue_bytes,
        unreachable=dict(unreachable),
        unchecked=unchecked,
        locks_not_extended=retention.not_extended,
        all_clear=all_clear,
        irreparable_by_snapshot=by_snapshot,
    )
    with ledger.session() as db:
        run = db.get(AuditRun, audit_id)
        assert run is not None
        run.summary = summarize(summary)
        run.state, run.error, run.finished_at = state, summary.error, utcnow()
        db.add(run)
    return summary


def irreparable_error(summary: AuditSummary) -> PreservationError:
    """The error a failed audit ends with."""
    return PreservationError(summary.error)
