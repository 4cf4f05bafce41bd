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
from pathlib import Path
from typing import Any

from phases import MIB, s3_client

# A phase runs in a fresh process through the entry point, `run.py phase NAME WORKDIR ...`.
ENTRY_POINT = Path(__file__).with_name("run.py")


def _phase_command(name: str, work: Path, *args: str) -> list[str]:
    return [sys.executable, str(ENTRY_POINT), "phase", name, str(work), *args]


def run_phase(name: str, work: Path, *args: str) -> dict[str, Any]:
    """Run one phase in a fresh process; its result with its own peak RSS."""
    done = subprocess.run(
        _phase_command(name, work, *args),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"phase {name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


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


def measure(work: Path, shard_bytes: int) -> dict[str, Any]:
    big = write_model(work / "big", shards=4, shard_bytes=shard_bytes, small=3)
    write_model(work / "small", shards=0, shard_bytes=0, small=1000)

    snap = run_phase("snapshot", work, "big", "bench-big", "run-big")
    raw = run_phase("raw_upload", work, "big", "bench-raw")
    naive = run_phase("naive_upload", work, "big", "bench-raw")
    deep = run_phase("deep_verify", work, "bench-big", snap["snapshot_id"])
    down = run_phase("raw_download", work, "bench-raw")
    small = run_phase("snapshot", work, "small", "bench-small", "run-small")
    loop = run_phase("put_loop", work, "small", "bench-raw")
    small_deep = run_phase("deep_verify", work, "bench-small", small["snapshot_id"])
    small_fast = run_phase("fast_verify", work, "bench-small", small["snapshot_id"])
    resent = resume_after_kill(work)
    return {
        "snapshot_mib_s": big / MIB / snap["seconds"],
        "raw_upload_mib_s": big / MIB / raw["seconds"],
        "naive_upload_mib_s": big / MIB / naive["seconds"],
        "snapshot_vs_raw_upload": raw["seconds"] / snap["seconds"],
        "snapshot_vs_naive_upload": naive["seconds"] / snap["seconds"],
        "deep_verify_mib_s": big / MIB / deep["seconds"],
        "raw_download_mib_s": big / MIB / down["seconds"],
        "deep_verify_vs_raw_download": down["seconds"] / deep["seconds"],
        "fast_vs_deep_verify_1000_files": small_deep["seconds"] / small_fast["seconds"],
        "small_files_snapshot_vs_put_loop": small["seconds"] / loop["seconds"],
        "snapshot_peak_rss_mib": snap["peak_rss_mib"],
        "deep_verify_peak_rss_mib": deep["peak_rss_mib"],
        **resent,
    }


def orchestration_overhead(work: Path) -> dict[str, Any]:
    """A demo deprecation on Prefect's temporary server, then on a running server."""
    from sunset_dev.devstack import free_port

    temporary = run_phase("deprecate", work, "temporary")
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
                import urllib.request

                urllib.request.urlopen(f"{api}/health", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("the Prefect server did not start within 90 s") from None
                time.sleep(0.5)
        os.environ["PREFECT_API_URL"] = api
        running = run_phase("deprecate", work, "running")
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
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
