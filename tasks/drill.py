"""Step: the resurrection drill, in a deprecation run or on its own (flows/drill.py)."""

from __future__ import annotations

from prefect import get_run_logger

from sunset.preservation.drill import DrillSummary, drill_workdir, run_drill
from sunset.runs.steps import DRILL_STEP
from sunset.services import Services
from tasks.step import step


# Never cached and never retried: each drill is a fresh observation, recorded as it came out.
# Without a run_id (the drill on its own) it is a step of no run, and nothing is recorded.
@step(DRILL_STEP, retries=0, cache=False)
def drill_package(
    services: Services, model_id: str, snapshot_id: str | None = None, run_id: str | None = None
) -> DrillSummary:
    """Restore the package from the store (a replica) into a fresh directory, verify it
    against the manifest, load the model from the restored files only and replay its
    fingerprint. A mismatch fails the task, naming the prompt.

    Args:
        services: The clients; the last copy of ``services.store`` (a replica, when one is
            configured) is the one restored from.
        model_id: The model whose package is drilled.
        snapshot_id: The package; default: the model's latest fingerprinted one.
        run_id: The deprecation run this drill is a step of (its attempt is recorded there).
    """
    settings = services.settings
    summary = run_drill(
        services.ledger,
        services.store.copies[-1],
        model_id=model_id,
        snapshot_id=snapshot_id,
        run_id=run_id,
        organization=settings.organization,
        workdir=drill_workdir(settings),
    )
    get_run_logger().info(
        "Resurrection drill of %s passed: %d of %d prompts reproduced from %s",
        model_id,
        summary.prompts_matched,
        summary.prompts_checked,
        summary.package,
    )
    return summary
