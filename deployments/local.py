"""The operating mode on one machine: what ``sunset ops up`` starts and stops.

In order: the local services (SeaweedFS, SMTP, the Messages stand-in), a Prefect server
with its UI (SQLite under the data directory, or the PostgreSQL database given), the
work pool and deployments (prefect.yaml), the alert automations when a webhook is given,
and one process worker whose environment points every ``SUNSET_*`` setting at the local
services. ``stop()`` ends them in the reverse order, each by its own process group.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect.settings import PREFECT_API_URL, temporary_settings

from deployments.ops import (
    PROJECT_ROOT,
    WORK_POOL,
    deploy_project,
    ensure_alerts,
    ensure_work_pool,
)
from sunset.config import ENV_PREFIX, Settings
from sunset.preservation.replicas import connect_store
from sunset_dev.devstack import HOST, DevStack, ServiceHandle, free_port, start_process

WORKER_NAME = f"sunset-local-{socket.gethostname()}"
SERVER_START_TIMEOUT = 120.0
WORKER_START_TIMEOUT = 90.0


@dataclass(frozen=True)
class OperatingMode:
    """Where the running operating mode can be reached."""

    api_url: str
    ui_url: str
    deployments: list[str]
    alerts: list[str]
    exports: dict[str, str]
    """The settings another shell needs to trigger runs and use the same services."""


class LocalOperations:
    """A Prefect server with its UI, a worker and the local services, started as one.

    Args:
        data_dir: Where everything is kept: ``devstack/``, ``prefect/`` (the server's
            home and, by default, its SQLite database) and ``operations/`` (logs).
        port: The Prefect server's port; default: a free one.
        prefect_database_url: The server's database, e.g.
            ``postgresql+asyncpg://prefect@db/prefect``; default: SQLite in ``prefect/``.
        alert_webhook_url: Where the alerts are posted (``ops.ensure_alerts``).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        prefect_database_url: str | None = None,
        alert_webhook_url: str | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port or free_port()
        self.prefect_home = self.data_dir / "prefect"
        self.prefect_database_url = (
            prefect_database_url or f"sqlite+aiosqlite:///{self.prefect_home / 'prefect.db'}"
        )
        self.alert_webhook_url = alert_webhook_url
        self.logs_dir = self.data_dir / "operations"
        self.state_file = self.logs_dir / "operations.json"
        self.stack = DevStack(self.data_dir / "devstack")
        self.processes: dict[str, ServiceHandle] = {}

    @property
    def api_url(self) -> str:
        return f"http://{HOST}:{self.port}/api"

    def start(self) -> OperatingMode:
        """Start everything, in order; on any failure stop what was started and raise."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> OperatingMode:
        self.prefect_home.mkdir(parents=True, exist_ok=True)
        endpoints = self.stack.start()
        access_key, secret_key = self.stack.s3_credentials
        exports = endpoints.as_env() | {
            "SUNSET_DATA_DIR": str(self.data_dir),
            "SUNSET_S3_ACCESS_KEY_ID": access_key,
            "SUNSET_S3_SECRET_ACCESS_KEY": secret_key,
            "PREFECT_API_URL": self.api_url,
        }
        settings = Settings(**_settings_fields(exports))
        connect_store(settings).ensure_buckets()

        self.processes["prefect-server"] = self._start_server()
        with temporary_settings(updates={PREFECT_API_URL: self.api_url}):
            ensure_work_pool()
            deployments = deploy_project()
            alerts = ensure_alerts(self.alert_webhook_url) if self.alert_webhook_url else []
        self.processes["prefect-worker"] = self._start_worker(exports)

        mode = OperatingMode(
            api_url=self.api_url,
            ui_url=f"http://{HOST}:{self.port}",
            deployments=deployments,
            alerts=alerts,
            exports=exports,
        )
        self._write_state(mode)
        return mode

    def _prefect_env(self) -> dict[str, str]:
        return os.environ | {
            "PREFECT_HOME": str(self.prefect_home),
            "PREFECT_API_URL": self.api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }

    def _start_server(self) -> ServiceHandle:
        env = self._prefect_env() | {
            "PREFECT_API_DATABASE_CONNECTION_URL": self.prefect_database_url,
            # The UI asks this address for its data; Prefect's links point at the UI.
            "PREFECT_SERVER_UI_API_URL": self.api_url,
            "PREFECT_UI_URL": f"http://{HOST}:{self.port}",
        }
        argv = [sys.executable, "-m", "prefect", "server", "start"]
        argv += ["--host", HOST, "--port", str(self.port)]
        return start_process(
            "prefect-server",
            argv,
            endpoint=self.api_url,
            port=self.port,
            probe=lambda: _get(f"{self.api_url}/health"),
            log_path=self.logs_dir / "prefect-server.log",
            env=env,
            cwd=self.prefect_home,
            timeout=SERVER_START_TIMEOUT,
        )

    def _start_worker(self, exports: dict[str, str]) -> ServiceHandle:
        env = (
            self._prefect_env()
            | exports
            | {
                # The deployments' pull step runs flows from this checkout.
                "SUNSET_CHECKOUT": str(PROJECT_ROOT),
                "PREFECT_LOGGING_EXTRA_LOGGERS": "sunset",
                # Pick up a new run within a few seconds instead of the default ten.
                "PREFECT_WORKER_QUERY_SECONDS": "3",
            }
        )
        argv = [sys.executable, "-m", "prefect", "worker", "start"]
        argv += ["--pool", WORK_POOL, "--type", "process", "--name", WORKER_NAME]
        return start_process(
            "prefect-worker",
            argv,
            endpoint=self.api_url,
            port=self.port,
            probe=lambda: self._worker_is_registered(),
            log_path=self.logs_dir / "prefect-worker.log",
            env=env,
            cwd=self.data_dir,
            timeout=WORKER_START_TIMEOUT,
        )

    def _worker_is_registered(self) -> None:
        workers = _post(f"{self.api_url}/work_pools/{WORK_POOL}/workers/filter", {})
        if not any(worker["name"] == WORKER_NAME for worker in workers):
            raise ConnectionError(f"worker {WORKER_NAME} has not reported to the server yet")

    def stopped_process(self) -> ServiceHandle | None:
        """A process of the operating mode that has exited on its own, if any."""
        handles = [*self.processes.values(), *self.stack.handles.values()]
        return next((handle for handle in handles if not handle.is_running()), None)

    def stop(self) -> None:
        """Stop the worker, then the server, then the local services; idempotent."""
        for name in ("prefect-worker", "prefect-server"):
            handle = self.processes.pop(name, None)
            if handle is not None:
                handle.stop()
        self.stack.stop()
        self.state_file.unlink(missing_ok=True)

    def _write_state(self, mode: OperatingMode) -> None:
        state = {
            "api_url": mode.api_url,
            "ui_url": mode.ui_url,
            "deployments": mode.deployments,
            "services": {
                name: handle.describe()
                for name, handle in (self.processes | self.stack.handles).items()
            },
        }
        self.state_file.write_text(json.dumps(state, indent=2) + "\n")


def _settings_fields(exports: dict[str, str]) -> dict[str, Any]:
    # Settings from the environment, overridden by the local services' endpoints. The
    # values are the variables' raw strings, which Settings validates and converts as it
    # does its environment, hence Any rather than each field's own type.
    return {
        k.removeprefix(ENV_PREFIX).lower(): v
        for k, v in exports.items()
        if k.startswith(ENV_PREFIX)
    }


def _get(url: str) -> None:
    with urllib.request.urlopen(url, timeout=5) as response:
        response.read()


def _post(url: str, body: object) -> list[dict[str, object]]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        result: list[dict[str, object]] = json.loads(response.read())
    return result
