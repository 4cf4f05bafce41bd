"""A fork server: start Sunset processes in a fraction of a second, to kill them at will.

Importing Prefect, the anthropic SDK and boto3 takes 3-10 s on a loaded test machine;
the crash tests start dozens of processes. The zygote imports everything once, then forks
one child per request. Each child is an ordinary process of its own (own session and
process group, own stdout/stderr files, its own environment) running the real ``sunset``
command line or a named function, and exits like any process does. SIGKILL ends it the
way a crash or an OOM kill would.

Protocol (one JSON object per line on stdin, one reply per line on stdout)::

    {"argv": [...], "env": {...}, "cwd": DIR, "stdout": FILE, "stderr": FILE}
    {"call": "module:function", "kwargs": {...}, "env": ..., ...}
    -> {"pid": N}

When a child ends, the zygote writes its exit code (negative: the signal) to
``<workdir>/<pid>.rc``. A child ends as a process does (its atexit handlers run, so
Prefect ships its last logs) but skips finalizing every module it inherited, which
would add about a second to each.

Prefect reads its settings when it is imported: ``PREFECT_API_URL`` and friends are those
of the zygote's own environment; a child's ``env`` sets ``SUNSET_*`` and the like.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

WARM_MODULES = ("flows.deprecate", "sunset.cli", "sunset.services", "tests.reliability.children")


def main(workdir: str) -> None:
    for module in WARM_MODULES:
        importlib.import_module(module)
    # Forking a process with threads could copy a held lock into the child.
    assert threading.active_count() == 1, threading.enumerate()

    def reap(signum: int, frame: Any) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            final = os.path.join(workdir, f"{pid}.rc")
            fd = os.open(final + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(fd, str(os.waitstatus_to_exitcode(status)).encode())
            os.close(fd)
            os.replace(final + ".tmp", final)

    signal.signal(signal.SIGCHLD, reap)
    print("ready", flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        # No reaping between the fork and clearing a stale exit file of a reused pid.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        pid = os.fork()
        if pid == 0:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
            _child(request)  # never returns
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(workdir, f"{pid}.rc"))
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        print(json.dumps({"pid": pid}), flush=True)


def _child(request: dict[str, Any]) -> NoReturn:
    os.setsid()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    for fd, name in ((1, "stdout"), (2, "stderr")):
        os.dup2(os.open(request[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    code: int | str | None = 0
    try:
        if "argv" in request:
            from sunset.cli import app

            app(args=request["argv"], prog_name="sunset")  # exits with the command's code
        else:
            module, function = request["call"].split(":")
            getattr(importlib.import_module(module), function)(**request.get("kwargs", {}))
    except SystemExit as exc:
        code = exc.code
    except BaseException:
        traceback.print_exc()
        code = 1
    # Exit as a process does (atexit handlers: Prefect ships its last logs), but skip
    # tearing down every module of the inherited heap, which alone takes about a second.
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0 if code is None else code if isinstance(code, int) else 1)


# --------------------------------------------------------------------------- test side


@dataclass
class Child:
    """A process forked by the zygote."""

    name: str
    pid: int
    stdout: Path
    stderr: Path
    rc_file: Path

    def returncode(self) -> int | None:
        try:
            return int(self.rc_file.read_text())
        except (FileNotFoundError, ValueError):
            return None

    def wait(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while (code := self.returncode()) is None:
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError(f"{self.name} (pid {self.pid}) still running after {timeout} s")
            time.sleep(0.02)
        return code

    def kill(self, *, alone: bool = False) -> None:
        """SIGKILL the child's whole process group (``alone``: the child only) and wait
        until it is gone."""
        if self.returncode() is None:
            # A child killed right after the fork may not have made its own group yet.
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            if not alone:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
        self.wait(30)

    def output(self) -> str:
        """What the child has printed so far (nothing yet, if it has not opened its files)."""
        return "".join(
            path.read_text(errors="replace") for path in (self.stdout, self.stderr) if path.exists()
        )


class Zygote:
    """The test side: start the fork server, ask it for children, stop it."""

    def __init__(self, workdir: Path, env: Mapping[str, str], cwd: Path) -> None:
        self.workdir = workdir
        self.cwd = cwd
        self.env = dict(env)
        workdir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._count = 0
        self.children: list[Child] = []
        self._log = open(workdir / "zygote.log", "wb")  # kept open while the zygote runs
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.zygote", str(workdir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
        )
        assert self.process.stdout is not None
        ready = self.process.stdout.readline()
        if ready.strip() != b"ready":
            raise RuntimeError(f"zygote did not start: {(workdir / 'zygote.log').read_text()}")

    def spawn(
        self,
        name: str,
        *,
        env: Mapping[str, str],
        argv: list[str] | None = None,
        call: str | None = None,
        kwargs: dict[str, Any] | None = None,
        cwd: Path | None = None,
    ) -> Child:
        with self._lock:
            self._count += 1
            base = self.workdir / f"{self._count:03d}-{name}"
            request: dict[str, Any] = {
                "env": dict(env),
                "cwd": str(cwd or self.cwd),
                "stdout": f"{base}.out",
                "stderr": f"{base}.err",
            }
            if argv is not None:
                request["argv"] = argv
            else:
                request |= {"call": call, "kwargs": kwargs or {}}
            assert self.process.stdin is not None and self.process.stdout is not None
            self.process.stdin.write((json.dumps(request) + "\n").encode())
            self.process.stdin.flush()
            pid = json.loads(self.process.stdout.readline())["pid"]
        child = Child(
            name, pid, Path(f"{base}.out"), Path(f"{base}.err"), self.workdir / f"{pid}.rc"
        )
        self.children.append(child)
        return child

    def stop(self) -> None:
        for child in self.children:  # a test that failed half-way may leave one behind
            child.kill()
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self._log.close()


if __name__ == "__main__":
    main(sys.argv[1])
