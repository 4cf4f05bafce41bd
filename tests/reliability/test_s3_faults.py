"""S3 faults from a real proxy in front of SeaweedFS: 500, 503 SlowDown, resets, stalls.

At a 10% fault rate a deprecation completes with a verified package equal to a fault-free
run's; at 100% it stops with a clear error and the ledger records nothing as preserved.
"""

from __future__ import annotations

import os
from pathlib import Path

import boto3
import botocore.config
import botocore.exceptions
import pytest
from sqlmodel import select

from sunset.ledger import (
    CatalogModel,
    DeprecationRun,
    FixityEvent,
    Report,
    RunState,
    Snapshot,
    SnapshotFile,
    StatusTransition,
)
from sunset_dev.example_model import EXAMPLE_MODEL_ID
from tests.conftest import Site
from tests.faults.s3_proxy import MODES, S3FaultProxy
from tests.reliability.conftest import Reference, Runner
from tests.reliability.tally import TALLY
from tests.reliability.world import World, bag_problems, manifest_lines, weights_of
from tests.reliability.zygote import Child

SEED = int(os.environ.get("SUNSET_FAULT_SEED", "8"))
READ_TIMEOUT = 1.5
STALL = 3.0
SQLITE_ONLY = pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)


def deprecate(runner: Runner, site: Site, proxy: S3FaultProxy, name: str) -> Child:
    return runner.run(
        name,
        "deprecate",
        EXAMPLE_MODEL_ID,
        "--weights",
        str(site.weights),
        "--recipients",
        str(site.recipients),
        SUNSET_S3_ENDPOINT_URL=proxy.url,
        SUNSET_S3_READ_TIMEOUT_SECONDS=str(READ_TIMEOUT),
    )


def count_faults(proxy: S3FaultProxy) -> None:
    for mode, count in proxy.injected.items():
        TALLY.fault(f"s3 {mode}", count)


@SQLITE_ONLY
@pytest.mark.parametrize("mode", MODES)
def test_the_proxy_really_injects_each_fault(site: Site, mode: str) -> None:
    key = f"probe-{mode}"
    proxy = S3FaultProxy(site.stack.endpoints.s3_endpoint, rate=1.0, modes=[mode], stall_seconds=2)
    with proxy:
        client = boto3.client(
            "s3",
            endpoint_url=proxy.url,
            region_name="us-east-1",
            aws_access_key_id="k",
            aws_secret_access_key="s",
            config=botocore.config.Config(
                s3={"addressing_style": "path"},
                retries={"total_max_attempts": 1},
                read_timeout=1,
            ),
        )
        with pytest.raises(Exception) as raised:
            client.put_object(Bucket=site.store.bucket, Key=key, Body=b"x" * 100)
    count_faults(proxy)

    error = raised.value
    if mode in ("internal_error", "slow_down"):
        assert isinstance(error, botocore.exceptions.ClientError)
        expected = {"internal_error": "InternalError", "slow_down": "SlowDown"}[mode]
        assert error.response["Error"]["Code"] == expected
    elif mode == "reset":
        assert isinstance(error, botocore.exceptions.ConnectionClosedError | ConnectionError)
    else:
        assert isinstance(error, botocore.exceptions.ReadTimeoutError)
    # Only a stall lets the write through: the store has it, the client cannot know.
    assert (site.store.head(key) is not None) == (mode == "stall")
    assert proxy.injected[mode] == 1


@SQLITE_ONLY
def test_at_ten_percent_faults_the_run_completes_with_the_same_verified_package(
    site: Site, runner: Runner, world: World, reference: Reference, tmp_path: Path
) -> None:
    proxy = S3FaultProxy(
        site.stack.endpoints.s3_endpoint, rate=0.10, seed=SEED, stall_seconds=STALL
    )
    with proxy:
        child = deprecate(runner, site, proxy, "s3-ten-percent")
    count_faults(proxy)

    assert child.returncode() == 0, child.output()[-3000:]
    assert sum(proxy.injected.values()) >= 3, proxy.injected  # the faults really happened
    package = world.package(EXAMPLE_MODEL_ID)
    lost = [
        path
        for path, digest in weights_of(reference.package).items()
        if weights_of(package).get(path) != digest
    ]
    lost += world.broken_promises()
    mails = world.mails_by_recipient()
    emails = [line.split(",")[0] for line in site.recipients.read_text().splitlines()[1:]]
    lost += [email for email in emails if not mails[email]]
    TALLY.lost(lost)
    assert lost == []
    for algorithm in ("sha256", "sha512"):
        assert manifest_lines(package, algorithm) == manifest_lines(reference.package, algorithm)
    assert bag_problems(package, tmp_path / "bag") == []
    with site.ledger.session() as db:
        snapshot = db.exec(select(Snapshot)).one()
        events = db.exec(select(FixityEvent)).all()
        files = db.exec(select(SnapshotFile)).all()
        assert snapshot.state == "stored"
        assert {e.path for e in events if e.outcome == "ok"} >= {f.path for f in files}
        assert db.exec(select(StatusTransition)).one().to_status == "deprecated"
    assert mails == {email: 1 for email in emails}


@SQLITE_ONLY
def test_when_every_object_request_fails_the_run_stops_clearly_and_preserves_nothing(
    site: Site, runner: Runner, world: World
) -> None:
    # Bucket-level requests pass, so the run gets as far as uploading; every request on an
    # object of a package fails, whatever the retries. (Stalls are left out here: each costs
    # a read timeout per attempt, and they are covered at 10% and by the proxy's own test.)
    proxy = S3FaultProxy(
        site.stack.endpoints.s3_endpoint,
        rate=1.0,
        seed=SEED,
        modes=["internal_error", "slow_down", "reset"],
        scope=lambda method, path: "/models/" in path,
    )
    with proxy:
        child = deprecate(runner, site, proxy, "s3-all-objects-fail")
    count_faults(proxy)

    output = child.output()
    assert child.returncode() == 1, output[-3000:]
    last = output.strip().splitlines()[-1]
    # The sentence names what failed: the upload (a 5xx) or the object's URL (a reset).
    assert last.startswith("Error: ") and last.endswith("run again."), last
    assert "PutObject" in last or f"/models/{EXAMPLE_MODEL_ID}/" in last, last
    with site.ledger.session() as db:
        assert db.exec(select(SnapshotFile)).first() is None
        assert all(s.state != "stored" for s in db.exec(select(Snapshot)))
        assert db.exec(select(FixityEvent)).first() is None
        assert db.exec(select(Report)).first() is None
        assert db.exec(select(StatusTransition)).first() is None
        model = db.get(CatalogModel, EXAMPLE_MODEL_ID)
        assert model is not None and model.serving_status == "active"
        run = db.exec(select(DeprecationRun)).one()
        assert run.state == RunState.FAILED and run.error
    assert world.broken_promises() == []


@SQLITE_ONLY
def test_when_the_store_fails_everything_the_run_is_refused_before_it_begins(
    site: Site, runner: Runner, world: World
) -> None:
    before = world.fingerprint()
    proxy = S3FaultProxy(
        site.stack.endpoints.s3_endpoint,
        rate=1.0,
        seed=SEED,
        modes=["internal_error", "slow_down", "reset"],
    )
    with proxy:
        child = deprecate(runner, site, proxy, "s3-all-fail")
    count_faults(proxy)

    output = child.output()
    assert child.returncode() == 1, output[-3000:]
    last = output.strip().splitlines()[-1]
    # The sentence names what failed: the bucket check (a 5xx) or the bucket's URL (a reset).
    assert last.startswith("Error: ") and last.endswith("run again."), last
    assert "HeadBucket" in last or site.store.bucket in last, last
    assert world.fingerprint() == before
