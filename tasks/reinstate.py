"""Steps of a reinstatement: plan, re-verify the package, restore it, check the copy."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from prefect import get_run_logger
from prefect.runtime import flow_run

from sunset.preservation.restore import (
    Destination,
    ReinstatementPlan,
    ReinstatementRequest,
    RestoreSummary,
    open_destination,
    plan_reinstatement,
    restore_snapshot,
    verify_restoration,
)
from sunset.preservation.store import ObjectStore
from sunset.preservation.verify import VerificationSummary, verify_snapshot
from sunset.runs.lifecycle import begin_run
from sunset.runs.notices import check_templates, reinstatement_kind
from sunset.runs.steps import PREFLIGHT_STEP, RESTORE_CHECK_STEP, RESTORE_STEP, VERIFY_STEP
from sunset.services import Services
from sunset.serving.lifecycle import REINSTATEMENT
from tasks.step import step


@dataclass(frozen=True)
class ReinstatementStart:
    run_id: str
    plan: ReinstatementPlan
    summary: dict[str, Any]  # what the ledger records of this attempt


# Never cached nor retried: it decides, each time, whether the run may start or resume.
@step(PREFLIGHT_STEP, opens_run=True, retries=0, cache=False)
def plan(
    services: Services, request: ReinstatementRequest, requested_by: str | None
) -> ReinstatementStart:
    """Check the request whole, then start or resume the model's reinstatement run."""
    checked = plan_reinstatement(services.ledger, request, destination(services, request))
    kind = reinstatement_kind(checked.target)
    check_templates(services.ledger, services.settings, request.model_id, [kind], date.today())
    run = begin_run(
        services.ledger,
        model_id=request.model_id,
        kind=REINSTATEMENT,
        parameters=request.parameters(),
        target=checked.target,
        flow_run_id=flow_run.get_id(),
        lease_seconds=services.settings.run_lease_seconds,
        details={"requested_by": requested_by},
    )
    return ReinstatementStart(
        run.id,
        checked,
        summary={
            "model": request.model_id,
            "snapshot": checked.snapshot.id,
            "destination": request.destination,
            "target": checked.target.value,
        },
    )


# Not cached: a resumed run must check the store as it is now.
@step(VERIFY_STEP, cache=False)
def reverify_package(
    services: Services, run_id: str, checked: ReinstatementPlan
) -> VerificationSummary:
    """Re-read and re-hash every file of the preserved package, on every replica, before
    restoring from it."""
    summary = verify_snapshot(
        services.ledger,
        services.store,
        snapshot_id=checked.snapshot.id,
        run_id=run_id,
        organization=services.settings.organization,
    )
    get_run_logger().info(
        "Package %s verified: %d files, %d bytes read",
        checked.snapshot.id,
        summary.files_checked,
        summary.bytes_read,
    )
    return summary


@step(RESTORE_STEP, cache=False)
def restore_weights(services: Services, run_id: str, checked: ReinstatementPlan) -> RestoreSummary:
    """Copy the snapshot's weights to the serving location, each file checked on the way."""
    summary = restore_snapshot(
        services.ledger,
        package_store(services, checked),
        destination(services, checked.request),
        run_id=run_id,
        snapshot_id=checked.snapshot.id,
    )
    get_run_logger().info(
        "Restored %d files (%d bytes) to %s",
        summary.files,
        summary.bytes_written,
        summary.destination,
    )
    return summary


@step(RESTORE_CHECK_STEP, cache=False)
def check_restored(services: Services, run_id: str, checked: ReinstatementPlan) -> RestoreSummary:
    """Read every restored file back and compare it with the manifest."""
    summary = verify_restoration(
        services.ledger,
        destination(services, checked.request),
        run_id=run_id,
        snapshot_id=checked.snapshot.id,
    )
    get_run_logger().info("All %d restored files match the manifest", summary.files)
    return summary


def package_store(services: Services, checked: ReinstatementPlan) -> ObjectStore:
    """The bucket that holds the snapshot (it may predate the current bucket setting)."""
    held = [c for c in services.store.copies if c.bucket == checked.snapshot.bucket]
    return held[0] if held else ObjectStore(services.store.primary.client, checked.snapshot.bucket)


def destination(services: Services, request: ReinstatementRequest) -> Destination:
    return open_destination(
        request.destination, services.store.primary, services.settings.data_dir / "restore-spool"
    )
