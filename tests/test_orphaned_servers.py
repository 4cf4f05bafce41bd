"""A command killed outright leaves Prefect's temporary server running on its home; the
next command that runs a flow on that home stops it, and leaves alone the server of a
command that still runs and the servers of other homes. Real temporary servers, started
by Prefect as a command starts them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from sunset.cli.local_runs import PREFECT_DEFAULTS, stop_orphaned_temporary_servers

# A command's part in it: start the temporary server, say its process id, keep running.
COMMAND = """
import time
from prefect.server.api.server import SubprocessASGIServer
server = SubprocessASGIServer()
server.start()
print(server.server_process.pid, flush=True)
time.sleep(600)
"""


@contextmanager
def command_with_a_server(home: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """A process that started a temporary server on ``home``; both are ended afterwards."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    command = subprocess.Popen(
        [sys.executable, "-c", COMMAND],
        env=environment | PREFECT_DEFAULTS | {"PREFECT_HOME": str(home)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert command.stdout is not None
    server = int(command.stdout.readline())
    try:
        yield command, server
    finally:
        command.kill()
        command.wait()
        if psutil.pid_exists(server):
            psutil.Process(server).kill()


def kill_outright(command: subprocess.Popen[str]) -> None:
    command.send_signal(signal.SIGKILL)
    command.wait()


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_the_next_command_stops_the_server_a_killed_one_left_and_only_that(
    tmp_path: Path,
) -> None:
    home, other_home = tmp_path / "prefect", tmp_path / "other" / "prefect"
    with (
        command_with_a_server(home) as (killed, orphan),
        command_with_a_server(home) as (_, alive),
    ):
        kill_outright(killed)
        assert running(orphan), "Prefect's server died with its command; nothing to prove"

        assert stop_orphaned_temporary_servers(other_home) == []
        assert stop_orphaned_temporary_servers(home) == [orphan]

        assert not running(orphan)
        assert running(alive), "the server of a command that still runs was stopped"
        assert stop_orphaned_temporary_servers(home) == []
