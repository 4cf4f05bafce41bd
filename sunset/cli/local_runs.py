"""What a command needs to run a Prefect flow in this process: Prefect's own settings, and
the command's Sunset settings handed to the flow run."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

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
    Sunset's own progress lines in its logs. Call this before Prefect is imported."""
    keep_prefect_home(settings)
    for key, value in PREFECT_DEFAULTS.items():
        os.environ.setdefault(key, value)
    logging.getLogger("sunset").setLevel(logging.INFO)


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
