"""The benchmark's scenarios: generate the models, run each phase in its own process and
turn the phases' timings into ratios against their baselines.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from phases import MIB, process_cpu_seconds, s3_client

# A phase runs in a fresh process through the entry point, `run.py phase NAME WORKDIR ...`.
ENTRY_POINT = Path(__file__).with_name("run.py")


def _phase_command(name: str, work: Path, *args: str) -> list[str]:
    return [sys.executable, str(ENTRY_POINT), "phase", name, str(work), *args]


def run_phase(
    name: str, work: Path, *args: str, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run one phase in a fresh process; its result with its own peak RSS, and the wall
    seconds of the whole process (interpreter start-up and imports included)."""
    started = time.perf_counter()
    done = subprocess.run(
        _phase_command(name, work, *args),
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if done.returncode != 0:
        raise SystemExit(f"phase {name} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result | {"process_seconds": time.perf_counter() - started}


class Store:
    """The benchmark's SeaweedFS process, whose CPU time each measurement also reads."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.pid)

    def measure(self, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """``run``'s result, with the store's CPU seconds while it ran."""
        before = self.cpu_seconds()
        result = run()
        return result | {"store_cpu_seconds": self.cpu_seconds() - before}


def write_model(directory: Path, shards: int, shard_bytes: int, small: int) -> int:
    """Write a model of random shards and small files; its size in bytes."""
    directory.mkdir(parents=True, exist_ok=True)
    total = 0
    for index in range(shards):
        with (directory / f"model-{index:05d}.bin").open("wb") as out:
            for _ in range(shard_bytes // (64 * MIB) or 1):
                block = os.urandom(min(64 * MIB, shard_bytes))
                out.write(block)
                total += len(block)
    for index in range(small):
        data = os.urandom(4096)
        (directory / f"part-{index:05d}.json").write_bytes(data)
        total += len(data)
    return total


def write_big_model(work: Path, shard_bytes: int) -> int:
    """The large model every upload and read-back is measured on: four shards, three
    small files; its size in bytes."""
    return write_model(work / "big", shards=4, shard_bytes=shard_bytes, small=3)


def measure(work: Path, shard_bytes: int, store: Store, peers: Peers) -> dict[str, Any]:
    """Sunset's snapshot and deep verification beside their peers, on the same files and
    store, with the CPU each side spent; the scale model's inputs; the small-file and
    resume scenarios."""
    big = write_big_model(work, shard_bytes)
    write_model(work / "small", shards=0, shard_bytes=0, small=1000)

    def phase(name: str, *args: str) -> dict[str, Any]:
        return store.measure(lambda: run_phase(name, work, *args))

    up: dict[str, dict[str, Any]] = {}
    down: dict[str, dict[str, Any]] = {}
    up["snapshot"] = snap = phase("snapshot", "big", "bench-big", "run-big")
    up["raw"] = phase("raw_upload", "big", "bench-raw")
    up["crt"] = phase("crt_upload", "big", "bench-raw")
    naive = phase("naive_upload", "big", "bench-raw")
    if peers.aws:
        up["aws_cli"] = store.measure(lambda: peers.aws.upload(work / "big", "bench-aws"))
    if peers.rclone:
        up["rclone"] = store.measure(lambda: peers.rclone.upload(work / "big", "bench-rclone"))
    down["deep_verify"] = deep = phase("deep_verify", "bench-big", snap["snapshot_id"])
    down["raw"] = phase("raw_download", "bench-raw")
    down["crt"] = phase("crt_download", "bench-raw")
    if peers.aws:
        down["aws_cli"] = store.measure(lambda: peers.aws.download("bench-aws", work / "aws-down"))
    if peers.rclone:
        down["rclone_check"] = store.measure(
            lambda: peers.rclone.check_download(work / "big", "bench-rclone")
        )
    hashes = run_phase("hash_rates", work)
    fanned = fan_out(work, store)
    small = run_phase("snapshot", work, "small", "bench-small", "run-small")
    loop = run_phase("put_loop", work, "small", "bench-raw")
    small_deep = run_phase("deep_verify", work, "bench-small", small["snapshot_id"])
    small_fast = run_phase("fast_verify", work, "bench-small", small["snapshot_id"])
    resent = resume_after_kill(work)
    gib = big / 1024**3
    return {
        **{f"upload_{name}_s": r["seconds"] for name, r in up.items()},
        **{f"upload_{name}_cpu_s": r["cpu_seconds"] for name, r in up.items()},
        **{f"upload_{name}_store_cpu_s": r["store_cpu_seconds"] for name, r in up.items()},
        **{f"download_{name}_s": r["seconds"] for name, r in down.items()},
        **{f"download_{name}_cpu_s": r["cpu_seconds"] for name, r in down.items()},
        **{f"download_{name}_store_cpu_s": r["store_cpu_seconds"] for name, r in down.items()},
        **{
            f"snapshot_vs_{name}_upload": r["seconds"] / snap["seconds"]
            for name, r in up.items()
            if name != "snapshot"
        },
        **{
            f"deep_verify_vs_{name}": r["seconds"] / deep["seconds"]
            for name, r in down.items()
            if name != "deep_verify"
        },
        "deep_verify_command_vs_rclone_check": (
            down["rclone_check"]["seconds"] / deep["process_seconds"] if peers.rclone else None
        ),
        "snapshot_mib_s": big / MIB / snap["seconds"],
        "deep_verify_mib_s": big / MIB / deep["seconds"],
        "snapshot_vs_naive_upload": naive["seconds"] / snap["seconds"],
        "snapshot_cpu_s_per_gib": snap["cpu_seconds"] / gib,
        "deep_verify_cpu_s_per_gib": deep["cpu_seconds"] / gib,
        "store_mib_s": max(big / MIB / r["seconds"] for r in up.values()),
        **{f"hash_{key}": value for key, value in hashes.items() if key.endswith("_mib_s")},
        **fanned,
        "fast_vs_deep_verify_1000_files": small_deep["seconds"] / small_fast["seconds"],
        "small_files_snapshot_vs_put_loop": small["seconds"] / loop["seconds"],
        "snapshot_peak_rss_mib": snap["peak_rss_mib"],
        "deep_verify_peak_rss_mib": deep["peak_rss_mib"],
        **resent,
    }


class Peers:
    """The command-line peers this run has (None: not installed, left out)."""

    def __init__(self, work: Path, aws_cli: str, rclone: str) -> None:
        from peers import AwsCli, Rclone, find

        aws_path, rclone_path = find(aws_cli), find(rclone)
        self.aws = AwsCli(aws_path, work) if aws_path else None
        self.rclone = Rclone(rclone_path) if rclone_path else None
        self.missing = [
            name for name, path in ((aws_cli, aws_path), (rclone, rclone_path)) if not path
        ]


def fan_out(work: Path, store: Store) -> dict[str, Any]:
    """The large model snapshotted the way the snapshot step does it (``workers_for``):
    in one process (``SUNSET_TASK_RUNNER=threads``, the default), then as one Prefect task
    per file of a part or more on a local Dask cluster of 1, 2 and all cores' worth of
    worker processes, each run into a package of its own, against a running Prefect server.

    Each is timed as the step pays it, from starting its workers to its package written
    (the cluster's start, and its workers importing Sunset and Prefect for their first
    file, included), with the CPU of the run's process and its Dask workers, and the
    store's; the cluster's start alone is ``..._start_s``.
    """
    total = sum(p.stat().st_size for p in (work / "big").iterdir() if p.is_file())

    def snapshot(label: str, env: dict[str, str]) -> dict[str, Any]:
        bucket, run_id = f"bench-fan-{label}", f"run-fan-{label}"
        return store.measure(
            lambda: run_phase("snapshot", work, "big", bucket, run_id, env=os.environ | env)
        )

    with prefect_server(work) as api:
        single = snapshot("single", {"SUNSET_TASK_RUNNER": "threads"})
        result: dict[str, Any] = {
            "fan_out_single_process_mib_s": total / MIB / single["seconds"],
            "fan_out_single_process_cpu_s": single["cpu_seconds"],
            "fan_out_single_process_store_cpu_s": single["store_cpu_seconds"],
        }
        for workers in sorted({1, 2, os.cpu_count() or 1}):
            fanned = snapshot(
                f"dask-{workers}",
                {
                    "SUNSET_TASK_RUNNER": "dask",
                    "SUNSET_DASK_WORKERS": str(workers),
                    "PREFECT_API_URL": api,
                },
            )
            name = f"fan_out_{workers}_workers"
            result |= {
                f"{name}_mib_s": total / MIB / fanned["seconds"],
                f"{name}_cpu_s": fanned["cpu_seconds"],
                f"{name}_store_cpu_s": fanned["store_cpu_seconds"],
                f"{name}_start_s": fanned["start_seconds"],
                f"fan_out_{workers}_vs_single_process": single["seconds"] / fanned["seconds"],
            }
    default = result[f"fan_out_{default_dask_workers()}_vs_single_process"]
    return result | {"fan_out_default_vs_single_process": default}


def default_dask_workers() -> int:
    """How many worker processes the snapshot step's local Dask cluster has by default."""
    from sunset.config import Settings
    from tasks.fanout import dask_task_runner

    workers: int = dask_task_runner(Settings(task_runner="dask")).cluster_kwargs["n_workers"]
    return workers


@contextmanager
def prefect_server(work: Path) -> Iterator[str]:
    """A Prefect server of the benchmark's own, started for the block; its API's URL."""
    from sunset_dev.devstack import free_port

    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "prefect",
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=os.environ | {"PREFECT_HOME": str(work / "prefect-home")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        api = f"http://127.0.0.1:{port}/api"
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{api}/health", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("the Prefect server did not start within 90 s") from None
                time.sleep(0.5)
        yield api
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def orchestration_overhead(work: Path) -> dict[str, Any]:
    """A demo deprecation on Prefect's temporary server, then on a running server."""
    temporary = run_phase("deprecate", work, "temporary")
    with prefect_server(work) as api:
        running = run_phase("deprecate", work, "running", env=os.environ | {"PREFECT_API_URL": api})
    return {
        "demo_wall_s_temporary_server": temporary["seconds"],
        "demo_overhead_s_temporary_server": temporary["overhead_seconds"],
        "demo_wall_s_running_server": running["seconds"],
        "demo_overhead_s_running_server": running["overhead_seconds"],
    }


def resume_after_kill(work: Path) -> dict[str, Any]:
    """Kill a snapshot once the store holds half its bytes, resume it, and count the bytes
    the store had kept before the kill that the rerun sent again.

    Kept bytes are those of completed objects and of the parts of open multipart uploads;
    bytes of a part cut off mid-request are not counted. Files in flight are those begun
    on the store (an open upload or an object) but not recorded in the ledger at the kill.
    """
    from sqlmodel import select

    from sunset.ledger import PreservedObject, open_ledger

    bucket = "bench-resume"
    client = s3_client()
    sizes = {
        f"data/weights/{p.relative_to(work / 'big')}": p.stat().st_size
        for p in (work / "big").rglob("*")
        if p.is_file()
    }
    total = sum(sizes.values())
    child = subprocess.Popen(
        _phase_command("snapshot", work, "big", bucket, "run-resume"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    kept, begun = 0, set[str]()
    while child.poll() is None and kept < total // 2:
        time.sleep(0.1)
        kept, begun = _weights_on_store(client, bucket)
    if child.poll() is not None:
        raise SystemExit("the snapshot to be killed finished before it reached half its bytes")
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    # A part whose bytes had all left the killed process still lands on the store.
    settled = None
    while (kept, begun) != settled:
        settled = kept, begun
        time.sleep(1.0)
        kept, begun = _weights_on_store(client, bucket)
    ledger = open_ledger(os.environ["SUNSET_DATABASE_URL"])
    with ledger.session() as db:
        recorded = set(
            db.exec(select(PreservedObject.path).where(PreservedObject.bucket == bucket)).all()
        )
    in_flight = sum(sizes[path] for path in begun - recorded)
    resumed = run_phase("snapshot", work, "big", bucket, "run-resume")
    # Every byte is sent at least once over both runs: whatever exceeds that was sent twice.
    sent_again = kept + resumed["bytes_sent"] - total
    return {
        "resume_bytes_kept_at_kill": kept,
        "resume_bytes_in_flight_at_kill": in_flight,
        "resume_bytes_sent_again": sent_again,
        "resume_sent_again_vs_in_flight": sent_again / in_flight if in_flight else 0.0,
    }


def _weights_on_store(client: Any, bucket: str) -> tuple[int, set[str]]:
    """Bytes of weights the store keeps (objects and uploaded parts), and their paths."""
    kept, paths = 0, set()
    try:
        for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
            for version in page.get("Versions", []):
                path = version["Key"].split("/", 3)[3]
                if path.startswith("data/weights/"):
                    kept += version["Size"]
                    paths.add(path)
        for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
            parts = client.list_parts(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
            kept += sum(part["Size"] for part in parts.get("Parts", []))
            paths.add(upload["Key"].split("/", 3)[3])
    except client.exceptions.NoSuchBucket:  # the snapshot has not created it yet
        return 0, set()
    except client.exceptions.NoSuchUpload:  # completed between the listing and its parts
        return _weights_on_store(client, bucket)
    return kept, paths
