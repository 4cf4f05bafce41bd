"""`sunset deliveries decide`: what becomes of notices nobody can know arrived."""

from __future__ import annotations

import getpass
from typing import Annotated

import typer

from sunset.cli.edge import plain_errors
from sunset.cli.output import console, escape
from sunset.errors import InputError

deliveries_app = typer.Typer(
    help="The notices whose hand-over was cut short, so that nobody knows they arrived.",
    no_args_is_help=True,
)


@deliveries_app.command("decide")
def decide(
    model: Annotated[str, typer.Argument(help="The model whose notices are of unknown fate.")],
    reason: Annotated[str, typer.Option(help="Why you decide so; it is recorded.")],
    resend: Annotated[
        bool,
        typer.Option("--resend", help="Send each of them once more (the recipient may get two)."),
    ] = False,
    count_as_delivered: Annotated[
        bool,
        typer.Option(
            "--count-as-delivered",
            help="Treat each of them as arrived (say in --reason how you know); nothing is sent.",
        ),
    ] = False,
    recipient: Annotated[
        str | None, typer.Option(help="Only this recipient's notices (an email address).")
    ] = None,
    decided_as: Annotated[
        str | None,
        typer.Option("--as", help="Your name as recorded; default: your login."),
    ] = None,
) -> None:
    """Decide about the notices of MODEL's latest deprecation that nobody knows arrived
    (an email whose hand-over to the relay was cut short), as a run's outcome names them:
    send each once more, or count it as delivered. The decision is recorded (who, when,
    why, what, and what a resend did); a retirement of MODEL waits until every such
    notice is decided. Running it again decides only what is still unknown.
    """
    from sunset.config import Settings
    from sunset.ledger import DeliveryDecisionKind, DeliveryState, open_existing_ledger
    from sunset.runs.delivery_decisions import decide as record_decisions

    if resend == count_as_delivered:
        raise typer.BadParameter("say either --resend or --count-as-delivered, one of them.")
    with plain_errors():
        settings = Settings()
        login = getpass.getuser()
        decided_by = login if decided_as in (None, login) else f"{decided_as} (login {login})"
        if resend:
            from sunset.services import connect

            services = connect(settings)
            ledger, channels = services.ledger, services.notice_channels()
            decision = DeliveryDecisionKind.RESEND
        else:
            ledger, channels = open_existing_ledger(settings.ledger_url), []
            decision = DeliveryDecisionKind.COUNT_AS_DELIVERED
        made = record_decisions(
            ledger,
            channels,
            settings,
            model_id=model,
            decision=decision,
            reason=reason,
            decided_by=decided_by,
            recipient=recipient,
        )
        if not made:
            console.print(f"No notice of {model} is of unknown fate: nothing to decide.")
            return
        unsettled = 0
        for done in made:  # one line each, whole, for logs and grep
            if done.outcome is None and done.problem is None:
                what = "counted as delivered"
            elif done.outcome == DeliveryState.SENT:
                what = "sent again"
            else:
                unsettled += 1
                what = f"not settled ({done.outcome or 'not sent'}: {done.problem})"
            console.print(f"{escape(done.delivery.describe())}: {escape(what)}", soft_wrap=True)
        if unsettled:
            raise InputError(
                f"{unsettled} notice(s) of {model} are still of unknown fate or not "
                "delivered; run this command again to decide about them."
            )
        console.print(f"Decided by {escape(decided_by)}; a retirement of {model} can go on.")
