"""Steps: tell every user who depends on the model, once per channel and kind of notice."""

from __future__ import annotations

from prefect import get_run_logger

from sunset.ledger import ServingStatus
from sunset.notify.notices import NoticeSummary
from sunset.runs.notices import announce, announce_reinstatement, announce_retirement
from sunset.runs.steps import NOTIFY_STEP, REINSTATED_NOTICE_STEP, RETIRED_NOTICE_STEP
from sunset.runs.validation import ValidatedRequest
from sunset.services import Services
from tasks.step import step


@step(NOTIFY_STEP)
def notify_users(services: Services, run_id: str, validated: ValidatedRequest) -> NoticeSummary:
    """Announce the retirement (date, successor, migration guide) by email and signed
    webhook."""
    summary = announce(
        services.ledger,
        services.notice_channels(),
        services.settings,
        run_id=run_id,
        validated=validated,
    )
    log_summary("Announcements", summary)
    return summary


@step(RETIRED_NOTICE_STEP)
def notify_retired(
    services: Services, run_id: str, validated: ValidatedRequest, requested_by: str | None
) -> NoticeSummary:
    """Once the flip to retired held: tell everyone told before, and the run's recipients,
    that the model is retired, where its package and report are, and how to ask for it."""
    summary = announce_retirement(
        services.ledger,
        services.notice_channels(),
        services.settings,
        run_id=run_id,
        validated=validated,
        requested_by=requested_by,
    )
    log_summary("Retirement notices", summary)
    return summary


@step(REINSTATED_NOTICE_STEP)
def notify_reinstated(
    services: Services, run_id: str, target: ServingStatus, reason: str
) -> NoticeSummary:
    """Once the reinstatement's flip held: tell everyone told of the model's deprecation
    that it is served again, or available on request."""
    summary = announce_reinstatement(
        services.ledger,
        services.notice_channels(),
        services.settings,
        run_id=run_id,
        target=target,
        reason=reason,
    )
    log_summary("Reinstatement notices", summary)
    return summary


def log_summary(what: str, summary: NoticeSummary) -> None:
    """Log per channel how many notices went out, and every problem."""
    logger = get_run_logger()
    for channel, counts in summary.channels.items():
        logger.info(
            "%s by %s: %d sent (%d of them before), %d failed, %d unconfirmed, "
            "%d recipients without an address",
            what,
            channel,
            counts.sent,
            counts.sent_before,
            counts.failed,
            counts.unconfirmed,
            counts.skipped,
        )
    for problem in summary.problems:
        logger.warning("Notice problem: %s", problem)
