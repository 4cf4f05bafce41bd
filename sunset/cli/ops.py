"""`sunset ops`: Sunset as a service, on a Prefect server with its UI, workers and alerts."""

from __future__ import annotations

from typing import Annotated

import typer

from sunset.cli.edge import plain_errors
from sunset.cli.output import console, show_operating_mode
from sunset.errors import SunsetError

ops_app = typer.Typer(
    help="Run Sunset as a service: a Prefect server with its UI, workers, deployments and "
    "alerts. See deployments/README.md for the production topology.",
    no_args_is_help=True,
)

AlertWebhook = Annotated[
    str | None,
    typer.Option(
        "--alert-webhook",
        envvar="SUNSET_ALERT_WEBHOOK_URL",
        show_envvar=True,
        help="URL that receives a JSON POST when a run fails or crashes, a fixity check "
        "fails, an audit could not complete, a package is healthy again or a run waits for "
        "approval (kept in the Prefect block sunset-alerts, never printed).",
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

    from sunset.cli.local_runs import keep_prefect_home
    from sunset.config import Settings

    with plain_errors():
        settings = Settings()
        keep_prefect_home(settings)
        from deployments.local import LocalOperations

        operations = LocalOperations(
            settings.data_dir.expanduser(),
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
            show_operating_mode(mode)
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
    and, with --alert-webhook, the automations that post to it failed or crashed runs,
    failed fixity checks, audits that could not complete, packages healthy again and runs
    waiting for approval.

    Safe to run again after every upgrade: what is already right is left as it is.
    """
    from sunset.cli.local_runs import keep_prefect_home
    from sunset.config import Settings

    with plain_errors():
        keep_prefect_home(Settings())
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
