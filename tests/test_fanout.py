"""The fan-out onto Dask (tasks/fanout.py) keeps the single process's guarantees: the same
ledger rows, manifests and package; a worker killed mid-file costs that file only; a
killed run resumes. Against the real SeaweedFS, on a local cluster of two processes."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prefect import flow, get_client, task
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.settings import PREFECT_API_URL
from sqlmodel import select

from sunset.config import Settings
from sunset.ledger import (
    DeprecationRun,
    FixityEvent,
    Ledger,
    PreservedObject,
    SnapshotFile,
    open_ledger,
)
from sunset.preservation import audit, audit_checks
from sunset.preservation.package import WEIGHTS_DIR
from sunset.preservation.reach import Reach
from sunset.preservation.replicas import ReplicatedStore
from sunset.preservation.verify import verify_snapshot
from sunset.preservation.workers import Workers, thread_workers
from sunset_dev.example_model import register_example_models
from tasks.fanout import DaskWorkers, workers_for
from tests.conftest import Site
from tests.faults.s3_proxy import S3FaultProxy
from tests.preservation import (
    PART,
    WEIGHTS,
    CountingReader,
    configured_store,
    current_package,
    parts_sent,
    snapshot,
    start_run,
    versions,
    write_weights,
)

ROOT = Path(__file__).resolve().parent.parent
# A file long enough on a slowed store (16 parts, PARTS_IN_FLIGHT at a time) to be killed
# in the middle of, beside small files that are done long before it.
LARGE = "weights-large.bin"  # after the small files in path order
WITH_LARGE = {"config.json": 300, "tokenizer.json": 4000, "vocab.txt": 900, LARGE: 16 * PART + 77}
LATENCY_S = 1.0  # every request to the slowed store waits this long

pytestmark = [
    pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True),
    pytest.mark.usefixtures("prefect_server"),
]


@pytest.fixture(autouse=True)
def dask_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUNSET_UPLOAD_PART_SIZE", str(PART))
    monkeypatch.setenv("SUNSET_TASK_RUNNER", "dask")
    monkeypatch.setenv("SUNSET_DASK_WORKERS", "2")


@contextmanager
def two_dask_workers(store: ReplicatedStore) -> Iterator[DaskWorkers]:
    """A local cluster of two single-threaded worker processes, as the settings make it."""
    with workers_for(Settings(), store, CountingReader()) as workers:
        assert isinstance(workers, DaskWorkers) and workers.threads == 2
        yield workers


def ledger_rows(ledger: Ledger) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The manifest entries and the objects held per replica, without what only one store
    can say (version ids) or only one moment (when stored, locked until)."""
    with ledger.session() as db:
        files = sorted(
            (f.snapshot_id, f.path, f.size, f.sha256, f.sha512, f.crc64nvme)
            for f in db.exec(select(SnapshotFile))
        )
        held = sorted(
            (h.snapshot_id, h.replica, h.path, h.size, h.sha256, h.sha512, h.crc64nvme, h.etag)
            for h in db.exec(select(PreservedObject))
        )
    return files, held


def checks(ledger: Ledger) -> list[tuple[Any, ...]]:
    with ledger.session() as db:
        return sorted(
            (e.replica, e.path, e.method, e.outcome, e.bytes_read)
            for e in db.exec(select(FixityEvent))
        )


def preserve_verify_audit(ledger: Ledger, weights: str, run_id: str, workers: Workers) -> Any:
    """Snapshot, verify, then deep-audit everything, on ``workers``."""
    store = configured_store()
    summary = snapshot(ledger, store, weights, run_id, CountingReader(), workers)
    verify_snapshot(
        ledger,
        store,
        snapshot_id=summary.snapshot_id,
        run_id=run_id,
        organization="Example Lab",
        workers=workers,
    )
    audit_id = audit.begin_audit(ledger, None, "audit-fan-out")
    deep = audit_checks.deep_audit(
        ledger,
        store,
        audit_id,
        Reach(()),
        budget_bytes=1 << 40,
        period=timedelta(days=90),
        workers=workers,
    )
    return summary, deep


@task
def fan_out_step(ledger: Ledger, weights: str, run_id: str) -> Any:
    """As a step does it: its parameters (a ledger here, the Services in a step) hold
    live clients that cannot travel to a worker."""
    with two_dask_workers(configured_store()) as workers:
        return preserve_verify_audit(ledger, weights, run_id, workers)


@flow
def fan_out_run(ledger_url: str, weights: str, run_id: str) -> Any:
    ledger = open_ledger(ledger_url)
    try:
        return fan_out_step(ledger, weights, run_id)
    finally:
        ledger.dispose()


def task_run_names(flow_run_id: Any, expected: int) -> list[str]:
    """The names of the flow run's task runs, once the server has all it expects
    (it stores the events that make them in batches)."""
    with get_client(sync_client=True) as client:
        return wait_for(
            lambda: (
                names
                if len(
                    names := [
                        run.name
                        for run in client.read_task_runs(
                            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
                        )
                    ]
                )
                >= expected
                else None
            ),
            "the flow run's task runs",
        )


def test_a_snapshot_on_two_dask_workers_equals_the_single_process_one(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two files of a part or more, one per worker; the small ones stay on the step's threads.
    weights = write_weights(tmp_path / "weights", WEIGHTS | {"extra/model.bin": PART + 5})
    run_id = start_run(site.ledger)
    with site.ledger.session() as db:
        run = db.get(DeprecationRun, run_id)
    assert run is not None
    with thread_workers(configured_store(), CountingReader()) as in_process:
        single, single_deep = preserve_verify_audit(site.ledger, str(weights), run_id, in_process)
    single_store = configured_store()
    # The same run, into a ledger and buckets of its own, on two Dask worker processes,
    # from a step of a flow run.
    other_url = f"sqlite:///{tmp_path / 'other.db'}"
    other = open_ledger(other_url)
    register_example_models(other)
    start_run(other, run_id=run_id, at=run.started_at)
    monkeypatch.setenv("SUNSET_BUCKET", f"{single_store.bucket}-d")
    dask_store = configured_store()

    state = fan_out_run(other_url, str(weights), run_id, return_state=True)
    fanned, fanned_deep = state.result()

    large = 2 * 2  # files of a part or more, on both replicas
    names = task_run_names(state.state_details.flow_run_id, 1 + 2 + 2 * large)
    assert sum(name.startswith("store ") for name in names) == 2
    assert sum(name.startswith("reread ") for name in names) == 2 * large  # verify, audit
    assert (fanned_deep.objects_checked, fanned_deep.bytes_read) == (
        single_deep.objects_checked,
        single_deep.bytes_read,
    )
    objects = (len(WEIGHTS) + 1 + 6) * 2  # payload and tag files, on both replicas
    assert fanned_deep.objects_checked == objects and not fanned_deep.damaged
    assert dataclasses.replace(fanned, location=single.location) == single
    assert fanned.uploaded_files == len(WEIGHTS) + 1
    assert ledger_rows(other) == ledger_rows(site.ledger)
    assert checks(other) == checks(site.ledger)  # every object fast and deep, all ok
    assert {outcome for *_, outcome, _ in checks(other)} == {"ok"}
    prefix = single.location.split("/", 3)[3]
    for one, fanned_copy in zip(single_store.copies, dask_store.copies, strict=True):
        # Byte for byte, tag files and payload: same run, same snapshot id and date.
        package = current_package(one, prefix)
        assert {"bag-info.txt", "manifest-sha512.txt", "tagmanifest-sha256.txt"} <= set(package)
        assert current_package(fanned_copy, prefix) == package
        assert all(len(found) == 1 for found in versions(fanned_copy, prefix).values())
    other.dispose()


def wait_for(condition: Callable[[], Any], what: str, seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while not (found := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return found


@pytest.mark.long  # Dask workers import Sunset and Prefect first: over a minute on 2 cores
def test_a_dask_worker_killed_mid_file_costs_that_file_and_loses_nothing(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    weights = write_weights(tmp_path / "weights", WITH_LARGE)
    run_id = start_run(site.ledger)
    store = configured_store()  # this process's: straight to the store
    outcome: dict[str, Any] = {}

    def run_snapshot(workers: DaskWorkers) -> None:
        try:
            outcome["summary"] = snapshot(
                site.ledger, store, str(weights), run_id, CountingReader(), workers
            )
        except BaseException as error:  # handed to the test's thread
            outcome["error"] = error

    with S3FaultProxy(site.env["SUNSET_S3_ENDPOINT_URL"]) as proxy:
        proxy.latency = LATENCY_S
        monkeypatch.setenv("SUNSET_S3_ENDPOINT_URL", proxy.url)  # the workers': slowed
        with two_dask_workers(store) as workers:
            client = workers.runner.client
            pids = client.run(os.getpid)
            running = threading.Thread(target=run_snapshot, args=(workers,))
            running.start()
            # Mid-file: the large file's upload holds parts, and it is the only unit left.
            wait_for(lambda: parts_sent(store.primary, LARGE) > 0, "the large file's first part")
            busy = wait_for(
                lambda: (
                    [a for a, keys in client.processing().items() if keys]
                    if sum(len(k) for k in client.processing().values()) == 1
                    else None
                ),
                "the large file to be the only unit on a worker",
            )
            assert parts_sent(store.primary, LARGE) < 16, "the large file was done before the kill"
            os.kill(pids[busy[0]], signal.SIGKILL)
            running.join(timeout=180)
    assert "error" not in outcome, outcome.get("error")
    summary = outcome["summary"]

    assert summary.uploaded_files == len(WITH_LARGE)
    prefix = summary.location.split("/", 3)[3]
    payload = {f"{WEIGHTS_DIR}/{name}" for name in WITH_LARGE}
    for copy in store.copies:
        stored = versions(copy, prefix)
        assert payload <= {key.removeprefix(prefix) for key in stored}
        assert all(len(found) == 1 for found in stored.values())  # nothing stored twice
        # The killed worker's upload was aborted once its file was stored again.
        assert not copy.client.list_multipart_uploads(Bucket=copy.bucket).get("Uploads")
        assert (
            current_package(copy, prefix)[f"{WEIGHTS_DIR}/{LARGE}"]
            == (weights / LARGE).read_bytes()
        )
    with site.ledger.session() as db:
        assert {f.path for f in db.exec(select(SnapshotFile))} == payload
    verify_snapshot(
        site.ledger,
        store,
        snapshot_id=summary.snapshot_id,
        run_id=run_id,
        organization="Example Lab",
    )


@pytest.mark.long
def test_a_run_killed_with_its_dask_workers_resumes_and_sends_only_what_is_missing(
    site: Site, tmp_path: Path
) -> None:
    weights = write_weights(tmp_path / "weights", WITH_LARGE)
    run_id = start_run(site.ledger)
    store = configured_store()
    child = [sys.executable, "-m", "tests.snapshot_child", site.env["SUNSET_DATABASE_URL"]]
    child += [run_id, str(weights)]
    env = os.environ | {"PYTHONPATH": str(ROOT), "PREFECT_API_URL": str(PREFECT_API_URL.value())}

    with S3FaultProxy(site.env["SUNSET_S3_ENDPOINT_URL"]) as proxy:
        proxy.latency = LATENCY_S
        # One worker: the small files, first in path order, are stored and recorded while
        # the large one is still on its way.
        slowed = env | {"SUNSET_S3_ENDPOINT_URL": proxy.url, "SUNSET_DASK_WORKERS": "1"}
        # Its own process group: the run, its scheduler and its workers die together.
        process = subprocess.Popen(
            child, cwd=ROOT, env=slowed, start_new_session=True, stdout=subprocess.PIPE
        )
        try:
            ledger = site.ledger

            def small_files_recorded() -> bool:
                assert process.poll() is None, process.communicate()[0].decode()
                with ledger.session() as db:
                    return len(db.exec(select(SnapshotFile)).all()) == len(WITH_LARGE) - 1

            wait_for(small_files_recorded, "the small files to be recorded", 120)
            wait_for(lambda: parts_sent(store.primary, LARGE) > 0, "the large file's first part")
        finally:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    kept = parts_sent(store.primary, LARGE)
    assert 0 < kept < 16
    prefix = versions(store.primary, "models/")
    before = {key: found[0]["VersionId"] for key, found in prefix.items()}
    assert len(before) == len(WITH_LARGE) - 1  # the small files, not the large one

    rerun = subprocess.run(child, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)

    assert rerun.returncode == 0, rerun.stderr
    assert "uploaded=1 skipped=3" in rerun.stdout  # the large file only
    sent = int(rerun.stdout.split("bytes_sent=")[1].split()[0])
    assert sent < 2 * WITH_LARGE[LARGE]  # the parts the killed run left were kept
    for copy in store.copies:
        stored = versions(copy, "models/")
        assert all(len(found) == 1 for found in stored.values())  # nothing stored twice
        assert not copy.client.list_multipart_uploads(Bucket=copy.bucket).get("Uploads")
    after = versions(store.primary, "models/")
    assert all(after[key][0]["VersionId"] == version for key, version in before.items())
    summary_id = next(iter(before)).split("/")[2]
    verify_snapshot(
        site.ledger, store, snapshot_id=summary_id, run_id=run_id, organization="Example Lab"
    )
