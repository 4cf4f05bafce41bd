"""`sunset reschedule`, `sunset cancel` and `sunset remind`: what a deprecation tells its
users between its runs, each a Prefect flow run started here."""

from __future__ import annotations

import getpass
from datetime import date
from typing import TYPE_CHECKING, Annotated

import typer

from sunset.cli.edge import parse_date, plain_errors
from sunset.cli.output import console, facts_table

if TYPE_CHECKING:
    from sunset.notify.notices import NoticeSummary


def reschedule(
    model: Annotated[str, typer.Argument(help="The model whose retirement was announced.")],
    retirement_date: Annotated[
        date,
        typer.Option(parser=parse_date, metavar="YYYY-MM-DD", help="The new retirement date."),
    ],
    reason: Annotated[str, typer.Option(help="Why the date moves; recorded and told to users.")],
    notice_override: Annotated[
        str | None,
        typer.Option(
            help="Why less than the minimum notice, counted from the first announcement, is "
            "acceptable (recorded and told to users)."
        ),
    ] = None,
) -> None:
    """Move the announced retirement date of MODEL, and tell everyone who was told the
    date before: the new date, the old one and the reason, once each.

    Run it again if it stopped before every notice went out: the change is recorded once
    and nobody is told twice.
    """
    from sunset.cli.local_runs import prepare_prefect, settings_for_flow_run
    from sunset.config import Settings
    from sunset.ledger import open_ledger
    from sunset.runs.reschedule import check_reschedule

    with plain_errors():
        settings = Settings()
        check_reschedule(
            open_ledger(settings.ledger_url),
            settings,
            model,
            retirement_date,
            reason=reason,
            notice_override_reason=notice_override,
            today=date.today(),
        )
        prepare_prefect(settings)
        from flows.notices import reschedule_retirement

        console.print(f"Rescheduling the retirement of {model}: the Prefect flow is starting ...")
        with settings_for_flow_run(settings):
            outcome = reschedule_retirement(
                model, retirement_date, reason, notice_override, requested_by=getpass.getuser()
            )
        table = facts_table(f"Retirement of {model} rescheduled")
        table.add_row("Retirement date", f"[bold]{outcome.retirement_on}[/]")
        table.add_row("Before", str(outcome.previous_on))
        table.add_row("Reason", outcome.reason)
        table.add_row("Notices", _sent(outcome.notices))
        console.print(table)


def cancel(
    model: Annotated[str, typer.Argument(help="The model whose deprecation to call off.")],
    reason: Annotated[str, typer.Option(help="Why it is called off; recorded and told to users.")],
) -> None:
    """Call off the deprecation of MODEL before it is retired: it serves as before (its
    status and gateway route back to active), and everyone who was told of the
    deprecation is told it is cancelled, once each. A retired model is reinstated instead.
    """
    from sunset.cli.local_runs import prepare_prefect, settings_for_flow_run
    from sunset.config import Settings
    from sunset.ledger import open_ledger
    from sunset.runs.cancel import cancellable

    with plain_errors():
        settings = Settings()
        cancellable(open_ledger(settings.ledger_url), model, reason)
        prepare_prefect(settings)
        from flows.notices import cancel_deprecation

        console.print(f"Cancelling the deprecation of {model}: the Prefect flow is starting ...")
        with settings_for_flow_run(settings):
            outcome = cancel_deprecation(model, reason, requested_by=getpass.getuser())
        table = facts_table(f"Deprecation of {model} cancelled")
        table.add_row("Serving status", f"[bold]{outcome.status}[/]")
        table.add_row("Notices", _sent(outcome.notices))
        table.add_row("Run", outcome.run_id)
        console.print(table)


def remind(
    on: Annotated[
        date | None,
        typer.Option(
            "--date",
            parser=parse_date,
            metavar="YYYY-MM-DD",
            help="The day to send the reminders of; default: today.",
        ),
    ] = None,
) -> None:
    """Send each announced deprecation's reminder due today (SUNSET_REMINDER_DAYS before
    its retirement date), as the daily deployment send-reminders/daily does. Running it
    again sends nothing twice.
    """
    from sunset.cli.local_runs import prepare_prefect, settings_for_flow_run
    from sunset.config import Settings

    with plain_errors():
        settings = Settings()
        prepare_prefect(settings)
        from flows.notices import send_reminders

        day = on or date.today()
        console.print(f"Reminders of {day}: the Prefect flow is starting ...")
        with settings_for_flow_run(settings):
            reminders = send_reminders(day)
        if not reminders:
            console.print(f"No reminder was due on {day}.")
            return
        for reminder in reminders:  # one line each, whole, for logs and grep
            console.print(
                f"{reminder.model_id}: the {reminder.reminder_days}-day reminder "
                f"({reminder.days_left} days left until {reminder.retirement_on}): "
                f"{_sent(reminder.summary)}",
                soft_wrap=True,
            )


def _sent(summary: NoticeSummary) -> str:
    """Per channel: how many were sent now, how many earlier, and what went wrong."""
    if not summary.recipients:
        return "nobody to tell"
    parts: list[str] = []
    for channel, counts in summary.channels.items():
        now = counts.sent - counts.sent_before
        part = f"{channel}: {now} sent" + (
            f", {counts.sent_before} earlier" if counts.sent_before else ""
        )
        if counts.failed or counts.unconfirmed:
            part += f", {counts.failed} failed, {counts.unconfirmed} unconfirmed"
        parts.append(part)
    return "; ".join(parts)
