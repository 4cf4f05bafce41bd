"""Step: flip the serving status, only through a guarded transition."""

from __future__ import annotations

from prefect import get_run_logger

from sunset.runs import FLIP_STEP, ValidatedRequest, target_status
from sunset.services import Services
from sunset.serving import flip_status
from tasks.step import step


@step(FLIP_STEP, cache=False)
def flip_serving_status(services: Services, run_id: str, validated: ValidatedRequest) -> str:
    """Move the model to deprecated (or retired, when asked) if every guard holds."""
    transition = flip_status(
        services.ledger,
        run_id=run_id,
        target=target_status(validated.request),
        actor="sunset deprecate_model",
        reason=validated.request.notice_override_reason
        or f"deprecation run {run_id}, retirement on {validated.retirement_on}",
    )
    get_run_logger().info(
        "%s: %s -> %s", transition.model_id, transition.from_status, transition.to_status
    )
    return str(transition.to_status)
