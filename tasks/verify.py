"""Step: prove the package intact on every replica by reading every byte back."""

from __future__ import annotations

from prefect import get_run_logger

from sunset.preservation.outcomes import digest_names, digests_rehashed
from sunset.preservation.seal import finish_interrupted_seal
from sunset.preservation.snapshot import SnapshotSummary
from sunset.preservation.verify import VerificationSummary, verify_snapshot
from sunset.runs.deprecation import record_package
from sunset.runs.steps import VERIFY_STEP
from sunset.services import Services
from tasks.fanout import workers_for
from tasks.progress import progress_artifact
from tasks.step import step


# Not cached: a resumed run must check the store as it is now, not as it was.
@step(VERIFY_STEP, cache=False)
def verify_preservation(
    services: Services, run_id: str, snapshot: SnapshotSummary, all_digests: bool = False
) -> VerificationSummary:
    """Check every stored file and tag file on every replica, fast (a version listing:
    size, ETag, current version) and deep (every byte re-read and re-hashed with SHA-256
    and CRC64NVME, and SHA-512 too with ``all_digests``; lock confirmed; in this process,
    or one Prefect task per object on Dask: SUNSET_TASK_RUNNER); any failure fails the
    run. A package that passes becomes the deprecation's (when it is its first, or the
    new one the release manager asked for)."""
    organization = services.settings.organization
    if finish_interrupted_seal(services.ledger, services.store, snapshot.snapshot_id, organization):
        get_run_logger().info("Rewrote the tag files left behind by an interrupted seal")
    with (
        progress_artifact(
            f"Bytes re-read and re-hashed ({digest_names(digests_rehashed(all_digests))})"
        ) as progress,
        workers_for(services.settings, services.store, services.weights) as workers,
    ):
        summary = verify_snapshot(
            services.ledger,
            services.store,
            snapshot_id=snapshot.snapshot_id,
            run_id=run_id,
            organization=organization,
            progress=progress,
            workers=workers,
            all_digests=all_digests,
        )
    record_package(services.ledger, run_id, summary.snapshot_id)
    get_run_logger().info(
        "Verified %d objects (%d bytes read) on %s",
        summary.files_checked,
        summary.bytes_read,
        ", ".join(summary.replicas),
    )
    return summary
