"""Step: tell every user who depends on the model, once."""

from __future__ import annotations

from datetime import date

from prefect import get_run_logger

from sunset.notify.notices import NoticeSummary, notify_recipients
from sunset.runs import NOTIFY_STEP, ValidatedRequest, record_announcement
from sunset.services import Services
from tasks.step import step


@step(NOTIFY_STEP)
def notify_users(services: Services, run_id: str, validated: ValidatedRequest) -> NoticeSummary:
    """Email the deprecation notice, with dates and migration guidance, to each recipient."""
    settings = services.settings
    today = date.today()
    summary = notify_recipients(
        services.ledger,
        services.mailer,
        run_id=run_id,
        model=validated.model,
        replacement=validated.replacement,
        recipients=validated.recipients,
        announced_on=validated.model.deprecation_announced_on or today,
        retirement_on=validated.retirement_on,
        mail_from=settings.mail_from,
        support_contact=settings.support_contact,
    )
    record_announcement(services.ledger, validated.model.id, validated.retirement_on, today)
    get_run_logger().info(
        "Notices: %d sent, %d already sent before, %d failed",
        summary.sent,
        summary.skipped,
        summary.failed,
    )
    return summary
