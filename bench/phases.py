"""The measured phases: each runs alone in a fresh process (`bench/run.py phase NAME ...`),
so its peak RSS is its own; imports stay inside the phases for the same reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
from pydantic import SecretStr

MIB = 1024 * 1024


class _Clock:
    """Wall seconds and the CPU seconds of this process and the processes it started (every
    thread, user and system; a Dask fan-out's workers) since it was made: what the measured
    part of a phase cost. The processes it started must still run when it is read."""

    def __init__(self) -> None:
        self.wall = time.perf_counter()
        self.cpu = _cpu_seconds()

    def result(self, **extra: Any) -> dict[str, Any]:
        return {
            "seconds": time.perf_counter() - self.wall,
            "cpu_seconds": _cpu_seconds() - self.cpu,
            **extra,
        }


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    children = psutil.Process().children(recursive=True)
    return usage.ru_utime + usage.ru_stime + sum(process_cpu_seconds(c.pid) for c in children)


def process_cpu_seconds(pid: int) -> float:
    """The user and system CPU seconds of a running process; 0 for one that has ended."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return float(times.user + times.system)


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
    """Sunset's snapshot: one read pass, SHA-256 + SHA-512 + CRC64NVME, the ledger; on the
    workers the snapshot step starts (``SUNSET_TASK_RUNNER``: this process's threads, or a
    local Dask cluster), timed as the step pays it: starting the workers, whose processes
    import Sunset and Prefect with their first file, included; their start alone is
    ``start_seconds``."""
    from sunset.preservation.replicas import weights_reader
    from sunset.preservation.snapshot import snapshot_weights
    from tasks.fanout import workers_for

    settings, store = _env_store(bucket)
    store.ensure_buckets()
    ledger, model, run = _ledger_run(settings, f"bench-{bucket}", run_id)
    reader = weights_reader(settings)
    sources = reader.scan(str(work / model_dir))
    clock = _Clock()
    with workers_for(settings, store, reader) as workers:
        started = clock.result()
        summary = snapshot_weights(
            ledger,
            store,
            run=run,
            model=model,
            sources=sources,
            weights=reader,
            organization="bench",
            workers=workers,
        )
        measured = clock.result()  # while the workers still run: their CPU is counted
    return measured | {
        "start_seconds": started["seconds"],
        "bytes": summary.payload_bytes,
        "uploaded_files": summary.uploaded_files,
        "bytes_sent": summary.bytes_sent,
        "snapshot_id": summary.snapshot_id,
    }


def _model_files(directory: Path) -> list[Path]:
    """A generated model's files, in a stable order."""
    return sorted(path for path in directory.rglob("*") if path.is_file())


def phase_raw_upload(work: Path, model_dir: str, bucket: str) -> dict[str, Any]:
    """The baseline: boto3's upload_file of the same files, default transfer settings."""
    client = _raw_client(bucket)
    files = _model_files(work / model_dir)
    clock = _Clock()
    for path in files:
        client.upload_file(str(path), bucket, f"raw/{path.name}")
    return clock.result()


def phase_crt_upload(work: Path, model_dir: str, bucket: str) -> dict[str, Any]:
    """A peer: the CRT transfer client (s3transfer's, as boto3[crt] uses it) with its defaults.

    boto3's own ``upload_file`` only picks the CRT for AWS's endpoints (it drops
    ``endpoint_url``), so the transfer manager is built here the way boto3 builds it,
    pointed at the benchmark's store.
    """
    _raw_client(bucket)
    files = _model_files(work / model_dir)
    with _crt_transfers() as transfers:
        clock = _Clock()
        for path in files:
            transfers.upload(str(path), bucket, f"crt/{path.name}").result()
        return clock.result()


def phase_naive_upload(work: Path, model_dir: str, bucket: str) -> dict[str, Any]:
    """The naive way: hash each file (SHA-256), then upload it (a second read)."""
    client = _raw_client(bucket)
    files = _model_files(work / model_dir)
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
    files = _model_files(work / model_dir)
    started = time.perf_counter()
    for path in files:
        client.put_object(Bucket=bucket, Key=f"loop/{path.name}", Body=path.read_bytes())
    return {"seconds": time.perf_counter() - started}


def phase_deep_verify(work: Path, bucket: str, snapshot_id: str) -> dict[str, Any]:
    """Sunset's deep check: stream every preserved version back, re-hash every byte
    (SHA-256 and CRC64NVME, the default) and confirm the lock."""
    return _checks(bucket, snapshot_id, "deep")


def phase_fast_verify(work: Path, bucket: str, snapshot_id: str) -> dict[str, Any]:
    """Sunset's fast check: one version listing per 1,000 objects (size, ETag, current)."""
    return _checks(bucket, snapshot_id, "fast")


def _checks(bucket: str, snapshot_id: str, method: str) -> dict[str, Any]:
    from sqlmodel import select

    from sunset.ledger import PreservedObject, Snapshot, open_ledger
    from sunset.preservation.fixity import fast_check
    from sunset.preservation.verify import deep_checks
    from sunset.preservation.workers import ObjectToReread, thread_workers

    settings, store = _env_store(bucket)
    ledger = open_ledger(settings.ledger_url)
    with ledger.session() as db:
        snapshot = db.get(Snapshot, snapshot_id)
        held = db.exec(
            select(PreservedObject).where(PreservedObject.snapshot_id == snapshot_id)
        ).all()
    clock = _Clock()
    if method == "deep":
        rereads = [ObjectToReread(store.primary.name, snapshot.prefix + h.path, h) for h in held]
        with thread_workers(store) as workers:
            findings = list(deep_checks(store, workers, rereads))
    else:
        findings = fast_check(store.primary, snapshot.prefix, held)
    measured = clock.result(objects=len(held), bytes=sum(h.size for h in held))
    outcomes = [f.outcome for f in findings]
    assert all(o == "ok" for o in outcomes), outcomes
    return measured


def phase_raw_download(work: Path, bucket: str) -> dict[str, Any]:
    """The baseline: boto3's download_file of the same objects, default transfer settings."""
    client = _raw_client(bucket)
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix="raw/")["Contents"]]
    target = work / "downloaded"
    clock = _Clock()
    for key in keys:
        client.download_file(bucket, key, str(target))
        target.unlink()
    return clock.result()


def phase_crt_download(work: Path, bucket: str) -> dict[str, Any]:
    """A peer: the CRT transfer client's download of the objects it uploaded."""
    client = _raw_client(bucket)
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix="crt/")["Contents"]]
    # Each to a file of its own: the CRT client renames its temporary file into place
    # after the transfer's future is done, so the file cannot be removed right away.
    target = work / "downloaded-crt"
    target.mkdir()
    with _crt_transfers() as transfers:
        clock = _Clock()
        for key in keys:
            transfers.download(bucket, key, str(target / Path(key).name)).result()
        measured = clock.result()
    shutil.rmtree(target)
    return measured


def phase_hash_rates(work: Path) -> dict[str, Any]:
    """One core's rate for each digest Sunset computes, in memory: the scale model's input."""
    from awscrt import checksums

    data = os.urandom(256 * MIB)
    rates = {}
    for name, digest in (
        ("sha512", lambda: hashlib.sha512(data)),
        ("sha256", lambda: hashlib.sha256(data)),
        ("crc64nvme", lambda: checksums.crc64nvme(data)),
    ):
        best = 0.0
        for _ in range(3):  # the best of three: the rate of a core not taken by others
            clock = _Clock()
            digest()
            best = max(best, len(data) / MIB / clock.result()["cpu_seconds"])
        rates[f"{name}_mib_s"] = best
    return rates


def _crt_transfers() -> Any:
    """The CRT transfer manager on the benchmark's store, built as boto3[crt] builds it."""
    import botocore.config
    import botocore.session
    from s3transfer.crt import (
        BotocoreCRTCredentialsWrapper,
        BotocoreCRTRequestSerializer,
        CRTTransferManager,
        create_s3_crt_client,
    )

    endpoint = os.environ["SUNSET_S3_ENDPOINT_URL"]
    serializer = BotocoreCRTRequestSerializer(
        botocore.session.Session(),
        {
            "region_name": "us-east-1",
            "endpoint_url": endpoint,
            "aws_access_key_id": "bench",
            "aws_secret_access_key": "bench",
            "config": botocore.config.Config(s3={"addressing_style": "path"}),
        },
    )
    credentials = BotocoreCRTCredentialsWrapper(s3_client()._get_credentials())
    crt = create_s3_crt_client(
        "us-east-1",
        crt_credentials_provider=credentials.to_crt_credentials_provider(),
        use_ssl=endpoint.startswith("https://"),
    )
    return CRTTransferManager(crt, serializer)


def s3_client() -> Any:
    """A boto3 client on the benchmark's SeaweedFS."""
    from sunset.preservation.store import make_s3_client

    return make_s3_client(
        os.environ["SUNSET_S3_ENDPOINT_URL"], "us-east-1", "bench", SecretStr("bench")
    )


def _raw_client(bucket: str) -> Any:
    client = s3_client()
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


PHASES: dict[str, Callable[..., dict[str, Any]]] = {
    "deprecate": phase_deprecate,
    "snapshot": phase_snapshot,
    "raw_upload": phase_raw_upload,
    "crt_upload": phase_crt_upload,
    "naive_upload": phase_naive_upload,
    "put_loop": phase_put_loop,
    "deep_verify": phase_deep_verify,
    "fast_verify": phase_fast_verify,
    "raw_download": phase_raw_download,
    "crt_download": phase_crt_download,
    "hash_rates": phase_hash_rates,
}


def run_phase_here(name: str, work: str, *args: str) -> None:
    """Run one phase in this process and print its result, with its peak RSS, as JSON."""
    result = PHASES[name](Path(work), *args)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(result | {"peak_rss_mib": peak_kib / 1024}))
