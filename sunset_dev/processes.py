"""Local service processes: free ports, starting a process in its own group with a log
file and a readiness probe, and stopping it again (also at interpreter exit).

This module is plain Python: it does not import Prefect.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
STOP_TIMEOUT = 10.0

_PROJECT_ROOT = Path(__file__).resolve().parent.parent


class DevStackError(RuntimeError):
    """A local service could not be found, started or made ready."""


# --------------------------------------------------------------------------- ports

_ports_lock = threading.Lock()
_ports_handed_out: set[int] = set()


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free now and not handed out before by this process.

    There is a window between this call and the service binding the port; services are
    started right after their ports are chosen to keep it short.
    """
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port = int(sock.getsockname()[1])
        with _ports_lock:
            if port not in _ports_handed_out:
                _ports_handed_out.add(port)
                return port


def free_port_pair(offset: int) -> tuple[int, int]:
    """Two free ports ``p`` and ``p + offset``."""
    for _ in range(200):
        port = free_port()
        twin = port + offset
        if twin <= 65535 and _port_is_free(twin):
            with _ports_lock:
                if twin not in _ports_handed_out:
                    _ports_handed_out.add(twin)
                    return port, twin
    raise DevStackError(f"found no pair of free ports {offset} apart on {HOST}")


# --------------------------------------------------------------------------- processes


@dataclass(eq=False)
class ServiceHandle:
    """One running service: its process, where it listens and where it logs.

    ``endpoint`` is the URL a client uses: ``http://127.0.0.1:PORT`` for S3 and the
    Messages API, ``smtp://127.0.0.1:PORT`` for SMTP. ``port`` is the main port, ``ports``
    every port the service was told to use.
    """

    name: str
    endpoint: str
    host: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    ports: dict[str, int] = field(default_factory=dict)
    ready_seconds: float = 0.0
    leftovers: tuple[Path, ...] = ()
    """Files the service may leave behind (Unix sockets), removed once it has stopped."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def is_running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM the service's process group, SIGKILL it after ``timeout``; idempotent."""
        with self._lock:
            _terminate(self.process, timeout)
            for path in self.leftovers:
                if path.is_socket():
                    path.unlink(missing_ok=True)
        _live_handles.discard(self)

    def describe(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "started": process_start_time(self.pid),
            "endpoint": self.endpoint,
            "host": self.host,
            "port": self.port,
            "ports": dict(self.ports),
            "log": str(self.log_path),
            "leftovers": [str(path) for path in self.leftovers],
            "ready_seconds": round(self.ready_seconds, 3),
        }


def _terminate(process: subprocess.Popen[bytes], timeout: float) -> None:
    # The group is signalled only while its leader is unreaped, so its id cannot have been
    # reused by an unrelated process.
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
        return
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout)


def process_start_time(pid: int) -> str | None:
    """When the live process ``pid`` started, as the kernel counts it (clock ticks after
    boot; Linux), or None when it is gone, a zombie, or the system keeps no /proc.

    With the pid it names one process for good: a pid reused later has another start time.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # after "pid (name)", which may hold spaces
    state, start_time = fields[0], fields[19]
    return None if state in ("Z", "X") else start_time


def stop_recorded_process(pid: int, started: str | None, timeout: float = STOP_TIMEOUT) -> bool:
    """Stop the process group led by ``pid`` if ``pid`` is still the process that started
    at ``started`` (a service a killed parent left running); True if it was running.

    SIGTERM to the group, SIGKILL after ``timeout``. It is not this process's child, so
    its exit is watched through its start time, not waited for.
    """
    if started is None or process_start_time(pid) != started:
        return False
    for signum, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, timeout)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signum)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if process_start_time(pid) != started:
                return True
            time.sleep(0.1)
    raise DevStackError(f"process {pid}, left running by an earlier stack, did not stop")


_live_handles: weakref.WeakSet[ServiceHandle] = weakref.WeakSet()


@atexit.register
def _stop_leftovers() -> None:
    """Do not leave services behind when the interpreter exits without ``stop()``."""
    for handle in list(_live_handles):
        with contextlib.suppress(Exception):
            handle.stop(timeout=5.0)


def _spawn(
    argv: Sequence[str], log_path: Path, *, cwd: Path, env: Mapping[str, str]
) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=dict(env),
            start_new_session=True,  # own process group: stop() signals exactly this group
        )


def python_env() -> dict[str, str]:
    """Environment for ``python -m ...`` children: this checkout first on the path."""
    env = dict(os.environ)
    parts = [str(_PROJECT_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(parts))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def _wait_ready(
    handle: ServiceHandle, probe: Callable[[], object], timeout: float, *, interval: float = 0.2
) -> None:
    """Call ``probe()`` until it returns without raising; on failure stop the service and raise."""
    started = time.monotonic()
    deadline = started + timeout
    last_error = "no attempt"
    while True:
        if handle.process.poll() is not None:
            reason = f"exited with status {handle.process.returncode} before it was ready"
            break
        try:
            probe()
        except Exception as exc:  # the probe's failure is the reason to keep waiting
            last_error = f"{type(exc).__name__}: {exc}"
        else:
            handle.ready_seconds = time.monotonic() - started
            return
        if time.monotonic() >= deadline:
            reason = f"was not ready after {timeout:.0f} s (last probe: {last_error})"
            break
        time.sleep(interval)
    handle.stop()
    raise DevStackError(
        f"{handle.name} (pid {handle.pid}) {reason}\n"
        f"--- last lines of {handle.log_path} ---\n{_tail(handle.log_path)}"
    )


def start_process(
    name: str,
    argv: Sequence[str],
    *,
    endpoint: str,
    port: int,
    probe: Callable[[], object],
    log_path: Path,
    env: Mapping[str, str],
    cwd: Path,
    timeout: float,
    ports: Mapping[str, int] | None = None,
    leftovers: tuple[Path, ...] = (),
    probe_interval: float = 0.2,
) -> ServiceHandle:
    """Start a local service, every one the same way, and wait until it is ready.

    The process gets its own process group and log file, is stopped with the handle (or
    at interpreter exit), and counts as ready once ``probe()`` returns without raising.
    ``ports`` names every port it was given (default ``{"http": port}``); ``leftovers``
    are files it may leave behind, removed once it has stopped.
    """
    process = _spawn(argv, log_path, cwd=cwd, env=env)
    handle = ServiceHandle(name, endpoint, HOST, port, process, log_path)
    handle.ports = dict(ports) if ports is not None else {"http": port}
    handle.leftovers = leftovers
    _live_handles.add(handle)
    _wait_ready(handle, probe, timeout, interval=probe_interval)
    return handle


def probe_http(url: str) -> None:
    """Succeed when ``GET url`` answers 200, raise otherwise."""
    with urllib.request.urlopen(url, timeout=2) as response:
        if response.status != 200:
            raise urllib.error.HTTPError(url, response.status, "not ready", response.headers, None)
