"""`sunset register` and `sunset status`: the catalog of models and the record of one."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

import typer

from sunset.cli.edge import collector_paused, parse_date, parse_moment, plain_errors
from sunset.cli.output import console, show_catalog, show_health_line, show_model, show_status_at
from sunset.cli.runs import Wide
from sunset.errors import InputError


def register(
    model: Annotated[str, typer.Argument(help="Catalog id of the model, e.g. acme-chat-2")],
    name: Annotated[str, typer.Option(help="Display name users know the model by.")],
    released: Annotated[
        date | None,
        typer.Option(parser=parse_date, metavar="YYYY-MM-DD", help="Release date, YYYY-MM-DD."),
    ] = None,
    replacement: Annotated[
        str | None, typer.Option(help="Catalog id of the recommended successor.")
    ] = None,
    weights_source: Annotated[
        str | None, typer.Option(help="Where the served weights live (directory or s3:// URL).")
    ] = None,
    model_class: Annotated[
        str | None,
        typer.Option(
            "--class",
            help="Model class, which sets its minimum notice period "
            "(SUNSET_MINIMUM_NOTICE_DAYS_BY_CLASS); default: the general minimum.",
        ),
    ] = None,
) -> None:
    """Add a model to the catalog so that it can be deprecated later."""
    from sunset.catalog import register_model
    from sunset.config import Settings
    from sunset.ledger import open_ledger

    with plain_errors():
        register_model(
            open_ledger(Settings().ledger_url),
            model,
            display_name=name,
            released_on=released,
            replacement_id=replacement,
            weights_source=weights_source,
            model_class=model_class,
        )
        console.print(f"Registered {model} ({name}) as active.")


def status(
    model: Annotated[
        str | None, typer.Argument(help="A model id; omit to list the catalog.")
    ] = None,
    at: Annotated[
        datetime | None,
        typer.Option(
            parser=parse_moment,
            metavar="MOMENT",
            help="Answer for a past moment instead: YYYY-MM-DD (the end of that day, UTC) or "
            "an ISO date and time such as 2026-03-01T12:00:00+00:00.",
        ),
    ] = None,
    wide: Wide = False,
) -> None:
    """Show the serving status of every model, the full record of one, or its past status.

    With --at, answers what the model's status was at that moment, from its recorded
    transitions (a flip that was rolled back never took effect and does not count).
    """
    # Only the ledger's tables and reads: no store, gateway or model client.
    with collector_paused():
        from sunset.catalog import find_model, list_models, model_record
        from sunset.config import Settings
        from sunset.ledger import open_ledger
        from sunset.preservation.health import model_package_health
        from sunset.serving.history import status_at

    with plain_errors():
        settings = Settings()
        ledger = open_ledger(settings.ledger_url)
        if at is not None:
            if model is None:
                raise InputError("--at needs a model: sunset status MODEL --at DATE.")
            found = status_at(ledger, model, at)
            if found is None and find_model(ledger, model) is None:
                raise InputError(f"Model {model!r} is not in the catalog.")
            show_status_at(model, at, found)
        elif model is None:
            show_catalog(list_models(ledger), wide=wide)
        else:
            show_model(model_record(ledger, model), wide=wide)
            show_health_line(model_package_health(ledger, model, settings.audit_deep_period_days))
