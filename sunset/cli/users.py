"""`sunset users`: the users of each model, kept in the ledger."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sunset.cli.edge import plain_errors
from sunset.cli.output import console, show_users

users_app = typer.Typer(
    help="The users of each model, kept in the ledger for --recipients-from-ledger.",
    no_args_is_help=True,
)


@users_app.command("import")
def users_import(
    model: Annotated[str, typer.Argument(help="Catalog id of the model they use.")],
    csv_file: Annotated[
        Path, typer.Argument(help="CSV with the columns email,name[,webhook_url,usage].")
    ],
    replace: Annotated[
        bool,
        typer.Option("--replace", help="Also remove the model's users who are not in the file."),
    ] = False,
) -> None:
    """Import MODEL's users from a CSV into the ledger.

    The whole file is checked first: if any row is invalid, the rows are listed by line
    number and nothing is imported. Known users (same email) are updated.
    """
    from sunset.config import Settings
    from sunset.ledger import open_ledger
    from sunset.notify.recipients import load_recipients
    from sunset.notify.users import import_users
    from sunset.runs.request import check_model_id

    with plain_errors():
        check_model_id(model)
        recipients = load_recipients(csv_file)
        done = import_users(open_ledger(Settings().ledger_url), model, recipients, replace=replace)
        console.print(
            f"Users of {model}: {done.added} added, {done.updated} updated, "
            f"{done.removed} removed ({len(recipients)} in the file)."
        )


@users_app.command("list")
def users_list(
    model: Annotated[str, typer.Argument(help="Catalog id of the model.")],
) -> None:
    """List MODEL's users recorded in the ledger."""
    from sunset.config import Settings
    from sunset.ledger import open_ledger
    from sunset.notify.users import load_users

    with plain_errors():
        show_users(model, load_users(open_ledger(Settings().ledger_url), model))
