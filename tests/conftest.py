"""Real local services for the tests, started once per session.

SeaweedFS, the SMTP server and the Messages stand-in run as subprocesses on 127.0.0.1;
PostgreSQL is the one already running on this machine (127.0.0.1:5432, database test),
where each test that asks for it gets a database of its own. Prefect runs against a
temporary test server.

Tests marked ``unit`` are the fast tier (``pytest -m unit -n 0``): pure logic, with
nothing started. ``SERVICE_FIXTURES`` names every fixture that starts or reaches a
service, and a ``unit`` test that asks for one of them fails before it starts anything.
"""

from __future__ import annotations

import os

# Before Prefect is imported anywhere: offline, and patient with its temporary server.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
# The real model's processes (the model server, the drill) run torch on one thread: the
# suite's two xdist workers share two cores, and torch's threads wait for each other on a
# core the other worker holds. Measured here, 120 greedy tokens beside a busy core took
# 24.4 s on two threads and 10.4 s on one; alone, 9.8 s either way (the model is small).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from sunset.config import Settings
from sunset.ledger import Ledger, open_ledger
from sunset.preservation.replicas import connect_store
from sunset.preservation.store import ObjectStore
from sunset_dev.devstack import DevStack, read_mailbox
from sunset_dev.example_model import (
    register_example_models,
    write_example_recipients,
    write_example_weights,
)
from tests.reliability.tally import TALLY
from tests.standin_control import StandIn

POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
TALLY_KEY = "reliability_tally"
# The only key the session's Messages stand-in accepts (the tests' clients send it).
TEST_API_KEY = "test-key"

# Every fixture that starts a process or a server, or reaches one, wherever it is defined;
# the fixtures built on them (site, standin, world...) reach them through these. A new
# fixture that starts something belongs here, or the fast tier stops being fast.
SERVICE_FIXTURES = frozenset(
    {
        "stack",  # SeaweedFS, SMTP and the Messages stand-in (here and in test_devstack.py)
        "prefect_server",  # Prefect's temporary test server
        "standin_process",  # test_messages_server.py: the stand-in as a subprocess
        "server",  # test_messages_server.py, test_model_server.py: servers as subprocesses
        "operations",  # test_operations.py: a Prefect server, a worker and the services
        "webhook",  # test_operations.py: an HTTP receiver
        "demo",  # test_resurrection.py: the CLI demo on the session's Prefect server
        "zygote",  # reliability/: the fork server of the processes it kills
        "prefect_api_relay",  # reliability/: a TCP relay in front of Prefect
        "locked_store",  # reliability/: a SeaweedFS of its own
        "offsite",  # test_audit_outage.py: a SeaweedFS of its own, stopped and restarted
    }
)
# Parametrised fixtures that are a service for some of their values only.
SERVICE_PARAMETERS = {"ledger_url": frozenset({"postgresql"})}


# Files that take a large share of the suite alone (the real model's demo, interview and
# drills: a quarter of an hour or more on two cores). Handed out first, each starts on an
# xdist worker at once while the other workers share the rest, rather than being the
# run's tail.
LONGEST_FIRST = frozenset({"tests/test_resurrection.py"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The order xdist hands out files in: LONGEST_FIRST, then the files with the most tests.

    xdist's own reordering (by number of tests alone) would send the real model's four
    tests near the end; pyproject.toml turns it off (``--no-loadscope-reorder``) and this
    order, the same on every worker, takes its place.
    """
    tests_in = Counter(item.nodeid.split("::")[0] for item in items)

    def order(item: pytest.Item) -> tuple[bool, int]:
        file = item.nodeid.split("::")[0]
        return file not in LONGEST_FIRST, -tests_in[file]

    items.sort(key=order)  # stable: a file's tests, and files that tie, keep their order


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Fail a test marked ``unit`` that would start or reach a service, before it does.

    Checked before the item's fixtures are set up, so nothing starts; per test rather
    than at collection, so that the message also reaches the terminal from xdist workers.
    """
    services = _services_of(item) if item.get_closest_marker("unit") else []
    if services:
        pytest.fail(
            f"this test is marked 'unit' but uses {', '.join(services)}: a unit test starts "
            "no service (see SERVICE_FIXTURES in tests/conftest.py); drop the mark or the "
            "fixture",
            pytrace=False,
        )


def _services_of(item: pytest.Item) -> list[str]:
    """The service fixtures ``item`` asks for, directly or through other fixtures."""
    fixtures = getattr(item, "fixturenames", [])
    services = sorted(SERVICE_FIXTURES.intersection(fixtures))
    parameters = getattr(getattr(item, "callspec", None), "params", {})
    for name, values in SERVICE_PARAMETERS.items():
        if name in fixtures and parameters.get(name) in values:
            services.append(f"{name}[{parameters[name]}]")
    return services


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: its tally goes to the controller
        workeroutput[TALLY_KEY] = TALLY.as_dict()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    counted = getattr(node, "workeroutput", {}).get(TALLY_KEY)
    if counted:
        TALLY.add(counted)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TALLY.empty():
        return
    terminalreporter.section("reliability: what was thrown at Sunset, and what was lost")
    rows = TALLY.rows()
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        terminalreporter.write_line(f"  {label:<{width}} {value}")


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    with DevStack(tmp_path_factory.mktemp("devstack"), messages_api_key=TEST_API_KEY) as running:
        yield running


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture(scope="session")
def example_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_example_weights(tmp_path_factory.mktemp("example") / "weights")


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty ledger database: a SQLite file, or a PostgreSQL database of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
        return
    name = f"sunset_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Site:
    """One test's world: its settings in the environment, its ledger, bucket and mailbox."""

    env: dict[str, str]
    ledger: Ledger
    store: ObjectStore
    stack: DevStack
    weights: Path
    recipients: Path
    data_dir: Path

    def mailbox(self) -> list[Any]:
        return [m for m in read_mailbox(self.stack.maildir) if self.marker in str(m["To"])]

    @property
    def marker(self) -> str:
        return self.env["SUNSET_BUCKET"]

    def download_package(self, package: str, destination: Path) -> Path:
        """Copy every current object of a package (s3://bucket/prefix/) to a directory."""
        prefix = package.removeprefix(f"s3://{self.store.bucket}/")
        listing = self.store.client.list_objects_v2(Bucket=self.store.bucket, Prefix=prefix)
        for item in listing["Contents"]:
            target = destination / item["Key"].removeprefix(prefix)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(self.store.get_bytes(item["Key"]))
        return destination

    def object_keys(self) -> list[str]:
        listing = self.store.client.list_object_versions(Bucket=self.store.bucket)
        return [v["Key"] for v in listing.get("Versions", [])]


@pytest.fixture
def site(
    stack: DevStack,
    ledger_url: str,
    example_weights: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Site]:
    """Settings pointing at the real services, with a bucket and a ledger of the test's own."""
    endpoints = stack.endpoints
    access_key, secret_key = stack.s3_credentials
    bucket = f"t-{uuid.uuid4().hex[:16]}"
    env = endpoints.as_env() | {
        "SUNSET_DATA_DIR": str(tmp_path / "data"),
        "SUNSET_DATABASE_URL": ledger_url,
        "SUNSET_BUCKET": bucket,
        "SUNSET_S3_ACCESS_KEY_ID": access_key,
        "SUNSET_S3_SECRET_ACCESS_KEY": secret_key,
        "SUNSET_RUN_LEASE_SECONDS": "5",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    # The primary bucket and the default replica ('<bucket>-replica'), as settings make them.
    replicated = connect_store(Settings())
    replicated.ensure_buckets()
    store = replicated.primary
    ledger = open_ledger(ledger_url)
    register_example_models(ledger)
    # Recipients at a per-test domain, so each test reads only its own mail.
    recipients = write_example_recipients(tmp_path / "users.csv")
    recipients.write_text(recipients.read_text().replace("example.org", f"{bucket}.example"))
    yield Site(env, ledger, store, stack, example_weights, recipients, tmp_path / "data")
    ledger.dispose()


@pytest.fixture
def standin(stack: DevStack) -> Iterator[StandIn]:
    """The session's Messages stand-in, with an empty fault queue and request log."""
    control = StandIn(stack.endpoints.messages_base_url)
    control.reset()
    yield control
    control.reset()
    control.http.close()
