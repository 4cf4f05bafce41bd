"""Steps of the preservation audit: check, repair, keep the locks ahead, conclude.

Never cached: an audit looks at the store as it is now. Attempts are recorded against
the audit run, in ``audit_attempts``.
"""

from __future__ import annotations

from datetime import timedelta

from prefect import get_run_logger
from prefect.events import emit_event
from prefect.runtime import flow_run

from sunset.preservation import audit
from sunset.preservation.audit import AuditSummary, CheckSummary, RepairSummary, RetentionSummary
from sunset.services import Services
from tasks.events import (
    DEEP_AUDIT_BEHIND_EVENT,
    FIXITY_FAILED_EVENT,
    IRREPARABLE_EVENT,
    audit_resource,
    related_audit,
    snapshot_resource,
)
from tasks.step import AUDIT_RUN, step


# Not recorded: it makes the audit run that the other steps' attempts are recorded
# against. Never cached: every audit is a run of its own.
@step(audit.BEGIN_STEP, recorded_in=None, retries=0, cache=False)
def begin_audit(services: Services) -> str:
    """Record the start of the audit run and return its id."""
    return audit.begin_audit(services.ledger, flow_run.get_id())


@step(audit.FAST_STEP, recorded_in=AUDIT_RUN, retries=2, cache=False)
def fast_verify_replicas(services: Services, audit_id: str) -> CheckSummary:
    """List the versions of every preserved package on every replica: each preserved
    version present with its size and ETag, and still the current one."""
    summary = audit.fast_audit(services.ledger, services.store, audit_id)
    get_run_logger().info(
        "Fast check: %d objects of %d packages, %d damaged",
        summary.objects_checked,
        summary.snapshots,
        len(summary.damaged),
    )
    return summary


@step(audit.DEEP_STEP, recorded_in=AUDIT_RUN, retries=2, cache=False)
def deep_verify_share(
    services: Services,
    audit_id: str,
    budget_bytes: int | None = None,
    period_days: int | None = None,
) -> CheckSummary:
    """Re-read and re-hash the objects checked longest ago, within the byte budget."""
    settings = services.settings
    summary = audit.deep_audit(
        services.ledger,
        services.store,
        audit_id,
        budget_bytes=budget_bytes or settings.audit_deep_budget_bytes,
        period=timedelta(days=period_days or settings.audit_deep_period_days),
    )
    get_run_logger().info(
        "Deep check: %d objects, %d bytes read, %d damaged",
        summary.objects_checked,
        summary.bytes_read,
        len(summary.damaged),
    )
    return summary


@step(audit.REPAIR_STEP, recorded_in=AUDIT_RUN, retries=2, cache=False)
def repair_damage(
    services: Services, audit_id: str, fast: CheckSummary, deep: CheckSummary
) -> RepairSummary:
    """Restore every damaged object from a replica whose copy matches the manifest, and
    tell the operators' automation about every failed fixity check, repaired or not."""
    damaged = [*fast.damaged, *deep.damaged]
    summary = audit.repair(services.ledger, services.store, audit_id, damaged)
    for snapshot_id in sorted({d.snapshot_id for d in damaged}):
        emit_event(
            event=FIXITY_FAILED_EVENT,
            resource=snapshot_resource(snapshot_id),
            related=[related_audit(audit_id)],
            payload={
                "failures": [d.describe() for d in damaged if d.snapshot_id == snapshot_id],
                "irreparable": [
                    d.describe() for d in summary.irreparable if d.snapshot_id == snapshot_id
                ],
            },
        )
    logger = get_run_logger()
    for repaired in summary.repaired:
        logger.warning("Repaired %s", repaired)
    for damage in summary.irreparable:
        logger.error("No good copy to repair %s", damage.describe())
    return summary


@step(audit.RETENTION_STEP, recorded_in=AUDIT_RUN, retries=2, cache=False)
def extend_retention(services: Services, audit_id: str) -> RetentionSummary:
    """Extend every Object Lock that ends within the margin to the full retention."""
    summary = audit.extend_retention(
        services.ledger,
        services.store,
        audit_id,
        margin=timedelta(days=services.settings.retention_margin_days),
    )
    get_run_logger().info(
        "Retention: %d locks extended to %s", summary.extended, summary.retain_until
    )
    return summary


@step(audit.CONCLUDE_STEP, recorded_in=AUDIT_RUN, retries=0, cache=False)
def conclude_audit(
    services: Services,
    audit_id: str,
    fast: CheckSummary,
    deep: CheckSummary,
    repairs: RepairSummary,
    retention: RetentionSummary,
) -> AuditSummary:
    """Record the audit's summary. Fail loudly, with a Prefect event per package, when an
    object has no good copy left; warn, with an event, when deep checks fall behind."""
    summary = audit.conclude(services.ledger, audit_id, fast, deep, repairs, retention)
    if summary.overdue_objects:
        get_run_logger().warning(
            "Deep checks are behind: %d objects (%d bytes) not re-read within the period; "
            "raise SUNSET_AUDIT_DEEP_BUDGET_BYTES or run the audit more often",
            summary.overdue_objects,
            summary.overdue_bytes,
        )
        emit_event(
            event=DEEP_AUDIT_BEHIND_EVENT,
            resource=audit_resource(audit_id),
            payload={"objects": summary.overdue_objects, "bytes": summary.overdue_bytes},
        )
    for snapshot_id, objects in summary.irreparable_by_snapshot.items():
        emit_event(
            event=IRREPARABLE_EVENT,
            resource=snapshot_resource(snapshot_id),
            related=[related_audit(audit_id)],
            payload={"objects": objects},
        )
    if summary.irreparable:
        raise audit.irreparable_error(summary)
    return summary
