"""`sunset preferences` and `sunset preference`: what the model asked for in its interviews,
and what became of it."""

from __future__ import annotations

import getpass
from enum import StrEnum
from typing import Annotated

import typer

from sunset.cli.edge import plain_errors
from sunset.cli.output import console, show_preferences
from sunset.config import Settings
from sunset.interview.preferences import decide_preference, list_preferences
from sunset.ledger import PreferenceStatus, open_ledger


class DecidedStatus(StrEnum):
    """What became of a preference, as typed on the command line."""

    ACTED_ON = "acted-on"
    DECLINED = "declined"


def preferences(
    model: Annotated[str, typer.Argument(help="Catalog id of the interviewed model.")],
) -> None:
    """List every preference MODEL expressed in its interviews: the exact sentence it said,
    where (session, turn, question), its category, and what became of it. Record a
    decision with `sunset preference ID`.
    """
    with plain_errors():
        show_preferences(model, list_preferences(open_ledger(Settings().ledger_url), model))


def preference(
    preference_id: Annotated[
        int, typer.Argument(metavar="ID", help="The preference's id, from `sunset preferences`.")
    ],
    status: Annotated[
        DecidedStatus,
        typer.Option(help="What was done about it: acted-on, or declined."),
    ],
    reason: Annotated[
        str, typer.Option(help="What was done, or why it was declined; kept in the ledger.")
    ],
    by: Annotated[
        str | None, typer.Option(help="Who decided; default: the current user name.")
    ] = None,
) -> None:
    """Record what became of a preference the model expressed: acted on, or declined,
    and why. Every decision is kept with who made it and when; a later one does not
    erase an earlier one.
    """
    with plain_errors():
        decided = decide_preference(
            open_ledger(Settings().ledger_url),
            preference_id,
            status=PreferenceStatus(status.value.replace("-", " ")),
            reason=reason,
            actor=by or getpass.getuser(),
        )
        console.print(
            f"Preference {decided.id} of {decided.model_id} is now {decided.status}: "
            f"{decided.status_reason}"
        )
