"""`sunset report`: a model's post-deployment report, rebuilt from the ledger or resealed
with new text."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from sunset.cli.edge import plain_errors
from sunset.cli.output import errors


class ReportFormat(StrEnum):
    """The report's two renderings."""

    md = "md"
    html = "html"


def report(
    model: Annotated[str, typer.Argument(help="The model whose report to show.")],
    format: Annotated[
        ReportFormat, typer.Option("--format", help="md (Markdown) or html (one printable page).")
    ] = ReportFormat.md,
    out: Annotated[
        Path | None, typer.Option(help="Write the report to this file instead of the terminal.")
    ] = None,
    deployment_summary: Annotated[
        Path | None,
        typer.Option(help="Add or replace the deployment summary (Markdown); seals a new version."),
    ] = None,
    analysis: Annotated[
        Path | None,
        typer.Option(
            help="Add or replace the operators' analysis (Markdown); seals a new version."
        ),
    ] = None,
    by: Annotated[
        str, typer.Option(help="Who supplies the new text, for the record.")
    ] = "operator",
) -> None:
    """Regenerate MODEL's post-deployment report from the ledger.

    Without new text the report is rebuilt byte for byte as it was sealed. With
    --deployment-summary or --analysis the text is recorded, and a new report version is
    sealed into the preservation package beside the old one (which is kept).
    """
    from sunset.config import Settings
    from sunset.ledger import open_ledger
    from sunset.report.assemble import (
        record_report_input,
        render_report,
        render_report_html,
        report_run,
        seal_report,
    )
    from sunset.report.inputs import read_report_input
    from sunset.services import connect

    with plain_errors():
        settings = Settings()
        ledger = open_ledger(settings.ledger_url)
        run_id = report_run(ledger, model)
        supplied = {
            kind: read_report_input(path, kind)
            for kind, path in (
                ("deployment_summary", deployment_summary),
                ("operator_analysis", analysis),
            )
            if path
        }
        if supplied:
            for kind, text in supplied.items():
                record_report_input(ledger, run_id=run_id, kind=kind, text=text, supplied_by=by)
            services = connect(settings)
            sealed = seal_report(
                services.ledger,
                services.store,
                run_id=run_id,
                protocol=None,
                organization=settings.organization,
                reports_dir=settings.data_dir / "reports",
            )
            errors.print(f"Sealed report version {sealed.version} into {sealed.package}")
        text = (render_report_html if format == ReportFormat.html else render_report)(
            ledger, run_id
        )
        if out is None:
            sys.stdout.write(text)
        else:
            out.write_text(text, encoding="utf-8")
            errors.print(f"Wrote {out}")
