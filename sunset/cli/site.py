"""`sunset site`: the public deprecations page, written from the ledger."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sunset.cli.edge import plain_errors
from sunset.cli.output import console


def site(
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            metavar="DIR",
            help="Directory to publish from; created if missing. Sunset replaces its "
            "index.html, deprecations.json and models/ and leaves other files alone.",
        ),
    ],
) -> None:
    """Write the public deprecations page: every deprecated or retired model, its dates and
    successor, with a transition page each.

    Writes, into DIR: index.html, a table of every model whose deprecation was announced
    (deprecated, retired, available on request or reinstated), the soonest upcoming
    retirement first; deprecations.json, the same list for programs; and
    models/MODEL.html, each model's dates, migration guide and advice for users who valued
    it. The pages are static and self-contained: copy DIR to any web server. Run it again
    after each deprecation; the new pages replace the old ones whole.

    The migration guide and the advice come from templates that
    SUNSET_NOTICE_TEMPLATES_DIR can override (migration_guide.html.j2,
    adapting_to_successor.html.j2). With SUNSET_PUBLIC_URL set to where DIR is published,
    the feed gives each page's full address.
    """
    from sunset.config import Settings
    from sunset.ledger import open_ledger
    from sunset.site.entries import TRANSITION_PAGES
    from sunset.site.render import FEED, INDEX, publish_site

    with plain_errors():
        settings = Settings()
        published = publish_site(open_ledger(settings.ledger_url), settings, out)
        count = len(published.entries)
        where = published.directory
        lines = [
            f"Wrote the deprecations page, {count} model{'' if count == 1 else 's'} listed:",
            f"  {where / INDEX}",
            f"  {where / FEED}",
        ]
        if count:
            lines.append(f"  {where / TRANSITION_PAGES}/ (one page per model)")
        if settings.public_url:
            lines.append(f"Copy {where} to {settings.public_url} (SUNSET_PUBLIC_URL).")
        console.print("\n".join(lines), markup=False, highlight=False, soft_wrap=True)
