"""Steps of the preservation audit: check, repair, keep the locks ahead, conclude."""

from __future__ import annotations

from datetime import timedelta

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event
from prefect.runtime import flow_run

from sunset.preservation import audit
from sunset.preservation.audit import AuditSummary, CheckSummary, RepairSummary, RetentionSummary
from sunset.services import Services
from tasks.step import audit_step

# One event per snapshot whose fixity check failed; the ops alert automation listens for it.
FIXITY_FAILED_EVENT = "sunset.fixity.failed"


# Never cached: every audit is a run of its own.
@task(name=audit.BEGIN_STEP, cache_policy=NO_CACHE)
def begin_audit(services: Services) -> str:
    """Record the start of the audit run and return its id."""
    return audit.begin_audit(services.ledger, flow_run.get_id())


@audit_step(audit.FAST_STEP)
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


@audit_step(audit.DEEP_STEP)
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


@audit_step(audit.REPAIR_STEP)
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
            resource={
                "prefect.resource.id": f"sunset.snapshot.{snapshot_id}",
                "prefect.resource.name": snapshot_id,
            },
            related=[
                {
                    "prefect.resource.id": f"sunset.audit.{audit_id}",
                    "prefect.resource.role": "audit",
                }
            ],
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


@audit_step(audit.RETENTION_STEP)
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


@audit_step(audit.CONCLUDE_STEP, retries=0)
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
    audit_resource = {"prefect.resource.id": f"sunset.audit.{audit_id}"}
    if summary.overdue_objects:
        get_run_logger().warning(
            "Deep checks are behind: %d objects (%d bytes) not re-read within the period; "
            "raise SUNSET_AUDIT_DEEP_BUDGET_BYTES or run the audit more often",
            summary.overdue_objects,
            summary.overdue_bytes,
        )
        emit_event(
            event="sunset.preservation.deep-audit-behind",
            resource=audit_resource,
            payload={"objects": summary.overdue_objects, "bytes": summary.overdue_bytes},
        )
    for snapshot_id, objects in summary.irreparable_by_snapshot.items():
        emit_event(
            event="sunset.preservation.irreparable",
            resource={
                "prefect.resource.id": f"sunset.snapshot.{snapshot_id}",
                "prefect.resource.name": snapshot_id,
            },
            related=[audit_resource | {"prefect.resource.role": "audit"}],
            payload={"objects": objects},
        )
    if summary.irreparable:
        raise audit.irreparable_error(summary)
    return summary
