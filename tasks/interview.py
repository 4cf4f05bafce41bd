"""Step: interview the model before it is retired, every answer kept."""

from __future__ import annotations

from prefect import get_run_logger

from sunset.interview.runner import InterviewSummary
from sunset.interview.runner import run_interviews as interview
from sunset.runs import INTERVIEW_STEP, ValidatedRequest
from sunset.services import Services
from tasks.step import step


@step(INTERVIEW_STEP)
def run_interviews(
    services: Services, run_id: str, validated: ValidatedRequest
) -> InterviewSummary:
    """Ask every protocol question in each session; a resumed run asks only the rest."""
    summary = interview(
        services.ledger,
        services.messages,
        run_id=run_id,
        model_id=validated.model.id,
        protocol=validated.protocol,
        sessions=validated.request.sessions,
        max_tokens=services.settings.interview_max_tokens,
    )
    get_run_logger().info(
        "Interview: %d questions asked, %d answers already recorded, %d flagged",
        summary.turns_asked,
        summary.turns_replayed,
        summary.flagged_turns,
    )
    return summary
