"""Step: tell every user who depends on the model, once per channel."""

from __future__ import annotations

from prefect import get_run_logger

from sunset.notify.notices import NoticeSummary
from sunset.runs.notices import announce
from sunset.runs.request import ValidatedRequest
from sunset.runs.steps import NOTIFY_STEP
from sunset.services import Services
from tasks.step import step


@step(NOTIFY_STEP)
def notify_users(services: Services, run_id: str, validated: ValidatedRequest) -> NoticeSummary:
    """Send the notice (dates, successor, migration guide) by email and signed webhook."""
    summary = announce(
        services.ledger,
        services.notice_channels(),
        run_id=run_id,
        validated=validated,
        support_contact=services.settings.support_contact,
    )
    logger = get_run_logger()
    for channel, counts in summary.channels.items():
        logger.info(
            "Notices by %s: %d sent (%d of them before), %d failed, %d unconfirmed, "
            "%d recipients without an address",
            channel,
            counts.sent,
            counts.sent_before,
            counts.failed,
            counts.unconfirmed,
            counts.skipped,
        )
    for problem in summary.problems:
        logger.warning("Notice problem: %s", problem)
    return summary
