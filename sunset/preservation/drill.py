"""The resurrection drill: proof that a preserved package alone brings its model back.

Intact bytes are not a model that runs. A drill:

1. restores every file of the package (payload and tag files) from a replica into a fresh
   directory, hashing each file as it is written;
2. verifies the restored bag: its manifests are the ones the ledger derives, and every
   payload file has the digests its manifest lines give;
3. loads the model from the restored ``data/weights/`` alone;
4. replays the prompts of the restored fingerprint and compares the token ids.

Whatever the outcome, it is recorded as a ``DrillEvent``: passed, failed (the package is
not intact, or the model does not reproduce its fingerprint) or error (the drill could
not be carried out, e.g. the store was unreachable). The restored copy is removed after.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlmodel import col, select

from sunset.config import Settings
from sunset.errors import InputError, ResurrectionFailed, VerificationFailed
from sunset.ledger import DrillEvent, Fingerprint, Ledger, Snapshot, SnapshotFile, utcnow
from sunset.local_model import LocalModel, require_runtime, runtime_versions
from sunset.preservation.package import FINGERPRINT_PATH, WEIGHTS_DIR, encode_path
from sunset.preservation.records import package_tag_files
from sunset.preservation.store import Digests, ObjectStore

log = logging.getLogger(__name__)

# Runtime packages whose versions a failed drill compares with the fingerprint's.
_COMPARED_RUNTIME = ("python", "torch", "transformers", "gguf", "torch_threads")


@dataclass(frozen=True)
class DrillSummary:
    """What a passed drill proved, as the terminal and the step record show it."""

    drill_id: int
    model_id: str
    snapshot_id: str
    package: str
    endpoint: str
    files_restored: int
    bytes_restored: int
    prompts_checked: int
    prompts_matched: int
    load_seconds: float
    runtime: dict[str, str]


def drill_workdir(settings: Settings) -> Path:
    """Where a drill restores a package, in a fresh directory of its own."""
    return settings.data_dir / "drills"


def drill_target(ledger: Ledger, model_id: str, snapshot_id: str | None = None) -> Snapshot:
    """The package a drill restores: ``snapshot_id``, or the model's latest fingerprinted one.

    Raises:
        InputError: the model has no package with a fingerprint.
    """
    with ledger.session() as db:
        query = (
            select(Snapshot)
            .join(Fingerprint, col(Fingerprint.snapshot_id) == col(Snapshot.id))
            .where(Snapshot.model_id == model_id)
            .order_by(col(Snapshot.created_at).desc())
        )
        if snapshot_id is not None:
            query = query.where(Snapshot.id == snapshot_id)
        snapshot = db.exec(query).first()
    if snapshot is None:
        which = f"package {snapshot_id}" if snapshot_id else "no preserved package"
        raise InputError(
            f"{model_id} has {which} with a fingerprint to replay; deprecate it with "
            "--fingerprint (a model the local runtime can load) to record one."
        )
    return snapshot


def run_drill(
    ledger: Ledger,
    store: ObjectStore,
    *,
    model_id: str,
    organization: str,
    workdir: Path,
    snapshot_id: str | None = None,
    run_id: str | None = None,
) -> DrillSummary:
    """Restore the package from ``store``, verify it, load its model and replay its fingerprint.

    Args:
        ledger: The ledger that knows the package and receives the drill's record.
        store: The replica to restore from.
        model_id: The model whose package is drilled.
        organization: The organisation named in the package (its bag-info.txt).
        workdir: Where the fresh restore directory is made (and removed after).
        snapshot_id: The package to drill; default: the model's latest fingerprinted one.
        run_id: The deprecation run this drill belongs to, if any.

    Raises:
        InputError: the runtime is missing or the model has no fingerprinted package.
        VerificationFailed: a restored file differs from the manifest.
        ResurrectionFailed: the model does not reproduce its fingerprint; names the prompts.
    """
    require_runtime()
    snapshot = drill_target(ledger, model_id, snapshot_id)
    event = DrillEvent(
        model_id=model_id,
        snapshot_id=snapshot.id,
        run_id=run_id,
        endpoint=store.endpoint,
        bucket=store.bucket,
        outcome="error",
        started_at=utcnow(),
    )
    workdir.mkdir(parents=True, exist_ok=True)
    restored = Path(tempfile.mkdtemp(prefix=f"{snapshot.id}-", dir=workdir))
    try:
        _drill(ledger, store, snapshot, organization, restored, event)
    except Exception as exc:
        if isinstance(exc, VerificationFailed | ResurrectionFailed):
            event.outcome = "failed"
        event.detail = f"{type(exc).__name__}: {exc}"
        _record(ledger, event)
        raise
    finally:
        shutil.rmtree(restored, ignore_errors=True)
    event.outcome = "passed"
    _record(ledger, event)
    assert event.id is not None
    return DrillSummary(
        drill_id=event.id,
        model_id=model_id,
        snapshot_id=snapshot.id,
        package=f"s3://{store.bucket}/{snapshot.prefix}",
        endpoint=store.endpoint,
        files_restored=event.files_restored,
        bytes_restored=event.bytes_restored,
        prompts_checked=event.prompts_checked,
        prompts_matched=event.prompts_matched,
        load_seconds=round(event.load_s, 1),
        runtime=event.runtime,
    )


def _drill(
    ledger: Ledger,
    store: ObjectStore,
    snapshot: Snapshot,
    organization: str,
    restored: Path,
    event: DrillEvent,
) -> None:
    started = time.monotonic()
    log.info("Restoring package %s from s3://%s into %s", snapshot.id, store.bucket, restored)
    event.files_restored, event.bytes_restored = restore_package(
        ledger, store, snapshot, restored, organization
    )
    event.restore_s = time.monotonic() - started
    log.info(
        "Restored %d files (%d bytes); every one matches the manifest",
        event.files_restored,
        event.bytes_restored,
    )
    fingerprint = json.loads((restored / FINGERPRINT_PATH).read_bytes())
    model = LocalModel.load(restored / WEIGHTS_DIR)
    event.load_s = model.load_seconds
    event.runtime = runtime_versions()
    started = time.monotonic()
    differences = replay_fingerprint(model, fingerprint)
    event.replay_s = time.monotonic() - started
    event.prompts_checked = len(fingerprint["prompts"])
    event.prompts_matched = event.prompts_checked - len(differences)
    event.mismatched_prompts = list(differences)
    if differences:
        raise ResurrectionFailed(
            _mismatch_message(snapshot, store, differences, fingerprint, event.runtime)
        )
    log.info(
        "Drill passed: %d of %d fingerprint prompts reproduced exactly",
        event.prompts_matched,
        event.prompts_checked,
    )


def restore_package(
    ledger: Ledger, store: ObjectStore, snapshot: Snapshot, destination: Path, organization: str
) -> tuple[int, int]:
    """Copy every file of the package into ``destination`` and check it against the manifest.

    Returns:
        The number of files and of bytes restored.

    Raises:
        VerificationFailed: a tag file differs from the one the ledger derives, or a payload
            file is missing or differs from its manifest lines.
    """
    expected_tags = package_tag_files(ledger, snapshot, organization)
    failures: list[str] = []
    restored_bytes = 0
    for name, expected in expected_tags.items():
        key = snapshot.prefix + name
        data = store.get_bytes(key) if store.head(key) else b""
        (destination / name).write_bytes(data)
        restored_bytes += len(data)
        if data != expected:
            failures.append(f"{name} (tag file differs from the ledger's)")
    manifests = {
        algorithm: _manifest_lines(expected_tags[f"manifest-{algorithm}.txt"])
        for algorithm in ("sha256", "sha512")
    }
    with ledger.session() as db:
        files = db.exec(
            select(SnapshotFile)
            .where(SnapshotFile.snapshot_id == snapshot.id)
            .order_by(col(SnapshotFile.path))
        ).all()
    for stored in files:
        target = (destination / stored.path).resolve()
        if not target.is_relative_to(destination.resolve()):
            failures.append(f"{stored.path} (path leaves the package)")
            continue
        if store.head(snapshot.prefix + stored.path) is None:
            failures.append(f"{stored.path} (missing)")
            continue
        digests = store.download_file(snapshot.prefix + stored.path, target)
        restored_bytes += digests.size
        failures += _manifest_failures(stored.path, digests, manifests)
    if failures:
        raise VerificationFailed(
            f"The copy of package {snapshot.id} restored from bucket {store.bucket} does not "
            f"match its manifest in {len(failures)} file(s): {'; '.join(failures[:10])}."
        )
    return len(expected_tags) + len(files), restored_bytes


def replay_fingerprint(model: LocalModel, fingerprint: dict[str, Any]) -> dict[str, str]:
    """Run every fingerprint prompt again; the prompts whose tokens differ, with how."""
    differences: dict[str, str] = {}
    max_new_tokens = fingerprint["decoding"]["max_new_tokens"]
    for prompt in fingerprint["prompts"]:
        log.info("Replaying fingerprint prompt %r", prompt["id"])
        generation = model.chat(
            [{"role": "user", "content": prompt["user"]}],
            system=prompt["system"],
            max_new_tokens=max_new_tokens,
        )
        if generation.prompt_token_ids != prompt["prompt_token_ids"]:
            differences[prompt["id"]] = (
                "the prompt no longer tokenizes to the same ids (tokenizer or chat template "
                "changed)"
            )
        elif generation.output_token_ids != prompt["output_token_ids"]:
            expected, actual = prompt["output_token_ids"], generation.output_token_ids
            same = [a == b for a, b in zip(expected, actual, strict=False)]
            first = same.index(False) if False in same else len(same)
            differences[prompt["id"]] = (
                f"from output token {first} on, the model now says {generation.text!r} where "
                f"the fingerprint has {prompt['output_text']!r}"
            )
    return differences


def _mismatch_message(
    snapshot: Snapshot,
    store: ObjectStore,
    differences: dict[str, str],
    fingerprint: dict[str, Any],
    runtime: dict[str, str],
) -> str:
    first, how = next(iter(differences.items()))
    recorded = fingerprint["runtime"]
    changed = [
        f"{name} {recorded.get(name)} -> {runtime.get(name)}"
        for name in _COMPARED_RUNTIME
        if recorded.get(name) != runtime.get(name)
    ]
    cause = (
        f"the runtime changed since the fingerprint ({', '.join(changed)}), or the weights did"
        if changed
        else "the runtime is the one the fingerprint was recorded with, so the preserved "
        "weights changed after the fingerprint was taken"
    )
    return (
        f"Resurrection drill of {snapshot.model_id} failed on prompt {first!r}: {how}. "
        f"{len(differences)} of {len(fingerprint['prompts'])} fingerprint prompts differ "
        f"({', '.join(repr(p) for p in differences)}), although package {snapshot.id} restored "
        f"from bucket {store.bucket} matches its manifest: {cause}. Do not rely on this package "
        "until the cause is found."
    )


def _manifest_lines(manifest: bytes) -> dict[str, str]:
    lines = manifest.decode("utf-8").splitlines()
    return {path: digest for digest, path in (line.split("  ", 1) for line in lines)}


def _manifest_failures(
    path: str, digests: Digests, manifests: dict[str, dict[str, str]]
) -> list[str]:
    return [
        f"{path} ({algorithm} differs from the manifest)"
        for algorithm, lines in manifests.items()
        if lines.get(encode_path(path)) != getattr(digests, algorithm)
    ]


def _record(ledger: Ledger, event: DrillEvent) -> None:
    event.finished_at = utcnow()
    with ledger.session() as db:
        db.add(event)
        db.flush()
        db.refresh(event)
