"""What a command needs to run a Prefect flow in this process: Prefect's own settings, and
the command's Sunset settings handed to the flow run."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from sunset.cli.output import console
from sunset.config import ENV_PREFIX, Settings

if TYPE_CHECKING:
    from prefect.states import State

# Prefect's temporary server needs these offline, and more than its default 20 s here.
# Its concurrency leases are kept in files under PREFECT_HOME, not in its memory: its
# database keeps a model's slot counted after a kill, and only a lease that outlives the
# server lets the next run give that slot back (flows/limits.py).
PREFECT_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "PREFECT_LOGGING_EXTRA_LOGGERS": "sunset",
    "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": (
        "prefect.server.concurrency.lease_storage.filesystem"
    ),
}


def keep_prefect_home(settings: Settings) -> None:
    """Keep Prefect's home (its profiles, its temporary server's database, its logs) under
    the data directory, like everything else, unless PREFECT_HOME is set.

    Every command that imports Prefect calls this first: Prefect reads its settings, and
    creates its home, at import (but not the folders above it: a data directory that
    holds no ledger yet is made here, and no ledger is).
    """
    if "PREFECT_HOME" not in os.environ:
        home = settings.data_dir.expanduser() / "prefect"
        home.mkdir(parents=True, exist_ok=True)
        os.environ["PREFECT_HOME"] = str(home)


def prepare_prefect(settings: Settings) -> None:
    """Prefect's settings for running a flow here (its home: ``keep_prefect_home``), and
    Sunset's own progress lines in its logs. Call this before Prefect is imported.

    On the temporary server (no PREFECT_API_URL) it first stops the temporary servers that
    killed commands left running on the same home (``stop_orphaned_temporary_servers``).
    """
    keep_prefect_home(settings)
    for key, value in PREFECT_DEFAULTS.items():
        os.environ.setdefault(key, value)
    logging.getLogger("sunset").setLevel(logging.INFO)
    if "PREFECT_API_URL" not in os.environ:
        for pid in stop_orphaned_temporary_servers(Path(os.environ["PREFECT_HOME"])):
            console.print(
                f"Stopped Prefect's temporary server (process {pid}) that a killed command "
                "had left running on this data directory."
            )


# How Prefect starts its temporary server: `python -m uvicorn ... --factory` this app.
TEMPORARY_SERVER_APP = "prefect.server.api.server:create_app"


def stop_orphaned_temporary_servers(prefect_home: Path) -> list[int]:
    """Stop the temporary Prefect servers on ``prefect_home`` whose command is gone; their
    process ids.

    Prefect stops its temporary server when the command that started it exits, but a
    command killed outright (SIGKILL, the OOM killer) leaves it running, holding the home's
    database, until the machine restarts: one more for every killed run. Such a server's
    parent is gone, so init or a subreaper adopted it; a command that is still running is
    its parent, on the same interpreter, and its server is left alone.
    """
    stopped = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if TEMPORARY_SERVER_APP not in (process.info["cmdline"] or []):
                continue
            environment = process.environ()
            if environment.get("PREFECT__SERVER_EPHEMERAL") != "1":
                continue
            home = environment.get("PREFECT_HOME")
            if home is None or Path(home).expanduser().resolve() != prefect_home.resolve():
                continue
            if _its_command_runs(process):
                continue
            process.terminate()
            try:
                process.wait(timeout=10)
            except psutil.TimeoutExpired:
                process.kill()
            stopped.append(process.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue  # gone meanwhile, or another user's
    return stopped


@contextmanager
def settings_for_flow_run(settings: Settings) -> Iterator[None]:
    """Hand ``settings`` to a flow run started in this process while it runs.

    A flow, its hooks and its tasks read ``Settings()`` from the environment at the edge
    of the run, as they do on a worker, whose environment holds the deployment's settings.
    A Settings object is not a flow parameter: Prefect records parameters on its server
    and shows them in the deployment's form. So here the ``SUNSET_*`` variables hold
    exactly ``settings`` for the length of the run, and are put back afterwards.
    """
    saved = {name: value for name, value in os.environ.items() if name.startswith(ENV_PREFIX)}
    _replace_settings(settings.as_environment())
    try:
        yield
    finally:
        _replace_settings(saved)


def _replace_settings(variables: dict[str, str]) -> None:
    for name in [name for name in os.environ if name.startswith(ENV_PREFIX)]:
        del os.environ[name]
    os.environ.update(variables)


def outcome_of(final: State[Any]) -> Any | None:
    """What a flow run that ran here returned, or None, once its message is printed, when
    it found nothing to do (the model already had the status it would give it).

    Raises:
        Exception: the error that failed the run.
    """
    from flows.serving import NOTHING_TO_DO_STATE

    if final.name == NOTHING_TO_DO_STATE:
        console.print(final.message, soft_wrap=True)
        return None
    return final.result()


def _its_command_runs(server: psutil.Process) -> bool:
    """Whether the server's parent is the command that started it: a process on the same
    interpreter, not init or a subreaper (which may not even be readable)."""
    parent = server.parent()
    if parent is None or parent.pid == 1:
        return False
    try:
        return bool(parent.exe() == server.exe())
    except psutil.AccessDenied:
        return False
