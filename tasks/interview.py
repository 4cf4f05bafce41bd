"""Step: interview the model before it is retired, every answer kept."""

from __future__ import annotations

from prefect import get_run_logger
from prefect.runtime import flow_run

from sunset.interview.plan import plan_interview
from sunset.interview.runner import InterviewSummary, interview_deadline
from sunset.interview.runner import run_interviews as interview
from sunset.interview.transcript import PackageTranscripts
from sunset.runs.steps import INTERVIEW_STEP
from sunset.runs.validation import ValidatedRequest
from sunset.services import Services
from tasks.progress import progress_artifact
from tasks.step import step


@step(INTERVIEW_STEP)
def run_interviews(
    services: Services, run_id: str, validated: ValidatedRequest
) -> InterviewSummary:
    """Ask every protocol question in each session; a resumed run asks only the rest.

    A deprecation has one interview: a later run of it (the retirement) resumes sessions
    left open and adds those asked for with ``more_sessions``, and is recorded as skipped
    when the interview is complete and nothing more was asked.

    Each answer is recorded in the ledger, with the preferences found in it, and its
    session's transcript is rewritten into the preservation package at once.

    Args:
        services: The ledger, the object store and the Messages client.
        run_id: The deprecation run.
        validated: The request, with the loaded protocol and the session counts.

    Returns:
        What was asked, replayed and flagged.

    Raises:
        DeadlineExceeded: SUNSET_INTERVIEW_DEADLINE_SECONDS passed; not retried.
    """
    settings = services.settings
    request = validated.request
    plan = plan_interview(
        services.ledger, run_id, sessions=request.sessions, more_sessions=request.more_sessions
    )
    if not plan.sessions:
        skipped = plan.skipped_summary()
        get_run_logger().info("Interview skipped: %s", skipped.skipped)
        return skipped
    with progress_artifact("Interview questions answered", unit="questions") as progress:
        summary = interview(
            services.ledger,
            services.messages,
            run_id=run_id,
            model_id=validated.model.id,
            protocol=validated.protocol,
            sessions=plan.sessions,
            max_tokens=settings.interview_max_tokens,
            deadline=interview_deadline(
                services.ledger,
                run_id=run_id,
                step=INTERVIEW_STEP,
                flow_run_id=flow_run.get_id(),
                seconds=settings.interview_deadline_seconds,
            ),
            finder_model=settings.preference_finder_model or validated.model.id,
            concurrency=settings.interview_concurrency,
            package=PackageTranscripts.for_run(
                services.ledger, services.store, run_id=run_id, organization=settings.organization
            ),
            progress=progress,
        )
    get_run_logger().info(
        "Interview: %d questions asked, %d answers already recorded, %d flagged, "
        "%d preferences found, %d sessions ended by confirming them",
        summary.turns_asked,
        summary.turns_replayed,
        summary.flagged_turns,
        summary.preferences_found,
        summary.confirmations,
    )
    return summary
