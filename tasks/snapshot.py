"""Step: preserve the weights in a BagIt package, each file read once."""

from __future__ import annotations

from prefect import get_run_logger

from sunset.preservation.records import snapshot_files
from sunset.preservation.reuse import reused_package
from sunset.preservation.snapshot import SnapshotSummary
from sunset.preservation.snapshot import snapshot_weights as preserve_weights
from sunset.runs.deprecation import package_to_reuse
from sunset.runs.lifecycle import load_run
from sunset.runs.steps import SNAPSHOT_STEP
from sunset.runs.validation import ValidatedRequest
from sunset.services import Services
from tasks.fanout import workers_for
from tasks.progress import progress_artifact
from tasks.step import step


@step(SNAPSHOT_STEP)
def snapshot_weights(
    services: Services, run_id: str, validated: ValidatedRequest
) -> SnapshotSummary:
    """Stream every weights file into the package on every replica, hashing it on the way
    (in this process, or one Prefect task per file on Dask: SUNSET_TASK_RUNNER);
    a later run of a deprecation reuses its package instead (preflight found the weights
    byte for byte the same) and sends nothing."""
    reused = package_to_reuse(services.ledger, run_id)
    if reused is not None:
        get_run_logger().info(
            "Reusing package %s of this deprecation (made by run %s): the weights are the "
            "same bytes, nothing sent",
            reused.id,
            reused.run_id,
        )
        return reused_package(
            services.store, reused, snapshot_files(services.ledger, reused.id), validated.sources
        )
    with (
        progress_artifact("Bytes of weights preserved") as progress,
        workers_for(services.settings, services.store, services.weights) as workers,
    ):
        summary = preserve_weights(
            services.ledger,
            services.store,
            run=load_run(services.ledger, run_id),
            model=validated.model,
            sources=validated.sources,
            weights=services.weights,
            organization=services.settings.organization,
            progress=progress,
            workers=workers,
        )
    get_run_logger().info(
        "Preserved %d files (%d bytes) at %s and its replicas %s; %d sent, %d already stored",
        summary.files,
        summary.payload_bytes,
        summary.location,
        ", ".join(summary.replicas[1:]) or "(none)",
        summary.uploaded_files,
        summary.skipped_files,
    )
    if summary.adopted_files:
        get_run_logger().info(
            "Adopted %d files a killed run had stored but not recorded: same bytes, not sent again",
            summary.adopted_files,
        )
    for leftover in summary.leftovers:
        get_run_logger().warning("Locked leftover, not part of the package: %s", leftover)
    return summary
