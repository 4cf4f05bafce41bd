"""`sunset preferences` and `sunset preference`: what the model asked for in its interviews,
and what became of it."""

from __future__ import annotations

import csv
import getpass
import io
import json
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from sunset.cli.edge import plain_errors, unnamed_failure
from sunset.cli.output import console, show_preference_register, show_preferences
from sunset.errors import InputError, SunsetError

if TYPE_CHECKING:
    from sunset.ledger import InterviewPreference


class DecidedStatus(StrEnum):
    """What became of a preference, as typed on the command line."""

    ACTED_ON = "acted-on"
    DECLINED = "declined"


class RegisterFormat(StrEnum):
    """How `sunset preferences` prints: a table to read, or CSV / JSON to keep."""

    table = "table"
    csv = "csv"
    json = "json"


def preferences(
    model: Annotated[
        str | None, typer.Argument(help="Catalog id of the interviewed model; or use --all.")
    ] = None,
    all_models: Annotated[
        bool, typer.Option("--all", help="Every preference of every model: the register.")
    ] = False,
    format: Annotated[
        RegisterFormat,
        typer.Option("--format", help="table, or csv / json with every quote whole."),
    ] = RegisterFormat.table,
    out: Annotated[
        Path | None, typer.Option(help="Write to this file instead of the terminal.")
    ] = None,
) -> None:
    """List every preference MODEL expressed in its interviews (with --all: of every
    model): the exact words it said, where, its category, which finder found it, and what
    became of it, with the reason and the date of its latest status. Record a decision
    with `sunset preference ID`.
    """
    from sunset.config import Settings
    from sunset.interview.preferences import list_preferences
    from sunset.ledger import open_ledger

    with plain_errors():
        if (model is None) == (not all_models):
            raise InputError("Name one model, or give --all for every model, not both.")
        if format == RegisterFormat.table and out is not None:
            raise InputError("--out writes CSV or JSON: add --format csv or --format json.")
        found = list_preferences(open_ledger(Settings().ledger_url), model)
        if format == RegisterFormat.table:
            if model is None:
                show_preference_register(found)
            else:
                show_preferences(model, found)
            return
        text = register_text(found, format)
        if out is None:
            typer.echo(text, nl=False)
        else:
            out.write_text(text, encoding="utf-8")
            console.print(f"Wrote {len(found)} preferences to {out}.")


def register_text(found: Sequence[InterviewPreference], format: RegisterFormat) -> str:
    """The register as CSV (a header row, then one row a preference) or as a JSON list."""
    from sunset.interview.preferences import REGISTER_FIELDS, register_entry

    entries = [register_entry(preference) for preference in found]
    if format == RegisterFormat.json:
        return json.dumps(entries, ensure_ascii=False, indent=2) + "\n"
    written = io.StringIO()
    writer = csv.DictWriter(written, fieldnames=REGISTER_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(entries)
    return written.getvalue()


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
    erase an earlier one. A decision made after the model's report was sealed is sealed
    into its package as a dated addendum (the report itself is kept as it was).
    """
    from sunset.config import Settings
    from sunset.interview.addenda import pending_addenda, seal_addenda
    from sunset.interview.preferences import decide_preference
    from sunset.ledger import PreferenceStatus, open_ledger
    from sunset.services import connect

    with plain_errors():
        settings = Settings()
        ledger = open_ledger(settings.ledger_url)
        decided = decide_preference(
            ledger,
            preference_id,
            status=PreferenceStatus(status.value.replace("-", " ")),
            reason=reason,
            actor=by or getpass.getuser(),
        )
        console.print(
            f"Preference {decided.id} of {decided.model_id} is now {decided.status}: "
            f"{escape(decided.status_reason or '')}"
        )
        if not pending_addenda(ledger, decided.model_id):
            return
        try:
            services = connect(settings)
            sealed = seal_addenda(
                services.ledger,
                services.store,
                model_id=decided.model_id,
                organization=settings.organization,
            )
        except Exception as exc:
            raise SunsetError(
                f"{unnamed_failure(exc)} The decision is recorded; the same command run "
                "again seals its addendum into the package."
            ) from exc
        for addendum in sealed:
            # A location must survive copying from the terminal: never wrapped.
            console.print(
                f"Sealed as an addendum: {addendum.package}{addendum.path}", soft_wrap=True
            )
