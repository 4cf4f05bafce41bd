"""The measured phases: each runs alone in a fresh process (`bench/run.py phase NAME ...`),
so its peak RSS is its own; imports stay inside the phases for the same reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import SecretStr

MIB = 1024 * 1024


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


def _model_files(directory: Path) -> list[Path]:
    """A generated model's files, in a stable order."""
    return sorted(path for path in directory.rglob("*") if path.is_file())


def phase_raw_upload(work: Path, model_dir: str, bucket: str) -> dict[str, Any]:
    """The baseline: boto3's upload_file of the same files, default transfer settings."""
    client = _raw_client(bucket)
    files = _model_files(work / model_dir)
    started = time.perf_counter()
    for path in files:
        client.upload_file(str(path), bucket, f"raw/{path.name}")
    return {"seconds": time.perf_counter() - started}


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
    "naive_upload": phase_naive_upload,
    "put_loop": phase_put_loop,
    "deep_verify": phase_deep_verify,
    "fast_verify": phase_fast_verify,
    "raw_download": phase_raw_download,
}


def run_phase_here(name: str, work: str, *args: str) -> None:
    """Run one phase in this process and print its result, with its peak RSS, as JSON."""
    result = PHASES[name](Path(work), *args)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(result | {"peak_rss_mib": peak_kib / 1024}))
