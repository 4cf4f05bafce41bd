"""Sunset's benchmarks: each result a ratio against a baseline measured in the same run.

    .venv/bin/python bench/run.py            # the full set (a 2 GiB model; ~5 minutes)
    .venv/bin/python bench/run.py --quick    # the same with 256 MiB, to try it out

It starts its own SeaweedFS on 127.0.0.1, generates the models under a temporary
directory, prints a table and appends one JSON line to bench/results/results.jsonl.
Every measured phase runs in a fresh subprocess, so its peak RSS is its own. Not part of
the test suite: numbers depend on the machine and what else it is doing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "results.jsonl"
MIB = 1024 * 1024
TARGETS = {
    "snapshot_vs_raw_upload": ("≥", 0.9),
    "deep_verify_vs_raw_download": ("≥", 0.9),
    "fast_vs_deep_verify_1000_files": ("≥", 50.0),
    "small_files_snapshot_vs_put_loop": ("≤", 1.5),
    "snapshot_peak_rss_mib": ("≤", 512.0),
    "deep_verify_peak_rss_mib": ("≤", 512.0),
}


# --------------------------------------------------------------------------- phases
# Each phase runs in its own process: `bench/run.py phase NAME WORKDIR`.


def _env_store(bucket: str, replicas: str = "[]") -> Any:
    from sunset.config import Settings
    from sunset.preservation.replicas import connect_store

    os.environ["SUNSET_BUCKET"] = bucket
    os.environ["SUNSET_REPLICAS"] = replicas
    return Settings(), connect_store(Settings())


def _ledger_run(settings: Any, model_id: str, run_id: str) -> tuple[Any, Any, Any]:
    from sunset.ledger import CatalogModel, DeprecationRun, open_ledger

    ledger = open_ledger(settings.ledger_url)
    with ledger.session() as db:
        model = db.get(CatalogModel, model_id) or CatalogModel(id=model_id, display_name=model_id)
        db.add(model)
        run = db.get(DeprecationRun, run_id) or DeprecationRun(id=run_id, model_id=model_id)
        db.add(run)
    return ledger, model, run


def phase_snapshot(work: Path, model_dir: str, bucket: str, run_id: str) -> dict[str, Any]:
    """Sunset's snapshot: one read pass, SHA-256 + SHA-512 + CRC64NVME, the ledger."""
    from sunset.preservation.replicas import weights_reader
    from sunset.preservation.snapshot import snapshot_weights

    settings, store = _env_store(bucket)
    store.ensure_buckets()
    ledger, model, run = _ledger_run(settings, f"bench-{bucket}", run_id)
    reader = weights_reader(settings)
    sources = reader.scan(str(work / model_dir))
    started = time.perf_counter()
    summary = snapshot_weights(
        ledger,
        store,
        run=run,
        model=model,
        sources=sources,
        weights=reader,
        organization="bench",
    )
    return {
        "seconds": time.perf_counter() - started,
        "bytes": summary.payload_bytes,
        "uploaded_files": summary.uploaded_files,
        "bytes_sent": summary.bytes_sent,
        "snapshot_id": summary.snapshot_id,
    }


def phase_raw_upload(work: Path, model_dir: str, bucket: str) -> dict[str, Any]:
    """The baseline: boto3's upload_file of the same files, default transfer settings."""
    client = _raw_client(bucket)
    files = sorted(p for p in (work / model_dir).rglob("*") if p.is_file())
    started = time.perf_counter()
    for path in files:
        client.upload_file(str(path), bucket, f"raw/{path.name}")
    return {"seconds": time.perf_counter() - started}


def phase_naive_upload(work: Path, model_dir: str, bucket: str) -> dict[str, Any]:
    """The naive way: hash each file (SHA-256), then upload it (a second read)."""
    client = _raw_client(bucket)
    files = sorted(p for p in (work / model_dir).rglob("*") if p.is_file())
    started = time.perf_counter()
    for path in files:
        digest = hashlib.sha256()
        with path.open("rb") as source:
            while chunk := source.read(8 * MIB):
                digest.update(chunk)
        client.upload_file(str(path), bucket, f"naive/{path.name}")
    return {"seconds": time.perf_counter() - started}


def phase_put_loop(work: Path, model_dir: str, bucket: str) -> dict[str, Any]:
    """The baseline for many small files: a plain put_object loop."""
    client = _raw_client(bucket)
    files = sorted(p for p in (work / model_dir).rglob("*") if p.is_file())
    started = time.perf_counter()
    for path in files:
        client.put_object(Bucket=bucket, Key=f"loop/{path.name}", Body=path.read_bytes())
    return {"seconds": time.perf_counter() - started}


def phase_deep_verify(work: Path, bucket: str, snapshot_id: str) -> dict[str, Any]:
    """Sunset's deep check: stream every preserved version back and re-hash it."""
    return _checks(bucket, snapshot_id, "deep")


def phase_fast_verify(work: Path, bucket: str, snapshot_id: str) -> dict[str, Any]:
    """Sunset's fast check: one version listing per 1,000 objects (size, ETag, current)."""
    return _checks(bucket, snapshot_id, "fast")


def _checks(bucket: str, snapshot_id: str, method: str) -> dict[str, Any]:
    from sqlmodel import select

    from sunset.ledger import PreservedObject, Snapshot, open_ledger
    from sunset.preservation.fixity import deep_check, fast_check

    settings, store = _env_store(bucket)
    ledger = open_ledger(settings.ledger_url)
    with ledger.session() as db:
        snapshot = db.get(Snapshot, snapshot_id)
        held = db.exec(
            select(PreservedObject).where(PreservedObject.snapshot_id == snapshot_id)
        ).all()
    started = time.perf_counter()
    if method == "deep":
        findings = [deep_check(store.primary, snapshot.prefix + h.path, h) for h in held]
    else:
        findings = fast_check(store.primary, snapshot.prefix, held)
    seconds = time.perf_counter() - started
    outcomes = [f.outcome for f in findings]
    assert all(o == "ok" for o in outcomes), outcomes
    return {"seconds": seconds, "objects": len(held), "bytes": sum(h.size for h in held)}


def phase_raw_download(work: Path, bucket: str) -> dict[str, Any]:
    """The baseline: boto3's download_file of the same objects, default transfer settings."""
    client = _raw_client(bucket)
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix="raw/")["Contents"]]
    target = work / "downloaded"
    started = time.perf_counter()
    for key in keys:
        client.download_file(bucket, key, str(target))
        target.unlink()
    return {"seconds": time.perf_counter() - started}


def _client() -> Any:
    from sunset.preservation.store import make_s3_client

    return make_s3_client(
        os.environ["SUNSET_S3_ENDPOINT_URL"], "us-east-1", "bench", SecretStr("bench")
    )


def _raw_client(bucket: str) -> Any:
    client = _client()
    try:  # a plain bucket, no Object Lock: the baseline pays for nothing Sunset adds
        client.create_bucket(Bucket=bucket)
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass
    return client


def phase_deprecate(work: Path, label: str) -> dict[str, Any]:
    """A whole demo deprecation: wall time, and the part spent in the steps' own work."""
    from sqlmodel import select

    from sunset.ledger import StepAttempt, open_ledger
    from sunset_dev.example_model import (
        EXAMPLE_MODEL_ID,
        register_example_models,
        write_example_recipients,
        write_example_weights,
    )

    os.environ["SUNSET_DATABASE_URL"] = f"sqlite:///{work / f'ledger-{label}.db'}"
    settings, store = _env_store(f"bench-demo-{label}", replicas="[]")
    store.ensure_buckets()
    ledger = open_ledger(settings.ledger_url)
    register_example_models(ledger)
    weights = write_example_weights(work / "example" / "weights")
    users = write_example_recipients(work / "example" / "users.csv")
    started = time.perf_counter()
    from flows.deprecate import deprecate_model
    from sunset.runs.request import DeprecationRequest

    deprecate_model(
        DeprecationRequest(model_id=EXAMPLE_MODEL_ID, weights=str(weights), recipients=str(users))
    )
    wall = time.perf_counter() - started
    with ledger.session() as db:
        attempts = db.exec(select(StepAttempt)).all()
    # Transfers (mail, S3) and model calls happen inside these steps' own bodies.
    work_s = sum(
        (a.finished_at - a.started_at).total_seconds()
        for a in attempts
        if a.finished_at and a.step in TRANSFER_STEPS
    )
    return {"seconds": wall, "work_seconds": work_s, "overhead_seconds": wall - work_s}


TRANSFER_STEPS = {
    "notify_users",
    "snapshot_weights",
    "verify_preservation",
    "run_interviews",
    "assemble_report",
}


PHASES = {
    "deprecate": phase_deprecate,
    "snapshot": phase_snapshot,
    "raw_upload": phase_raw_upload,
    "naive_upload": phase_naive_upload,
    "put_loop": phase_put_loop,
    "deep_verify": phase_deep_verify,
    "fast_verify": phase_fast_verify,
    "raw_download": phase_raw_download,
}


def run_phase(name: str, work: Path, *args: str) -> dict[str, Any]:
    """Run one phase in a fresh process; its result with its own peak RSS."""
    done = subprocess.run(
        [sys.executable, __file__, "phase", name, str(work), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"phase {name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- the run


def write_model(directory: Path, shards: int, shard_bytes: int, small: int) -> int:
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="256 MiB instead of 2 GiB.")
    args = parser.parse_args()
    from sunset_dev.devstack import DevStack

    shard_bytes = (64 if args.quick else 512) * MIB
    with tempfile.TemporaryDirectory(prefix="sunset-bench-") as tmp:
        work = Path(tmp)
        stack = DevStack(work / "devstack")
        try:
            os.environ.update(
                stack.start().as_env()
                | {
                    "SUNSET_S3_ACCESS_KEY_ID": "bench",
                    "SUNSET_S3_SECRET_ACCESS_KEY": "bench",
                    "SUNSET_DATABASE_URL": f"sqlite:///{work / 'ledger.db'}",
                    "SUNSET_DATA_DIR": str(work / "data"),
                    "SUNSET_ANTHROPIC_API_KEY": "bench",
                    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
                }
            )
            results = measure(work, shard_bytes) | orchestration_overhead(work)
        finally:
            stack.stop()
    record = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {os.cpu_count()} cores, {platform.machine()}, "
        f"Python {platform.python_version()}",
        "model_bytes": 4 * shard_bytes,
        **results,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a", encoding="utf-8") as out:
        out.write(json.dumps(record, sort_keys=True) + "\n")
    print_table(record)
    return 0


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
    client = _client()
    sizes = {
        f"data/weights/{p.relative_to(work / 'big')}": p.stat().st_size
        for p in (work / "big").rglob("*")
        if p.is_file()
    }
    total = sum(sizes.values())
    child = subprocess.Popen(
        [sys.executable, __file__, "phase", "snapshot", str(work), "big", bucket, "run-resume"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    kept, begun = 0, set()
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


def print_table(record: dict[str, Any]) -> None:
    print(f"\nSunset benchmarks on {record['machine']}, model {record['model_bytes'] // MIB} MiB")
    print(f"{'measure':40} {'value':>10}  target")
    for key, value in sorted(record.items()):
        if key in ("when", "machine"):
            continue
        target = TARGETS.get(key)
        verdict = ""
        if target:
            sign, bound = target
            ok = value >= bound if sign == "≥" else value <= bound
            verdict = f"{sign} {bound}  {'met' if ok else 'MISSED'}"
        shown = f"{value:>10}" if isinstance(value, int) else f"{value:>10.2f}"
        print(f"{key:40} {shown}  {verdict}")
    print(f"\nAppended to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "phase":
        name, work, *rest = sys.argv[2:]
        result = PHASES[name](Path(work), *rest)
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps(result | {"peak_rss_mib": peak_kib / 1024}))
        sys.exit(0)
    sys.exit(main())
