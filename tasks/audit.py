"""Steps of the preservation audit: check, repair, keep the locks ahead, conclude.

Never cached: an audit looks at the store as it is now. Attempts are recorded against
the audit run, in ``audit_attempts``. Each step after the first begins with what the
steps before it got no answer to, so an outage is waited out once per run.
"""

from __future__ import annotations

from datetime import timedelta

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.events import emit_event
from prefect.runtime import flow_run

from sunset.preservation import alerts, audit, audit_checks, health, repair
from sunset.preservation.alerts import Notice, RunLink
from sunset.preservation.audit import AuditSummary
from sunset.preservation.audit_checks import CheckSummary
from sunset.preservation.outcomes import digests_rehashed
from sunset.preservation.repair import RepairSummary, RetentionSummary
from sunset.services import Services
from tasks.events import (
    ALL_CLEAR_EVENT,
    AUDIT_INCOMPLETE_EVENT,
    DEEP_AUDIT_BEHIND_EVENT,
    FIXITY_FAILED_EVENT,
    IRREPARABLE_EVENT,
    audit_resource,
    flow_run_page,
    related_audit,
    snapshot_resource,
)
from tasks.fanout import workers_for
from tasks.step import AUDIT_RUN, step

ARTIFACT_KEY = "preservation-audit"


# Not recorded: it makes the audit run that the other steps' attempts are recorded
# against. Never cached: every audit is a run of its own.
@step(audit.BEGIN_STEP, recorded_in=None, retries=0, cache=False)
def begin_audit(services: Services) -> str:
    """Record the start of the audit run, under the flow run's name, and return its id."""
    return audit.begin_audit(services.ledger, flow_run.get_id(), flow_run.get_name() or "audit")


@step(audit.FAST_STEP, recorded_in=AUDIT_RUN, retries=2, cache=False)
def fast_verify_replicas(services: Services, audit_id: str) -> CheckSummary:
    """List the versions of every preserved package on every replica: each preserved
    version present with its size and ETag, and still the current one."""
    summary = audit_checks.fast_audit(
        services.ledger, services.store, audit_id, audit.reach_for(services.settings)
    )
    get_run_logger().info(
        "Fast check: %d objects of %d packages, %d damaged, %d not reached",
        summary.objects_checked,
        summary.snapshots,
        len(summary.damaged),
        summary.unchecked,
    )
    return summary


@step(audit.DEEP_STEP, recorded_in=AUDIT_RUN, retries=2, cache=False)
def deep_verify_share(
    services: Services,
    audit_id: str,
    fast: CheckSummary,
    budget_bytes: int | None = None,
    period_days: int | None = None,
    all_digests: bool = False,
) -> CheckSummary:
    """Re-read and re-hash (SHA-256 and CRC64NVME, and SHA-512 too with ``all_digests``)
    the objects with open findings, then those checked longest ago, within the byte
    budget (in this process, or one Prefect task per object on Dask: SUNSET_TASK_RUNNER)."""
    settings = services.settings
    with workers_for(settings, services.store, services.weights) as workers:
        summary = audit_checks.deep_audit(
            services.ledger,
            services.store,
            audit_id,
            audit.reach_for(settings, fast.unanswered),
            budget_bytes=budget_bytes or settings.audit_deep_budget_bytes,
            period=timedelta(days=period_days or settings.audit_deep_period_days),
            workers=workers,
            all_digests=all_digests,
        )
    get_run_logger().info(
        "Deep check: %d objects, %d bytes read, %d damaged, %d not reached",
        summary.objects_checked,
        summary.bytes_read,
        len(summary.damaged),
        summary.unchecked,
    )
    return summary


@step(audit.REPAIR_STEP, recorded_in=AUDIT_RUN, retries=2, cache=False)
def repair_damage(
    services: Services, audit_id: str, fast: CheckSummary, deep: CheckSummary
) -> RepairSummary:
    """Restore every object this run proved damaged from a copy this run proved good, and
    tell the operators' automation about each package with damage, repaired or not."""
    damaged = [*fast.damaged, *deep.damaged]
    summary = repair.repair(
        services.ledger,
        services.store,
        audit_id,
        damaged,
        audit.reach_for(services.settings, deep.unanswered),
        all_digests=deep.all_digests,
    )
    run = _run_link(audit_id)
    for notice in alerts.fixity_notices(services.ledger, damaged, summary, run):
        _emit(FIXITY_FAILED_EVENT, notice, audit_id)
    logger = get_run_logger()
    for done in summary.repaired:
        logger.warning("Repaired %s: %s", done.damage.describe(), done.detail)
    for waiting in summary.deferred:
        logger.warning("Not repaired yet %s: %s", waiting.damage.describe(), waiting.detail)
    for lost in summary.irreparable:
        logger.error("No good copy to repair %s: %s", lost.damage.describe(), lost.detail)
    return summary


@step(audit.RETENTION_STEP, recorded_in=AUDIT_RUN, retries=2, cache=False)
def extend_retention(services: Services, audit_id: str, repairs: RepairSummary) -> RetentionSummary:
    """Extend every Object Lock that ends within the margin to the full retention."""
    summary = repair.extend_retention(
        services.ledger,
        services.store,
        audit_id,
        margin=timedelta(days=services.settings.retention_margin_days),
        reach=audit.reach_for(services.settings, repairs.unanswered),
    )
    get_run_logger().info(
        "Retention: %d locks extended to %s, %d not reached",
        summary.extended,
        summary.retain_until,
        summary.not_extended,
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
    period_days: int | None = None,
) -> AuditSummary:
    """Record how the audit ended and publish its table as an artifact. Emit one event if
    it could not complete, one per package healthy again, one per package with an object
    left without a good copy (and then fail), and one when deep checks fall behind."""
    ledger = services.ledger
    summary = audit.conclude(ledger, audit_id, fast, deep, repairs, retention)
    period = period_days or services.settings.audit_deep_period_days
    create_markdown_artifact(
        key=ARTIFACT_KEY,
        markdown=health.run_markdown(
            summary.name,
            summary.state,
            health.run_table(ledger, audit_id),
            health.coverage_clock(ledger, period),
            digests_rehashed(deep.all_digests),
        ),
        description=f"What audit {summary.name} checked, found, repaired and extended.",
    )
    logger = get_run_logger()
    run = _run_link(audit_id)
    if summary.overdue_objects:
        logger.warning(
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
    incomplete = alerts.could_not_audit_notice(summary, run)
    if incomplete is not None:
        logger.error("%s", summary.incomplete)
        _emit(AUDIT_INCOMPLETE_EVENT, incomplete, audit_id)
    for cleared in alerts.all_clear_notices(summary, run):
        logger.info("%s", cleared.payload["text"])
        _emit(ALL_CLEAR_EVENT, cleared, audit_id)
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


def _run_link(audit_id: str) -> RunLink:
    run_id = flow_run.get_id()
    return RunLink(
        audit_id, flow_run.get_name() or audit_id, flow_run_page(run_id) if run_id else None
    )


def _emit(event: str, notice: Notice, audit_id: str) -> None:
    """Emit ``event`` about the notice's package, or about the audit run itself."""
    if notice.snapshot_id is None:
        emit_event(event=event, resource=audit_resource(audit_id), payload=notice.payload)
        return
    emit_event(
        event=event,
        resource=snapshot_resource(notice.snapshot_id, notice.model_id),
        related=[related_audit(audit_id)],
        payload=notice.payload,
    )
