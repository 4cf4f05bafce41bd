"""The ``sunset`` command: what a release manager types.

Every command loads settings once, here at the edge, and turns any Sunset error into one
sentence on stderr and a non-zero exit code. Only the commands that start a run reach up
into ``flows/``, and only inside their bodies.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from sqlmodel import select

from sunset.config import Settings
from sunset.errors import SunsetError
from sunset.ledger import (
    CatalogModel,
    DeprecationRun,
    Ledger,
    Report,
    Snapshot,
    StatusTransition,
    StepAttempt,
    open_ledger,
)
from sunset.runs import check_model_id
from sunset.store import ObjectStore, make_s3_client

app = typer.Typer(
    help="Sunset retires an AI model without closing the door: it notifies the model's users, "
    "preserves and verifies its weights, interviews it, seals a post-deployment report, and "
    "only then changes its serving status.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()


class ReportFormat(StrEnum):
    md = "md"
    html = "html"


errors = Console(stderr=True, soft_wrap=True)  # a sentence must survive grep and logs

# Prefect's temporary server needs these offline, and more than its default 20 s here.
PREFECT_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "PREFECT_LOGGING_EXTRA_LOGGERS": "sunset",
}


@contextmanager
def _plain_errors() -> Iterator[None]:
    """Turn failures into one sentence and exit code 1, never a traceback."""
    try:
        yield
    except SunsetError as exc:
        errors.print(f"[bold red]Error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    except Exception as exc:  # a setting or a service failed in a way Sunset does not name
        errors.print(f"[bold red]Error:[/] {_unnamed_failure(exc)}", highlight=False)
        raise typer.Exit(1) from None


def _unnamed_failure(exc: Exception) -> str:
    """One sentence for an error Sunset does not raise itself."""
    if isinstance(exc, ValidationError) and exc.title == Settings.__name__:
        first = exc.errors()[0]
        name = "SUNSET_" + "_".join(str(part) for part in first["loc"]).upper()
        return f"The setting {name} is invalid: {first['msg']}; fix it and run again."
    # Drivers add indented hints and links on further lines; the first says what failed.
    problem = (str(exc).strip().splitlines() or [""])[0].rstrip(".")
    return (
        f"{type(exc).__name__}: {problem}. Check the service settings (SUNSET_*) and that "
        "the services are reachable, then run again."
    )


def _ledger(settings: Settings) -> Ledger:
    return open_ledger(settings.ledger_url)


def _store(settings: Settings) -> ObjectStore:
    client = make_s3_client(
        settings.s3_endpoint_url,
        settings.s3_region,
        settings.s3_access_key_id,
        settings.s3_secret_access_key,
        settings.s3_read_timeout_seconds,
    )
    return ObjectStore(client, settings.bucket)


def _parse_date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise SunsetError(f"{option} {value!r} is not a date; write it as YYYY-MM-DD.") from None


@app.command()
def register(
    model: Annotated[str, typer.Argument(help="Catalog id of the model, e.g. acme-chat-2")],
    name: Annotated[str, typer.Option(help="Display name users know the model by.")],
    released: Annotated[str | None, typer.Option(help="Release date, YYYY-MM-DD.")] = None,
    replacement: Annotated[
        str | None, typer.Option(help="Catalog id of the recommended successor.")
    ] = None,
    weights_source: Annotated[
        str | None, typer.Option(help="Where the served weights live (directory or s3:// URL).")
    ] = None,
) -> None:
    """Add a model to the catalog so that it can be deprecated later."""
    with _plain_errors():
        check_model_id(model)
        released_on = _parse_date(released, "--released")
        ledger = _ledger(Settings())
        with ledger.session() as db:
            if db.get(CatalogModel, model) is not None:
                raise SunsetError(f"{model} is already in the catalog.")
            if replacement and db.get(CatalogModel, replacement) is None:
                raise SunsetError(
                    f"Replacement {replacement!r} is not in the catalog; register it first."
                )
            db.add(
                CatalogModel(
                    id=model,
                    display_name=name,
                    released_on=released_on,
                    replacement_id=replacement,
                    weights_source=weights_source,
                )
            )
        console.print(f"Registered {model} ({name}) as active.")


@app.command()
def deprecate(
    model: Annotated[str, typer.Argument(help="Catalog id of the model to deprecate.")],
    weights: Annotated[Path, typer.Option(help="Directory with the model's files, as served.")],
    recipients: Annotated[
        Path, typer.Option(help="CSV of users to notify: columns email,name[,webhook_url,usage].")
    ],
    retire: Annotated[
        bool, typer.Option("--retire", help="Retire the model at the end, not just deprecate it.")
    ] = False,
    retirement_date: Annotated[
        str | None,
        typer.Option(help="Announced retirement date, YYYY-MM-DD; default: minimum notice."),
    ] = None,
    protocol: Annotated[
        Path | None, typer.Option(help="Interview protocol YAML; default: Sunset's standard.")
    ] = None,
    sessions: Annotated[int, typer.Option(help="Interview sessions to run.")] = 1,
    notice_override: Annotated[
        str | None,
        typer.Option(help="Why a notice shorter than the minimum is acceptable (recorded)."),
    ] = None,
    deployment_summary: Annotated[
        Path | None,
        typer.Option(help="Markdown file for the report: usage, notable uses, incidents."),
    ] = None,
    analysis: Annotated[
        Path | None,
        typer.Option(help="Markdown file for the report: the operators' interpretation."),
    ] = None,
) -> None:
    """Run a complete deprecation of MODEL: notify its users, snapshot and verify its
    weights, interview it, seal the report, then flip its serving status.

    A run that stopped halfway (a crash, a failed step) is resumed by running the same
    command again: finished steps are skipped and nobody is notified twice.
    """
    with _plain_errors():
        outcome = _run_deprecation(
            Settings(),
            model_id=model,
            weights=str(weights),
            recipients=str(recipients),
            retire=retire,
            retirement_date=_parse_date(retirement_date, "--retirement-date"),
            protocol=str(protocol) if protocol else None,
            sessions=sessions,
            notice_override_reason=notice_override,
            deployment_summary=str(deployment_summary) if deployment_summary else None,
            operator_analysis=str(analysis) if analysis else None,
        )
        _show_outcome(outcome)


@app.command()
def demo(
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Delete the demo's data first and start over.")
    ] = False,
) -> None:
    """Run a complete deprecation of a bundled example model on local services.

    Starts SeaweedFS (S3), an SMTP server and a stand-in Messages API on 127.0.0.1, all
    keeping their data under the data directory (SUNSET_DATA_DIR, default ~/.sunset),
    retires the example model, prints where the package and the report are, and stops
    the services again. A second run finds the model already retired and shows the same
    results; --fresh starts over from nothing.
    """
    from sunset.devstack import DevStack
    from sunset.example_model import (
        EXAMPLE_MODEL_ID,
        register_example_models,
        write_example_recipients,
        write_example_weights,
    )

    with _plain_errors():
        data_dir = Settings().data_dir.expanduser().resolve()
        if fresh and data_dir.exists():
            shutil.rmtree(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        with console.status("Starting SeaweedFS, the SMTP server and the Messages stand-in"):
            stack = DevStack(data_dir / "devstack")
            endpoints = stack.start()
        try:
            access_key, secret_key = stack.s3_credentials
            os.environ.update(
                endpoints.as_env()
                | {
                    "SUNSET_DATA_DIR": str(data_dir),
                    "SUNSET_S3_ACCESS_KEY_ID": access_key,
                    "SUNSET_S3_SECRET_ACCESS_KEY": secret_key,
                    "SUNSET_ANTHROPIC_API_KEY": "sunset-demo-key",
                }
            )
            settings = Settings()
            console.print(f"Local services up; data under {data_dir}")
            _store(settings).ensure_bucket()
            ledger = _ledger(settings)
            register_example_models(ledger)
            with ledger.session() as db:
                example = db.get(CatalogModel, EXAMPLE_MODEL_ID)
            assert example is not None
            if example.serving_status == "retired":
                console.print(
                    f"{EXAMPLE_MODEL_ID} was retired by an earlier demo run; nothing to do. "
                    "Its package and report are below (sunset demo --fresh starts over)."
                )
                _show_model(ledger, EXAMPLE_MODEL_ID)
                return
            outcome = _run_deprecation(
                settings,
                model_id=EXAMPLE_MODEL_ID,
                weights=str(write_example_weights(data_dir / "example-model" / "weights")),
                recipients=str(write_example_recipients(data_dir / "example-model" / "users.csv")),
                retire=True,
                retirement_date=None,
                protocol=None,
                sessions=1,
                notice_override_reason="Demo on local services: the notice period is "
                "compressed so that the whole lifecycle runs at once.",
                deployment_summary=None,
                operator_analysis=None,
            )
            _show_outcome(outcome)
            console.print(f"Notices delivered to the local mailbox: {endpoints.maildir}")
        finally:
            stack.stop()


@app.command()
def status(
    model: Annotated[
        str | None, typer.Argument(help="A model id; omit to list the catalog.")
    ] = None,
) -> None:
    """Show the serving status of every model, or the full record of one."""
    with _plain_errors():
        ledger = _ledger(Settings())
        if model is None:
            _show_catalog(ledger)
        else:
            _show_model(ledger, model)


@app.command()
def runs(
    model: Annotated[str | None, typer.Option(help="Only the runs of this model.")] = None,
) -> None:
    """List deprecation runs with their state and the attempts of each step."""
    with _plain_errors():
        ledger = _ledger(Settings())
        with ledger.session() as db:
            query = select(DeprecationRun).order_by(DeprecationRun.started_at.desc())  # type: ignore[attr-defined]
            if model:
                query = query.where(DeprecationRun.model_id == model)
            found = db.exec(query).all()
            attempts = db.exec(select(StepAttempt).order_by(StepAttempt.id)).all()
        table = Table(title="Deprecation runs")
        for column in ("run", "model", "state", "started", "finished", "steps", "error"):
            table.add_column(column)
        for run in found:
            steps = [a for a in attempts if a.run_id == run.id]
            table.add_row(
                run.id[:12],
                run.model_id,
                str(run.state),
                _when(run.started_at),
                _when(run.finished_at),
                ", ".join(f"{a.step}#{a.attempt}:{a.state}" for a in steps),
                (run.error or "")[:80],
            )
        console.print(table if found else "No deprecation runs recorded yet.")


@app.command()
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
    from sunset.report.assemble import (
        record_report_input,
        render_report,
        render_report_html,
        report_run,
        seal_report,
    )
    from sunset.report.inputs import read_report_input
    from sunset.services import connect

    with _plain_errors():
        settings = Settings()
        ledger = _ledger(settings)
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


def _run_deprecation(settings: Settings, **parameters: Any) -> Any:
    """Validate in-process for a fast answer, then run the flow (starting Prefect)."""
    from sunset.runs import DeprecationRequest, validate_request

    validate_request(
        _ledger(settings),
        DeprecationRequest(**parameters),
        minimum_notice_days=settings.minimum_notice_days,
        today=date.today(),
    )
    _store(settings).require_bucket()
    for key, value in PREFECT_DEFAULTS.items():
        os.environ.setdefault(key, value)
    from flows.deprecate import deprecate_model

    console.print(f"Deprecating {parameters['model_id']}: the Prefect flow is starting ...")
    return deprecate_model(**parameters)


def _show_outcome(outcome: Any) -> None:
    table = Table(title=f"Deprecation of {outcome.model_id} complete", show_header=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    table.add_row("Preserved package", outcome.package)
    table.add_row("Report", outcome.report)
    table.add_row("Serving status", f"[bold]{outcome.status}[/]")
    table.add_row("Run", outcome.run_id)
    console.print(table)


def _show_catalog(ledger: Ledger) -> None:
    with ledger.session() as db:
        models = db.exec(select(CatalogModel).order_by(CatalogModel.id)).all()
    table = Table(title="Catalog")
    for column in ("model", "name", "status", "released", "announced", "retirement", "successor"):
        table.add_column(column)
    for m in models:
        table.add_row(
            m.id,
            m.display_name,
            str(m.serving_status),
            str(m.released_on or ""),
            str(m.deprecation_announced_on or ""),
            str(m.retirement_on or ""),
            m.replacement_id or "",
        )
    console.print(table if models else "The catalog is empty; add a model with `sunset register`.")


def _show_model(ledger: Ledger, model_id: str) -> None:
    with ledger.session() as db:
        model = db.get(CatalogModel, model_id)
        if model is None:
            raise SunsetError(f"Model {model_id!r} is not in the catalog.")
        transitions = db.exec(
            select(StatusTransition)
            .where(StatusTransition.model_id == model_id)
            .order_by(StatusTransition.at)
        ).all()
        snapshot = db.exec(
            select(Snapshot)
            .where(Snapshot.model_id == model_id)
            .order_by(Snapshot.created_at.desc())  # type: ignore[attr-defined]
        ).first()
        report = None
        if snapshot is not None:
            report = db.exec(
                select(Report)
                .where(Report.snapshot_id == snapshot.id)
                .order_by(Report.version.desc())  # type: ignore[attr-defined]
            ).first()
    table = Table(title=f"{model.display_name} ({model.id})", show_header=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    table.add_row("Serving status", f"[bold]{model.serving_status}[/]")
    table.add_row("Released", str(model.released_on or "not recorded"))
    table.add_row("Deprecation announced", str(model.deprecation_announced_on or "not yet"))
    table.add_row("Retirement date", str(model.retirement_on or "not set"))
    table.add_row("Successor", model.replacement_id or "none named")
    if snapshot is not None:
        table.add_row("Preserved package", f"s3://{snapshot.bucket}/{snapshot.prefix}")
        table.add_row("Manifest digest", snapshot.manifest_sha256 or "")
    if report is not None:
        table.add_row("Report", f"v{report.version}: {report.local_path}")
    for t in transitions:
        table.add_row(f"{_when(t.at)}", f"{t.from_status} -> {t.to_status} by {t.actor}")
    console.print(table)


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else ""


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
