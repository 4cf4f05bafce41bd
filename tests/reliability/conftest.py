"""Fixtures of the reliability suite, and the table it prints at the end.

Runs are started as real processes (forked by the zygote, so that dozens of them fit in
the time budget) and observed from outside: the ledger, the bucket, the mailbox, the
Messages stand-in's request log, exit codes and what they print.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from pydantic import SecretStr

from sunset.cli.local_runs import PREFECT_DEFAULTS
from sunset.ledger import Report, open_ledger
from sunset.preservation.store import ObjectStore, make_s3_client
from sunset_dev.devstack import DevStack, start_seaweedfs
from sunset_dev.example_model import EXAMPLE_MODEL_ID, register_example_models
from tests.conftest import Site
from tests.faults.tcp_relay import TcpRelay
from tests.reliability.world import World, standin
from tests.reliability.zygote import Child, Zygote

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT = 120.0
SUNSET = str(Path(sys.executable).with_name("sunset"))


@pytest.fixture(scope="session")
def prefect_api_relay(prefect_server: None) -> Iterator[TcpRelay]:
    """A relay in front of the test Prefect server, to slow the API down on demand."""
    from prefect.settings import PREFECT_API_URL

    api = urlsplit(str(PREFECT_API_URL.value()))
    assert api.hostname and api.port
    with TcpRelay(api.hostname, api.port) as relay:
        yield relay


@pytest.fixture(scope="session")
def zygote(
    prefect_api_relay: TcpRelay, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Zygote]:
    """The fork server for every process the suite starts and kills."""
    from prefect.settings import PREFECT_API_URL

    api_path = urlsplit(str(PREFECT_API_URL.value())).path
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUNSET_")}
    env |= PREFECT_DEFAULTS | {
        "PREFECT_API_URL": f"http://127.0.0.1:{prefect_api_relay.port}{api_path}",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
        "PYTHONUNBUFFERED": "1",
    }
    server = Zygote(tmp_path_factory.mktemp("zygote"), env, ROOT)
    yield server
    server.stop()


@dataclass
class Runner:
    """Starts ``sunset`` commands for one test world, as separate processes."""

    zygote: Zygote
    env: dict[str, str]
    started: list[Child] = field(default_factory=list)

    def start(self, name: str, *argv: str, **env: str) -> Child:
        child = self.zygote.spawn(name, argv=list(argv), env=self.child_env(**env))
        self.started.append(child)
        return child

    def run(self, name: str, *argv: str, timeout: float = RUN_TIMEOUT, **env: str) -> Child:
        child = self.start(name, *argv, **env)
        child.wait(timeout)
        return child

    def child_env(self, **overrides: str) -> dict[str, str]:
        return self.zygote.env | self.env | overrides


@dataclass
class CliProcess:
    """``sunset`` started as a command of its own, in its own process group."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def returncode(self) -> int | None:
        return self.process.poll()

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise TimeoutError(f"{self.name} still running after {timeout} s") from None

    def kill(self, *, alone: bool = False) -> None:
        """SIGKILL the command and every process it started (Prefect's temporary server);
        ``alone``: the command's process only."""
        with contextlib.suppress(ProcessLookupError):
            if alone:
                os.kill(self.process.pid, signal.SIGKILL)
            else:
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class CliRunner:
    """Starts ``sunset`` as the README does: the installed command, in a fresh process,
    with only the environment a release manager would have (no ``PREFECT_*``: Prefect
    starts its temporary server, its home under ``SUNSET_DATA_DIR``)."""

    env: dict[str, str]
    logs: Path
    started: list[CliProcess] = field(default_factory=list)

    def start(self, name: str, *argv: str, **env: str) -> CliProcess:
        log = self.logs / f"{len(self.started) + 1:03d}-{name}.log"
        inherited = {
            k: v for k, v in os.environ.items() if not k.startswith(("SUNSET_", "PREFECT_"))
        }
        # This checkout, whichever one the command's installation points at.
        inherited["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(ROOT), inherited.get("PYTHONPATH")])
        )
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [SUNSET, *argv],
                env=inherited | self.env | env,
                cwd=self.logs,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        child = CliProcess(name, process, log)
        self.started.append(child)
        return child


@pytest.fixture
def cli_runner(site: Site, tmp_path: Path) -> Iterator[CliRunner]:
    """A runner of ``sunset`` commands whose processes do not outlive the test."""
    logs = tmp_path / "cli"
    logs.mkdir()
    runner = CliRunner(dict(site.env), logs)
    yield runner
    for child in runner.started:  # a test that failed half-way may leave one running
        child.kill()


@pytest.fixture
def world(site: Site) -> World:
    return World(site.ledger, site.store, site.stack.maildir, f"{site.marker}.example")


@pytest.fixture
def runner(site: Site, zygote: Zygote) -> Iterator[Runner]:
    """A runner whose processes do not outlive the test, nor the slots they held."""
    runner = Runner(zygote, dict(site.env))
    yield runner
    for child in runner.started:  # a test that failed half-way may leave one running
        child.kill()
    forget_deprecation_limits()


def forget_deprecation_limits() -> None:
    """Delete every per-model deprecation limit on the test Prefect server.

    Every test deprecates the same example model through the one server, each with a
    ledger of its own: a slot left held by a run killed in one test would otherwise hold
    up the next until Prefect's five-minute lease expires. A deleted limit is made again
    by the next run.
    """
    from prefect import get_client

    with get_client(sync_client=True) as client:
        for limit in client.read_global_concurrency_limits(limit=200):
            if limit.name.startswith("deprecate-"):
                client.delete_global_concurrency_limit_by_name(limit.name)


@pytest.fixture(autouse=True)
def _clean_standin(stack: DevStack) -> Iterator[None]:
    """No test leaves a queued Messages fault behind for the next one."""
    yield
    standin(stack.endpoints.messages_base_url, "DELETE", "/_standin/faults")


def write_recipients(path: Path, domain: str, names: list[str]) -> Path:
    """A recipients CSV of ``names``, each at ``<first name lowercased>@domain``."""
    lines = ["email,name"] + [f"{name.split()[0].lower()}@{domain},{name}" for name in names]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


SIX_USERS = [
    "Ada Lovelace",
    "Grace Hopper",
    "Alan Turing",
    "Edsger Dijkstra",
    "Barbara Liskov",
    "Donald Knuth",
]


@dataclass(frozen=True)
class Reference:
    """An uninterrupted run, fault-free, for faulty runs to be compared with."""

    package: dict[str, bytes]
    answers: dict[tuple[int, str], str]
    report: str


@dataclass(frozen=True)
class Home:
    """A ledger, a bucket (and its default replica) and a mail domain of their own."""

    env: dict[str, str]
    world: World


def make_home(stack: DevStack, directory: Path, name: str) -> Home:
    """Settings for processes that work in a home of their own under ``directory``.

    For fixtures that outlive one test; a single test uses ``site`` instead.
    """
    bucket = f"{name}-{uuid.uuid4().hex[:12]}"
    access_key, secret_key = stack.s3_credentials
    env = stack.endpoints.as_env() | {
        "SUNSET_DATA_DIR": str(directory / "data"),
        "SUNSET_DATABASE_URL": f"sqlite:///{directory / 'ledger.db'}",
        "SUNSET_BUCKET": bucket,
        "SUNSET_S3_ACCESS_KEY_ID": access_key,
        "SUNSET_S3_SECRET_ACCESS_KEY": secret_key,
    }
    store = ObjectStore(
        make_s3_client(stack.endpoints.s3_endpoint, "us-east-1", access_key, SecretStr(secret_key)),
        bucket,
    )
    store.ensure_bucket()
    # The default replica, "<bucket>-replica", which every deprecation writes to too.
    ObjectStore(store.client, f"{store.bucket}-replica").ensure_bucket()
    ledger = open_ledger(env["SUNSET_DATABASE_URL"])
    register_example_models(ledger)
    return Home(env, World(ledger, store, stack.maildir, f"{bucket}.example"))


@pytest.fixture(scope="session")
def reference(
    stack: DevStack,
    zygote: Zygote,
    example_weights: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Reference]:
    directory = tmp_path_factory.mktemp("reference")
    home = make_home(stack, directory, "ref")
    world = home.world
    users = write_recipients(directory / "users.csv", world.domain, SIX_USERS)
    args = ["deprecate", EXAMPLE_MODEL_ID, "--weights", str(example_weights)]
    child = Runner(zygote, home.env).run("reference", *args, "--recipients", str(users))
    assert child.returncode() == 0, child.output()[-3000:]
    [report] = world.rows(Report)
    yield Reference(
        package=world.package(EXAMPLE_MODEL_ID),
        answers=world.answers(EXAMPLE_MODEL_ID),
        report=Path(report.local_path).read_text(),
    )
    world.ledger.dispose()


# Distinctive, so that finding one anywhere it should not be is unmistakable.
CANARY_S3_KEY_ID = "SUNSETCANARYKEYID7Q2X"
CANARY_S3_SECRET = "sunset-canary-s3-secret-Zq8wPv3m"


@dataclass(frozen=True)
class LockedStore:
    """A SeaweedFS that accepts only the canary key pair, with one bucket in it."""

    endpoint: str
    store: ObjectStore


@pytest.fixture(scope="session")
def locked_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LockedStore]:
    handle = start_seaweedfs(
        tmp_path_factory.mktemp("locked-seaweedfs"),
        identities=(CANARY_S3_KEY_ID, CANARY_S3_SECRET),
    )
    try:
        client = make_s3_client(
            handle.endpoint, "us-east-1", CANARY_S3_KEY_ID, SecretStr(CANARY_S3_SECRET)
        )
        store = ObjectStore(client, "locked-packages")
        store.ensure_bucket()
        # The default replica, "<bucket>-replica", which every deprecation writes to too.
        ObjectStore(store.client, f"{store.bucket}-replica").ensure_bucket()
        yield LockedStore(handle.endpoint, store)
    finally:
        handle.stop()


def wait_until(condition: object, timeout: float, what: str, interval: float = 0.02) -> None:
    """Poll ``condition()`` until it is true; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
