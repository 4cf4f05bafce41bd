"""Crash anywhere: SIGKILL the deprecation at seeded points in every step, resume it, and
end exactly where an uninterrupted run ends (the kill points: ``crash_points.py``; the
lineage of reruns: ``crash.py``).

Here the runs share the suite's long-running Prefect server, reached through a relay that
can slow its API down; ``test_crash_temporary_server.py`` runs the CLI on Prefect's
temporary server instead. The last tests complete a seal and a put cut short.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import time
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qs

import psutil
import pytest
from sqlmodel import select

from sunset.config import Settings
from sunset.errors import VerificationFailed
from sunset.ledger import CatalogModel, DeprecationRun, SnapshotFile
from sunset.preservation.replicas import ReplicatedStore, connect_store, weights_reader
from sunset.preservation.seal import add_payload, finish_interrupted_seal
from sunset.preservation.snapshot import snapshot_weights
from sunset.preservation.store import ObjectStore
from sunset.preservation.verify import verify_snapshot
from sunset_dev.example_model import EXAMPLE_MODEL_ID
from tests.conftest import Site
from tests.faults.s3_proxy import S3FaultProxy
from tests.faults.tcp_relay import TcpRelay
from tests.preservation import PART, parts_sent, versions, write_weights
from tests.reliability.conftest import (
    RUN_TIMEOUT,
    SIX_USERS,
    Reference,
    Runner,
    wait_until,
    write_recipients,
)
from tests.reliability.crash import (
    LEASE_SECONDS,
    POINT_TIMEOUT,
    Lineage,
    assert_deprecated_once,
    assert_ends_as_an_uninterrupted_run,
    decide_unknown_deliveries,
)
from tests.reliability.crash_points import SEED, Faults, Probe, crash_plan
from tests.reliability.tally import TALLY
from tests.reliability.world import WEIGHTS, World, bag_problems, source_weights, weights_of
from tests.reliability.zygote import Child


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_killed_at_ten_points_the_resumed_run_ends_as_an_uninterrupted_one(
    site: Site,
    runner: Runner,
    world: World,
    reference: Reference,
    prefect_api_relay: TcpRelay,
    tmp_path: Path,
) -> None:
    stack = site.stack.endpoints
    users = write_recipients(tmp_path / "users.csv", world.domain, SIX_USERS)
    argv = ["deprecate", EXAMPLE_MODEL_ID, "--weights", str(site.weights), "--recipients"]
    weights_files = len(source_weights(site.weights))
    plan = crash_plan(SEED, weights_files)
    since = time.time()
    slowed_before = prefect_api_relay.delayed
    with (
        S3FaultProxy(stack.s3_endpoint) as s3,
        TcpRelay(stack.smtp_host, stack.smtp_port) as smtp,
    ):
        faults = Faults(s3, smtp, stack.messages_base_url, prefect_api_relay)
        lineage = Lineage(
            runner,
            [*argv, str(users)],
            {
                "SUNSET_S3_ENDPOINT_URL": s3.url,
                "SUNSET_SMTP_PORT": str(smtp.port),
                "SUNSET_RUN_LEASE_SECONDS": str(LEASE_SECONDS),
            },
            Probe(site.ledger, stack.messages_base_url),
            faults,
        )
        for number, point in enumerate(plan, start=1):
            lineage.crash_at(number, point)
            problems = world.broken_promises()
            TALLY.lost(problems)
            assert problems == [], f"after kill {number}: {problems}"
            assert max(world.mails_by_recipient().values(), default=0) <= 1
            lineage.wait_for_the_lease()
        final = lineage.finish(timeout=RUN_TIMEOUT)
        decide_unknown_deliveries(runner, lineage.env, world, final.output())
    TALLY.fault("smtp connection held", smtp.delayed)
    TALLY.fault("smtp connection dropped", smtp.dropped)
    TALLY.fault("s3 request held", s3.delayed)
    TALLY.fault("prefect api chunk delayed", prefect_api_relay.delayed - slowed_before)
    TALLY.crashes += len(plan)
    print(f"\nSUNSET_CRASH_SEED={SEED}, killed at:\n" + "\n".join(lineage.log))
    assert_ends_as_an_uninterrupted_run(
        site, world, reference, users, since, len(plan), tmp_path, questions_killed=2
    )


# A weights file of many parts, stored by a Dask worker (the example's files are smaller
# than a part, and stay on the step's threads); its upload is slowed to be killed mid-way.
LARGE = "model-large.bin"
LARGE_BYTES = 16 * PART + 77


def dask_worker_reading(run: Child, path: Path) -> psutil.Process | None:
    """The process the run started (a Dask worker) that has ``path`` open, if any."""
    for process in psutil.Process(run.pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):  # one that ended while looked at
            if any(Path(f.path) == path for f in process.open_files()):
                return process
    return None


@pytest.mark.long  # a Dask cluster for each of two steps, its workers importing Sunset
@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_a_dask_worker_killed_mid_file_costs_that_file_and_the_run_ends_as_usual(
    site: Site, runner: Runner, world: World, tmp_path: Path
) -> None:
    weights = tmp_path / "weights"
    shutil.copytree(site.weights, weights)
    write_weights(weights, {LARGE: LARGE_BYTES})
    users = write_recipients(tmp_path / "users.csv", world.domain, SIX_USERS)
    argv = ["deprecate", EXAMPLE_MODEL_ID, "--weights", str(weights), "--recipients", str(users)]
    replica = ObjectStore(world.store.client, f"{world.store.bucket}-replica")
    with S3FaultProxy(site.stack.endpoints.s3_endpoint) as s3:
        s3.latency = 0.3  # the large file's parts: a few seconds of upload to land in
        run = runner.start(
            "dask-worker-killed",
            *argv,
            SUNSET_S3_ENDPOINT_URL=s3.url,
            SUNSET_TASK_RUNNER="dask",
            SUNSET_DASK_WORKERS="2",
            SUNSET_UPLOAD_PART_SIZE=str(PART),
        )

        def mid_file() -> psutil.Process | None:
            assert run.returncode() is None, run.output()
            if parts_sent(world.store, LARGE) == 0:
                return None
            return dask_worker_reading(run, (weights / LARGE).resolve())

        wait_until(mid_file, POINT_TIMEOUT, "a Dask worker mid-way through the large file")
        worker = mid_file()
        assert worker is not None
        worker.kill()  # SIGKILL
        kept = parts_sent(world.store, LARGE)
        assert kept < LARGE_BYTES // PART, "the large file was stored before the kill"
        s3.latency = 0.0
        TALLY.crashes += 1
        try:
            code = run.wait(RUN_TIMEOUT * 2)
        except TimeoutError:
            code = None
        if code != 0:
            TALLY.unfinished_reruns += 1
            pytest.fail(f"the run did not end after its worker was killed:\n{run.output()}")
    TALLY.fault("s3 request held", s3.delayed)
    print(f"\nDask worker {worker.pid} killed with {kept} parts of {LARGE} stored")

    # Nothing lost: the run went on and ended as a run that was never interrupted does.
    problems = world.broken_promises()
    package = world.package(EXAMPLE_MODEL_ID)
    lost = [p for p, d in source_weights(weights).items() if weights_of(package).get(p) != d]
    TALLY.lost(problems + lost)
    assert problems == [] and lost == []
    assert bag_problems(package, tmp_path / "bag") == []
    assert world.mails_by_recipient() == Counter(
        {line.split(",")[0]: 1 for line in users.read_text().splitlines()[1:]}
    )
    assert_deprecated_once(site, kills=0)  # the worker's death abandoned no step

    # Nothing sent twice but that file: one version of each weights file on each copy and
    # no upload left open; every other weights file sent once to each, the large one begun
    # again after the kill.
    assert world.unexplained_weights_versions() == []
    for copy in (world.store, replica):
        stored = versions(copy, f"models/{EXAMPLE_MODEL_ID}/")
        weights_keys = [key for key in stored if f"/{WEIGHTS}" in key]
        assert len(weights_keys) == len(source_weights(weights))
        assert all(len(stored[key]) == 1 for key in weights_keys)
        assert not copy.client.list_multipart_uploads(Bucket=copy.bucket).get("Uploads")
    begun = files_begun(s3.received)
    large = f"{WEIGHTS}{LARGE}"
    assert begun[large] > 2  # on both copies, then again by the worker that took it over
    assert {path: n for path, n in begun.items() if path != large} == {
        path: 2 for path in source_weights(weights) if path != large
    }


def files_begun(received: list[tuple[str, str]]) -> Counter[str]:
    """How often the sending of each weights file was begun, by path inside the package:
    a whole file's PUT, or a multipart upload's creation."""
    begun: Counter[str] = Counter()
    for method, path in received:
        key, _, query = path.partition("?")
        params = parse_qs(query, keep_blank_values=True)
        whole = method == "PUT" and "partNumber" not in params
        if f"/{WEIGHTS}" in key and (whole or (method == "POST" and "uploads" in params)):
            begun[WEIGHTS + key.split(f"/{WEIGHTS}", 1)[1]] += 1
    return begun


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def preserve_example(site: Site) -> tuple[ReplicatedStore, str]:
    """The example weights preserved, by a run of their own, on the site's replicas."""
    settings = Settings()
    store = connect_store(settings)
    with site.ledger.session() as db:
        run = DeprecationRun(model_id=EXAMPLE_MODEL_ID)
        db.add(run)
        model = db.get(CatalogModel, EXAMPLE_MODEL_ID)
    assert model is not None
    reader = weights_reader(settings)
    summary = snapshot_weights(
        site.ledger,
        store,
        run=run,
        model=model,
        sources=reader.scan(str(site.weights)),
        weights=reader,
        organization="o",
    )
    return store, summary.snapshot_id


def test_a_seal_cut_short_is_completed_on_resume_but_a_tampered_tag_file_still_fails(
    site: Site,
) -> None:
    store, snapshot_id = preserve_example(site)
    # The seal recorded a transcript, then its process died before rewriting the tag files.
    add_payload(site.ledger, store, snapshot_id, "data/interview/s.jsonl", b"{}\n")
    with pytest.raises(VerificationFailed, match="not rewritten after a change"):
        verify_snapshot(site.ledger, store, snapshot_id=snapshot_id, run_id=None, organization="o")

    assert finish_interrupted_seal(site.ledger, store, snapshot_id, "o")
    verify_snapshot(site.ledger, store, snapshot_id=snapshot_id, run_id=None, organization="o")

    key = f"models/{EXAMPLE_MODEL_ID}/{snapshot_id}/manifest-sha256.txt"
    forged = site.store.get_bytes(key) + b"0" * 64 + b"  data/forged.bin\n"
    site.store.client.put_object(Bucket=site.store.bucket, Key=key, Body=forged)
    assert not finish_interrupted_seal(site.ledger, store, snapshot_id, "o")
    with pytest.raises(VerificationFailed, match="manifest-sha256.txt"):
        verify_snapshot(site.ledger, store, snapshot_id=snapshot_id, run_id=None, organization="o")


class Killed(BaseException):
    """Stands for SIGKILL inside the process: nothing after it runs."""


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_a_put_cut_short_before_its_record_is_adopted_on_resume_but_a_stranger_is_not(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, snapshot_id = preserve_example(site)
    transcript = "data/interview/session-1.jsonl"
    add_payload(site.ledger, store, snapshot_id, transcript, b'{"turn": 1}\n')
    finish_interrupted_seal(site.ledger, store, snapshot_id, "o")

    # The next version of the transcript reaches both replicas; the process dies before
    # the ledger records it.
    def die(*args: object, **kwargs: object) -> None:
        raise Killed

    with monkeypatch.context() as patch:
        patch.setattr("sunset.preservation.seal.record_stored", die)
        with pytest.raises(Killed):
            add_payload(site.ledger, store, snapshot_id, transcript, b'{"turn": 2}\n')
    with pytest.raises(VerificationFailed, match="shadowed"):
        verify_snapshot(site.ledger, store, snapshot_id=snapshot_id, run_id=None, organization="o")

    assert finish_interrupted_seal(site.ledger, store, snapshot_id, "o")
    verify_snapshot(site.ledger, store, snapshot_id=snapshot_id, run_id=None, organization="o")
    with site.ledger.session() as db:
        [row] = db.exec(select(SnapshotFile).where(SnapshotFile.path == transcript)).all()
    assert row.sha256 == hashlib.sha256(b'{"turn": 2}\n').hexdigest()

    # A version written by someone else, announced by no pending write, is not adopted.
    key = f"models/{EXAMPLE_MODEL_ID}/{snapshot_id}/{transcript}"
    site.store.client.put_object(Bucket=site.store.bucket, Key=key, Body=b'{"turn": 3}\n')
    assert not finish_interrupted_seal(site.ledger, store, snapshot_id, "o")
    with pytest.raises(VerificationFailed, match="shadowed"):
        verify_snapshot(site.ledger, store, snapshot_id=snapshot_id, run_id=None, organization="o")
