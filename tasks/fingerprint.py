"""Step: fingerprint the model from the weights being preserved, and seal it in the package."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger

from sunset.preservation.fingerprint import FingerprintSummary
from sunset.preservation.fingerprint import record_fingerprint as fingerprint_model
from sunset.preservation.snapshot import SnapshotSummary
from sunset.runs.steps import FINGERPRINT_STEP
from sunset.runs.validation import ValidatedRequest
from sunset.services import Services
from tasks.step import step


@step(FINGERPRINT_STEP)
def record_fingerprint(
    services: Services, run_id: str, validated: ValidatedRequest, snapshot: SnapshotSummary
) -> FingerprintSummary:
    """Load the model from its weights directory, record its greedy outputs for the fixed
    prompts, and seal them in the package for later resurrection drills."""
    summary = fingerprint_model(
        services.ledger,
        services.store,
        run_id=run_id,
        snapshot_id=snapshot.snapshot_id,
        weights=Path(validated.request.weights),
        organization=services.settings.organization,
    )
    get_run_logger().info(
        "Fingerprint of %d prompts sealed at %s (model loaded in %.1f s)",
        summary.prompts,
        summary.path,
        summary.load_seconds,
    )
    return summary
