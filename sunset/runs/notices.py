"""Which notice a deprecation sends at each stage, to whom, and what it records.

The mechanics of sending (channels, one delivery per recipient and channel) are in
``sunset.notify``; here is what each stage of a deprecation tells its users.
"""

from __future__ import annotations

from collections.abc import Sequence

from sunset.ledger import Ledger
from sunset.notify.channels import Channel
from sunset.notify.message import Notice, NoticeKind
from sunset.notify.notices import NoticeSummary, notify_recipients
from sunset.runs.deprecation import deprecation_of_run
from sunset.runs.lifecycle import record_announcement
from sunset.runs.request import ValidatedRequest


def announce(
    ledger: Ledger,
    channels: Sequence[Channel],
    *,
    run_id: str,
    validated: ValidatedRequest,
    support_contact: str,
) -> NoticeSummary:
    """Send the run's announcement to its recipients, then record the announced dates."""
    deprecation = deprecation_of_run(ledger, run_id)
    notice = Notice(
        kind=NoticeKind.ANNOUNCEMENT,
        deprecation_id=deprecation.id,
        model=validated.model,
        replacement=validated.replacement,
        announced_on=validated.announced_on,
        retirement_on=validated.retirement_on,
        support_contact=support_contact,
    )
    summary = notify_recipients(
        ledger, channels, run_id=run_id, notice=notice, recipients=validated.recipients
    )
    record_announcement(ledger, notice)
    return summary
