"""Snapshots on every replica, locked, verified, resumable, and refusals that change nothing;
against the real SeaweedFS."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from awscrt import checksums
from botocore.exceptions import ClientError
from sqlmodel import col, select

from sunset.config import Settings
from sunset.errors import InputError, PreservationError, VerificationFailed
from sunset.ledger import (
    CatalogModel,
    DeprecationRun,
    FixityEvent,
    LeftoverVersion,
    PreservedObject,
    SnapshotFile,
    open_ledger,
    utcnow,
)
from sunset.preservation import audit, audit_checks
from sunset.preservation import snapshot as snapshot_module
from sunset.preservation.fixity import deep_check, fast_check, record
from sunset.preservation.package import WEIGHTS_DIR, package_prefix
from sunset.preservation.reach import Reach
from sunset.preservation.repair import repair
from sunset.preservation.replicas import ReplicatedStore, weights_reader
from sunset.preservation.seal import add_payload, write_tag_files
from sunset.preservation.snapshot import snapshot_id_for, snapshot_weights
from sunset.preservation.standing import is_verified
from sunset.preservation.store import ObjectStore, crc64nvme_b64
from sunset.preservation.verify import verify_snapshot
from sunset.report.assemble import render_report
from sunset.report.render import inline
from sunset.runs.request import DeprecationRequest
from sunset_dev.example_model import EXAMPLE_MODEL_ID, register_example_models
from tests.conftest import Site
from tests.preservation import (
    PART,
    WEIGHTS,
    CountingReader,
    FailingReader,
    bagit_validates,
    configured_store,
    current_package,
    snapshot,
    start_run,
    versions,
    write_weights,
)

ROOT = Path(__file__).resolve().parent.parent
TAG_FILES = {
    "bagit.txt",
    "bag-info.txt",
    "manifest-sha256.txt",
    "manifest-sha512.txt",
    "tagmanifest-sha256.txt",
    "tagmanifest-sha512.txt",
}
PACKAGE = {f"{WEIGHTS_DIR}/{name}" for name in WEIGHTS} | TAG_FILES
BIG = "model-00001-of-00002.bin"

# The ledger's part is covered on both databases elsewhere; here SQLite keeps them quick.
pytestmark = pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)


@pytest.fixture(autouse=True)
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUNSET_UPLOAD_PART_SIZE", str(PART))


def prefix_of(location: str) -> str:
    return location.split("/", 3)[3]


def test_a_snapshot_reads_each_file_once_and_stores_it_locked_on_every_replica(
    site: Site, tmp_path: Path
) -> None:
    store = configured_store()
    weights = write_weights(tmp_path / "weights")
    reader = CountingReader()

    summary = snapshot(site.ledger, store, str(weights), start_run(site.ledger), reader)

    assert reader.opened == Counter(WEIGHTS.keys())  # one read pass per file
    assert summary.replicas == ("primary", "replica")
    prefix = prefix_of(summary.location)
    with site.ledger.session() as db:
        held = db.exec(select(PreservedObject)).all()
    for copy in store.copies:
        stored = versions(copy, prefix)
        assert {key.removeprefix(prefix) for key in stored} == PACKAGE
        assert all(len(found) == 1 for found in stored.values())  # nothing sent twice
        rows = {h.path: h for h in held if h.replica == copy.name}
        assert set(rows) == PACKAGE
        for path, row in rows.items():
            head = copy.client.head_object(
                Bucket=copy.bucket, Key=prefix + path, ChecksumMode="ENABLED"
            )
            assert head["VersionId"] == row.version_id == stored[prefix + path][0]["VersionId"]
            assert head["ChecksumCRC64NVME"] == row.crc64nvme
            assert head["ObjectLockMode"] == "COMPLIANCE"
            assert head["ObjectLockRetainUntilDate"] == row.retain_until
            assert row.retain_until > utcnow() + timedelta(days=100 * 365)
        assert stored[f"{prefix}{WEIGHTS_DIR}/{BIG}"][0]["ETag"].endswith('-3"')  # 3 parts
        package = current_package(copy, prefix)
        validation = bagit_validates(package, tmp_path / copy.name)
        assert validation.returncode == 0, validation.stderr
        assert package[f"{WEIGHTS_DIR}/{BIG}"] == (weights / BIG).read_bytes()


def test_verification_checks_every_replica_fast_and_deep_and_records_each_check(
    site: Site, tmp_path: Path
) -> None:
    store = configured_store()
    run_id = start_run(site.ledger)
    summary = snapshot(
        site.ledger, store, str(write_weights(tmp_path / "w")), run_id, CountingReader()
    )
    assert not is_verified(site.ledger, summary.snapshot_id)

    result = verify_snapshot(
        site.ledger,
        store,
        snapshot_id=summary.snapshot_id,
        run_id=run_id,
        organization="Example Lab",
    )

    with site.ledger.session() as db:
        events = db.exec(select(FixityEvent)).all()
        held = {(h.replica, h.path): h for h in db.exec(select(PreservedObject))}
    assert result.replicas == ("primary", "replica")
    assert Counter((e.replica, e.method) for e in events) == {
        (replica, method): len(PACKAGE)
        for replica in ("primary", "replica")
        for method in ("fast", "deep")
    }
    for event in events:
        row = held[(event.replica, event.path)]
        assert (event.outcome, event.run_id, event.snapshot_id) == ("ok", run_id, row.snapshot_id)
        assert (event.bucket, event.version_id) == (row.bucket, row.version_id)
        assert event.bytes_read == (row.size if event.method == "deep" else 0)
        assert event.duration_s >= 0 and event.checked_at >= row.stored_at
        if event.method == "deep":
            assert event.detail == "SHA-256 and CRC64NVME of every byte match the record"
    assert is_verified(site.ledger, summary.snapshot_id)


def test_verification_with_all_digests_re_hashes_sha512_too(site: Site, tmp_path: Path) -> None:
    store = configured_store()
    run_id = start_run(site.ledger)
    summary = snapshot(
        site.ledger, store, str(write_weights(tmp_path / "w")), run_id, CountingReader()
    )
    path = f"{WEIGHTS_DIR}/{BIG}"
    with site.ledger.session() as db:  # a record whose SHA-512 alone is not the bytes'
        row = db.exec(
            select(PreservedObject).where(
                PreservedObject.replica == "replica", PreservedObject.path == path
            )
        ).one()
        row.sha512 = "0" * 128
        db.add(row)

    def verify(all_digests: bool) -> None:
        verify_snapshot(
            site.ledger,
            store,
            snapshot_id=summary.snapshot_id,
            run_id=run_id,
            organization="Example Lab",
            all_digests=all_digests,
        )

    verify(all_digests=False)  # SHA-256 and CRC64NVME: the bytes are the recorded ones
    with pytest.raises(VerificationFailed) as failed:
        verify(all_digests=True)

    assert f"replica:{path} (mismatch: SHA-512 differs from the record" in str(failed.value)


def test_a_package_whose_manifests_were_not_rewritten_fails_verification(
    site: Site, tmp_path: Path
) -> None:
    store = configured_store()
    run_id = start_run(site.ledger)
    weights = str(write_weights(tmp_path / "w", {"config.json": 100}))
    summary = snapshot(site.ledger, store, weights, run_id, CountingReader())

    add_payload(site.ledger, store, summary.snapshot_id, "data/report/report.md", b"# Report\n")

    with pytest.raises(VerificationFailed, match="manifest-sha512.txt \\(mismatch: not the tag"):
        verify_snapshot(
            site.ledger,
            store,
            snapshot_id=summary.snapshot_id,
            run_id=run_id,
            organization="Example Lab",
        )
    assert not is_verified(site.ledger, summary.snapshot_id)
    write_tag_files(site.ledger, store, summary.snapshot_id, "Example Lab")
    verify_snapshot(
        site.ledger,
        store,
        snapshot_id=summary.snapshot_id,
        run_id=run_id,
        organization="Example Lab",
    )
    assert is_verified(site.ledger, summary.snapshot_id)


def test_a_locked_version_cannot_be_deleted_shortened_or_overwritten(
    site: Site, tmp_path: Path
) -> None:
    store = configured_store()
    run_id = start_run(site.ledger)
    summary = snapshot(
        site.ledger, store, str(write_weights(tmp_path / "w")), run_id, CountingReader()
    )
    primary, replica = store.copies
    path = f"{WEIGHTS_DIR}/{BIG}"
    key = prefix_of(summary.location) + path
    with site.ledger.session() as db:
        row = db.exec(
            select(PreservedObject).where(
                PreservedObject.replica == "replica", PreservedObject.path == path
            )
        ).one()
    assert row.version_id

    with pytest.raises(ClientError, match="AccessDenied"):
        replica.client.delete_object(Bucket=replica.bucket, Key=key, VersionId=row.version_id)
    with pytest.raises(ClientError, match="AccessDenied"):
        replica.client.put_object_retention(
            Bucket=replica.bucket,
            Key=key,
            VersionId=row.version_id,
            Retention={"Mode": "COMPLIANCE", "RetainUntilDate": utcnow() + timedelta(days=1)},
        )
    # S3 cannot overwrite a version: a PUT stacks a new one in front of it, and a DELETE
    # without a version id stacks a delete marker. The preserved bytes stay as they were,
    # and verification notices that readers would no longer get them.
    replica.client.put_object(Bucket=replica.bucket, Key=key, Body=b"not the weights")
    primary.client.delete_object(Bucket=primary.bucket, Key=key)

    assert replica.read_digests(key, row.version_id).sha512 == row.sha512
    with pytest.raises(VerificationFailed) as failed:
        verify_snapshot(
            site.ledger,
            store,
            snapshot_id=summary.snapshot_id,
            run_id=run_id,
            organization="Example Lab",
        )
    assert f"primary:{path} (shadowed: a delete marker hides the preserved version)" in str(
        failed.value
    )
    assert f"replica:{path} (shadowed: version" in str(failed.value)
    assert not is_verified(site.ledger, summary.snapshot_id)


def test_verified_means_the_latest_fast_and_deep_checks_of_every_object_are_ok(
    site: Site, tmp_path: Path
) -> None:
    store = configured_store()
    run_id = start_run(site.ledger)
    summary = snapshot(
        site.ledger, store, str(write_weights(tmp_path / "w")), run_id, CountingReader()
    )
    verify_snapshot(
        site.ledger,
        store,
        snapshot_id=summary.snapshot_id,
        run_id=run_id,
        organization="Example Lab",
    )
    assert is_verified(site.ledger, summary.snapshot_id)  # every latest check is ok
    primary = store.primary
    path = f"{WEIGHTS_DIR}/{BIG}"
    prefix = prefix_of(summary.location)
    with site.ledger.session() as db:
        row = db.exec(
            select(PreservedObject).where(
                PreservedObject.replica == primary.name, PreservedObject.path == path
            )
        ).one()
    primary.client.put_object(Bucket=primary.bucket, Key=prefix + path, Body=b"newer")

    fast = fast_check(primary, prefix, [row])
    record(site.ledger, fast, run_id=run_id)
    deep = deep_check(primary, prefix + path, row)
    record(site.ledger, [deep], run_id=run_id)

    # The preserved version is intact, but a reader of the bucket gets the newer one: the
    # later deep check does not make the package verified again.
    assert [f.outcome for f in fast] == ["shadowed"] and deep.ok
    assert not is_verified(site.ledger, summary.snapshot_id)
    # A repair puts the preserved bytes back on top and checks them fast and deep again:
    # those are now the latest checks, and they pass.
    audit_id = audit.begin_audit(site.ledger, None, "audit-test")
    found = audit_checks.fast_audit(site.ledger, store, audit_id, Reach.doubling(0, 0.1))
    assert [(d.replica, d.path, d.outcome) for d in found.damaged] == [
        (primary.name, path, "shadowed")
    ]
    repaired = repair(site.ledger, store, audit_id, found.damaged, Reach.doubling(0, 0.1))
    assert len(repaired.repaired) == 1 and not repaired.irreparable
    assert is_verified(site.ledger, summary.snapshot_id)


def test_a_killed_snapshot_resumes_without_resending_and_equals_an_uninterrupted_one(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = configured_store()
    weights = write_weights(tmp_path / "weights")
    run_id = start_run(site.ledger)
    marker = tmp_path / "stalled"
    child = [sys.executable, "-m", "tests.snapshot_child", site.env["SUNSET_DATABASE_URL"]]
    child += [run_id, str(weights)]
    env = os.environ | {"PYTHONPATH": str(ROOT)}

    process = subprocess.Popen(
        [*child, "--stall", BIG, "2", str(marker)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        while not marker.exists():
            assert process.poll() is None, process.communicate()[0].decode()
            assert time.monotonic() < deadline, "the snapshot never reached the big file"
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate()

    with site.ledger.session() as db:
        run = db.get(DeprecationRun, run_id)
        snapshot_row_prefix = f"models/sunset-example-1/{run.started_at:%Y%m%dT%H%M%SZ}-"
    assert run is not None
    before = {copy.name: versions(copy, snapshot_row_prefix) for copy in store.copies}
    for copy in store.copies:  # killed in the middle of the big file's multipart upload
        (stored_key,) = before[copy.name]
        assert stored_key.endswith(f"{WEIGHTS_DIR}/config.json")
        uploads = copy.client.list_multipart_uploads(Bucket=copy.bucket).get("Uploads", [])
        assert [u["Key"].rsplit("/", 1)[1] for u in uploads] == [BIG]

    rerun = subprocess.run(child, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)

    assert rerun.returncode == 0, rerun.stderr
    assert "uploaded=3 skipped=1" in rerun.stdout
    prefix = next(iter(before["primary"])).split(WEIGHTS_DIR)[0]
    for copy in store.copies:
        after = versions(copy, prefix)
        assert {key.removeprefix(prefix) for key in after} == PACKAGE
        assert all(len(found) == 1 for found in after.values())  # nothing was sent twice
        for key, found in before[copy.name].items():
            assert after[key][0]["VersionId"] == found[0]["VersionId"]
        assert not copy.client.list_multipart_uploads(Bucket=copy.bucket).get("Uploads")

    # The same run, uninterrupted, into a ledger and buckets of its own.
    other = open_ledger(f"sqlite:///{tmp_path / 'other.db'}")
    register_example_models(other)
    start_run(other, run_id=run_id, at=run.started_at)
    monkeypatch.setenv("SUNSET_BUCKET", f"{store.bucket}-u")
    uninterrupted = configured_store()
    snapshot(other, uninterrupted, str(weights), run_id, CountingReader())
    other.dispose()
    for resumed, clean in zip(store.copies, uninterrupted.copies, strict=True):
        package = current_package(resumed, prefix)
        assert set(package) == PACKAGE
        assert package == current_package(clean, prefix)


def test_a_resumed_upload_keeps_the_parts_a_killed_process_left_and_sends_the_rest(
    site: Site, tmp_path: Path
) -> None:
    store = configured_store()
    weights = write_weights(tmp_path / "weights")
    run_id = start_run(site.ledger)
    with site.ledger.session() as db:
        run = db.get(DeprecationRun, run_id)
    assert run is not None
    path = f"{WEIGHTS_DIR}/{BIG}"
    key = package_prefix(EXAMPLE_MODEL_ID, snapshot_id_for(run)) + path
    data = (weights / BIG).read_bytes()
    until = store.retain_until() - timedelta(minutes=5)  # opened by the earlier process
    # As a killed process leaves it: parts 1 and 3 of the big file sent, part 2 not; on
    # the replica, part 1 holds other bytes (a source that changed since).
    for copy in store.copies:
        upload_id = copy.start_upload(key, retain_until=until)
        for number, chunk in ((1, data[:PART]), (3, data[2 * PART :])):
            if copy.name == "replica" and number == 1:
                chunk = bytes(len(chunk))
            crc = crc64nvme_b64(checksums.crc64nvme(chunk))
            copy.send_part(key, upload_id, number, chunk, crc)

    summary = snapshot(site.ledger, store, str(weights), run_id, CountingReader())

    others = sum(size for name, size in WEIGHTS.items() if name != BIG)
    # Part 2 to both replicas, part 1 again to the replica, every other file to both.
    assert summary.bytes_sent == 2 * others + 2 * PART + PART
    with site.ledger.session() as db:
        held = {h.replica: h for h in db.exec(select(PreservedObject)) if h.path == path}
    for copy in store.copies:
        assert not copy.client.list_multipart_uploads(Bucket=copy.bucket).get("Uploads")
        assert copy.get_bytes(key) == data
        head = copy.head(key)
        assert head is not None and head.version_id == held[copy.name].version_id
        assert (head.lock_mode, head.retain_until) == ("COMPLIANCE", until)
        assert held[copy.name].retain_until == until
    verify_snapshot(
        site.ledger,
        store,
        snapshot_id=summary.snapshot_id,
        run_id=run_id,
        organization="Example Lab",
    )


def test_small_files_are_recorded_in_batches_and_never_before_they_are_stored(
    site: Site, tmp_path: Path
) -> None:
    store = configured_store()
    names = [f"shard-{i:03d}.json" for i in range(150)]
    weights = write_weights(tmp_path / "weights", {name: 1000 + i for i, name in enumerate(names)})
    run_id = start_run(site.ledger)
    transactions = 0
    writes = False

    def wrote(_connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        nonlocal writes
        writes = writes or statement.lstrip().upper().startswith("INSERT INTO PRESERVED_OBJECTS")

    def committed(_connection: Any) -> None:
        nonlocal transactions, writes
        transactions, writes = transactions + writes, False

    sa.event.listen(site.ledger.engine, "before_cursor_execute", wrote)
    sa.event.listen(site.ledger.engine, "commit", committed)

    with pytest.raises(OSError, match="shard-100.json"):
        snapshot(site.ledger, store, str(weights), run_id, FailingReader("shard-100.json"))

    with site.ledger.session() as db:
        rows = db.exec(select(PreservedObject)).all()
        entries = db.exec(select(SnapshotFile)).all()
    recorded = {row.path.removeprefix(f"{WEIGHTS_DIR}/") for row in rows}
    # Everything before the failure was stored and recorded; the failed file was not.
    assert set(names[:100]) <= recorded and "shard-100.json" not in recorded
    assert {e.path for e in entries} == {row.path for row in rows}
    for row in rows:  # each record names a version the store holds, as recorded
        copy = store.copy(row.replica)
        assert copy is not None
        key = package_prefix(EXAMPLE_MODEL_ID, row.snapshot_id) + row.path
        stored = copy.head(key, row.version_id)
        assert stored is not None and (stored.size, stored.etag) == (row.size, row.etag)
    assert 0 < transactions < len(recorded) // 10

    reader = CountingReader()
    resumed = snapshot(site.ledger, store, str(weights), run_id, reader)

    assert set(reader.opened) == set(names) - recorded  # only what was not recorded
    assert resumed.uploaded_files == len(names) - len(recorded)


def test_a_file_that_became_unreadable_fails_before_its_upload_begins(
    site: Site, tmp_path: Path
) -> None:
    store = configured_store()
    weights = write_weights(tmp_path / "weights")
    reader = CountingReader()
    sources = reader.scan(str(weights))  # listed and read by preflight, then:
    (weights / BIG).unlink()
    (weights / BIG).mkdir()
    run_id = start_run(site.ledger)
    with site.ledger.session() as db:
        run, model = db.get(DeprecationRun, run_id), db.get(CatalogModel, EXAMPLE_MODEL_ID)
    assert run is not None and model is not None

    with pytest.raises(PreservationError) as failed:
        snapshot_weights(
            site.ledger,
            store,
            run=run,
            model=model,
            sources=sources,
            weights=reader,
            organization="Example Lab",
        )

    assert str(failed.value) == (
        f"Weights path {weights / BIG} is a directory where a file was listed; put the file "
        "back, then run again."
    )
    key = package_prefix(EXAMPLE_MODEL_ID, snapshot_id_for(run)) + f"{WEIGHTS_DIR}/{BIG}"
    for copy in store.copies:  # nothing of it was begun: no object, no upload left open
        assert key not in versions(copy)
        assert not copy.client.list_multipart_uploads(Bucket=copy.bucket).get("Uploads")


class KilledBeforeTheRecord(Exception):
    """As a SIGKILL between an upload and its record: the store holds it, the ledger not."""


def stored_but_not_recorded(
    monkeypatch: pytest.MonkeyPatch, site: Site, store: ReplicatedStore, weights: Path
) -> tuple[str, str]:
    """A snapshot that dies as it records the big file: config.json is recorded; the big
    file and those after it are stored, locked, on every replica, and recorded nowhere.
    Returns the run and the big file's key."""
    run_id = start_run(site.ledger)
    real_record = snapshot_module.record_stored

    def dies_recording_the_big_file(*args: Any, **kwargs: Any) -> None:
        if f"{WEIGHTS_DIR}/{BIG}" in args[3]:
            raise KilledBeforeTheRecord
        real_record(*args, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(snapshot_module, "record_stored", dies_recording_the_big_file)
        with pytest.raises(KilledBeforeTheRecord):
            snapshot(site.ledger, store, str(weights), run_id, CountingReader())
    with site.ledger.session() as db:
        run = db.get(DeprecationRun, run_id)
        recorded = db.exec(select(SnapshotFile.path)).all()
    assert run is not None and recorded == [f"{WEIGHTS_DIR}/config.json"]
    return run_id, package_prefix(EXAMPLE_MODEL_ID, snapshot_id_for(run)) + f"{WEIGHTS_DIR}/{BIG}"


def test_a_version_stored_but_never_recorded_is_adopted_when_it_holds_the_files_bytes(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = configured_store()
    weights = write_weights(tmp_path / "weights")
    run_id, big_key = stored_but_not_recorded(monkeypatch, site, store, weights)
    weights_prefix = big_key.rsplit("/", 1)[0]
    before = {copy.name: versions(copy, weights_prefix) for copy in store.copies}

    summary = snapshot(site.ledger, store, str(weights), run_id, CountingReader())

    assert summary.adopted_files == 3  # the big file and the two after it
    assert (summary.uploaded_files, summary.bytes_sent, summary.leftovers) == (0, 0, ())
    with site.ledger.session() as db:
        held = {(h.replica, h.path): h for h in db.exec(select(PreservedObject))}
        assert db.exec(select(LeftoverVersion)).all() == []
    for copy in store.copies:
        after = versions(copy, weights_prefix)
        assert after == before[copy.name]  # nothing stored twice
        for key, found in after.items():
            path = key.removeprefix(weights_prefix.removesuffix(WEIGHTS_DIR))
            assert held[(copy.name, path)].version_id == found[0]["VersionId"]
    verified = verify_snapshot(  # and the adopted versions hold the bytes, re-read whole
        site.ledger,
        store,
        snapshot_id=summary.snapshot_id,
        run_id=run_id,
        organization="Example Lab",
    )
    assert verified.passed


def test_a_version_stored_but_never_recorded_with_other_bytes_is_named_as_a_locked_leftover(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = configured_store()
    weights = write_weights(tmp_path / "weights")
    run_id, big_key = stored_but_not_recorded(monkeypatch, site, store, weights)
    orphans = {copy.name: versions(copy, big_key)[big_key][0] for copy in store.copies}
    (weights / BIG).write_bytes(bytes((weights / BIG).stat().st_size))  # same size, new bytes

    summary = snapshot(site.ledger, store, str(weights), run_id, CountingReader())

    assert summary.adopted_files == 2  # the two small files after it still match
    with site.ledger.session() as db:
        leftovers = db.exec(select(LeftoverVersion).order_by(col(LeftoverVersion.replica))).all()
    assert [(row.replica, row.bucket, row.key, row.version_id, row.size) for row in leftovers] == [
        (copy.name, copy.bucket, big_key, orphans[copy.name]["VersionId"], 2 * PART + 123)
        for copy in store.copies
    ]
    for row in leftovers:
        assert row.run_id == run_id and row.retain_until is not None
        assert row.retain_until > utcnow() + timedelta(days=100 * 365)
    assert summary.leftovers == tuple(
        f"s3://{row.bucket}/{big_key} version {row.version_id} ({2 * PART + 123} bytes, "
        f"locked until {row.retain_until:%Y-%m-%d})"
        for row in leftovers
        if row.retain_until is not None
    )
    for copy in store.copies:  # the package holds the file as it is now, on top
        assert copy.get_bytes(big_key) == (weights / BIG).read_bytes()
    with site.ledger.session() as db:  # the report names them, as preflight begins a run
        run = db.get(DeprecationRun, run_id)
        assert run is not None
        run.retirement_on = utcnow().date()
        db.add(run)
    report = render_report(site.ledger, run_id)
    for row in leftovers:
        assert (
            f"| {row.replica} | {inline(row.bucket)} | {inline(big_key)} | "
            f"{inline(row.version_id)} | {row.size} | {row.retain_until:%Y-%m-%d} |"
        ) in report
    rerun = snapshot(site.ledger, store, str(weights), run_id, CountingReader())
    assert rerun.leftovers == summary.leftovers  # known once, named again
    with site.ledger.session() as db:
        assert len(db.exec(select(LeftoverVersion)).all()) == len(leftovers)


def test_weights_under_an_s3_prefix_are_streamed_once_into_the_same_package(
    site: Site, tmp_path: Path
) -> None:
    store = configured_store()
    weights = write_weights(tmp_path / "weights")
    source = f"{store.bucket}-src"
    client = store.primary.client
    client.create_bucket(Bucket=source)
    client.put_object(Bucket=source, Key="models/acme/", Body=b"")  # a folder marker
    for name in WEIGHTS:
        client.upload_file(str(weights / name), source, f"models/acme/{name}")
    reader = CountingReader(weights_reader(Settings()).s3_client)
    gets: Counter[str] = Counter()

    def count_get(params: dict[str, Any], **_: Any) -> None:
        gets[params["Key"]] += 1

    reader.s3_client.meta.events.register("before-parameter-build.s3.GetObject", count_get)

    from_s3 = snapshot(
        site.ledger, store, f"s3://{source}/models/acme", start_run(site.ledger), reader
    )
    from_dir = snapshot(site.ledger, store, str(weights), start_run(site.ledger), CountingReader())

    assert gets == Counter(f"models/acme/{name}" for name in WEIGHTS)
    s3_package = current_package(store.primary, prefix_of(from_s3.location))
    dir_package = current_package(store.primary, prefix_of(from_dir.location))
    assert set(s3_package) == PACKAGE
    for path in PACKAGE - {"bag-info.txt", "tagmanifest-sha256.txt", "tagmanifest-sha512.txt"}:
        assert s3_package[path] == dir_package[path], path
    assert bagit_validates(s3_package, tmp_path / "bag").returncode == 0

    # Preflight's look at the same source: two one-byte reads of each object, no more.
    sources = reader.scan(f"s3://{source}/models/acme")
    reader.check_readable(sources)
    assert gets == Counter({f"models/acme/{name}": 3 for name in WEIGHTS})

    # An object that can no longer be read fails, named, before its upload begins.
    client.put_object(
        Bucket=source,
        Key=f"models/acme/{BIG}",
        Body=(weights / BIG).read_bytes(),
        SSECustomerAlgorithm="AES256",
        SSECustomerKey=os.urandom(32),
    )
    run_id = start_run(site.ledger)
    with site.ledger.session() as db:
        run, model = db.get(DeprecationRun, run_id), db.get(CatalogModel, EXAMPLE_MODEL_ID)
    assert run is not None and model is not None
    with pytest.raises(PreservationError, match=f"Weights object s3://{source}/models/acme/{BIG} "):
        snapshot_weights(
            site.ledger,
            store,
            run=run,
            model=model,
            sources=sources,
            weights=reader,
            organization="Example Lab",
        )
    for copy in store.copies:
        assert not copy.client.list_multipart_uploads(Bucket=copy.bucket).get("Uploads")


def test_deep_checks_take_the_longest_unchecked_first_within_the_budget(
    site: Site, tmp_path: Path
) -> None:
    store = configured_store()
    sizes = {f"shard-{i}.bin": 100_000 for i in range(4)}
    weights = write_weights(tmp_path / "weights", sizes)
    snapshot(site.ledger, store, str(weights), start_run(site.ledger), CountingReader())
    with site.ledger.session() as db:
        objects = {(h.replica, h.path): h.size for h in db.exec(select(PreservedObject))}
    budget = 250_000
    checked: list[tuple[str | None, str]] = []

    runs = []
    while len(set(checked)) < len(objects):
        audit_id = audit.begin_audit(site.ledger, None, "audit-test")
        summary = audit_checks.deep_audit(
            site.ledger,
            store,
            audit_id,
            Reach.doubling(0, 0.1),
            budget_bytes=budget,
            period=timedelta(days=1),
        )
        with site.ledger.session() as db:
            events = db.exec(select(FixityEvent).where(FixityEvent.audit_id == audit_id)).all()
        assert summary.objects_checked == len(events) and not summary.damaged
        assert sum(e.bytes_read for e in events) == summary.bytes_read <= budget
        assert summary.overdue_objects == 0  # all stored today, well within the period
        new = [(e.replica, e.path) for e in events]
        assert not set(new) & set(checked)  # nothing checked twice before everything once
        checked += new
        runs.append(summary)
        assert len(runs) < 10, "the deep share does not move on"

    assert sorted(checked) == sorted(objects)
    assert sum(objects.values()) > 3 * budget // 2  # it took several runs: the budget held
    later = audit_checks.deep_audit(
        site.ledger,
        store,
        audit.begin_audit(site.ledger, None, "audit-test"),
        Reach.doubling(0, 0.1),
        budget_bytes=1,
        period=timedelta(0),
    )
    assert later.objects_checked == 1  # one object at least, even over the budget
    assert later.overdue_objects == len(objects) - 1


REFUSALS = [
    "symlink",
    "fifo",
    "not-utf8",
    "empty",
    "empty-s3",
    "unreadable-s3",
    "unlocked-replica",
]


@pytest.mark.usefixtures("prefect_server")
@pytest.mark.parametrize("case", REFUSALS)
def test_a_refused_source_changes_nothing_in_buckets_ledger_or_mailboxes(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    from flows.deprecate import deprecate_model

    weights = write_weights(tmp_path / "weights", {"config.json": 100, "model.bin": 1000})
    store = configured_store()
    expected = {
        "symlink": "outside the weights directory",
        "fifo": "not a regular file",
        "not-utf8": "not valid UTF-8",
        "empty": "holds no files",
        "empty-s3": "holds no objects",
        "unreadable-s3": "model.bin cannot be read (InvalidArgument: Requests specifying",
        "unlocked-replica": "has no Object Lock",
    }[case]
    location = str(weights)
    if case == "symlink":
        (tmp_path / "secret").write_text("outside")
        (weights / "leak.bin").symlink_to(tmp_path / "secret")
    elif case == "fifo":
        os.mkfifo(weights / "pipe")
    elif case == "not-utf8":
        Path(os.fsdecode(bytes(weights) + b"/bad-\xff.bin")).write_bytes(b"x")
    elif case == "empty":
        location = str(tmp_path / "nothing")
        Path(location).mkdir()
    elif case == "empty-s3":
        store.primary.client.create_bucket(Bucket=f"{store.bucket}-src")
        location = f"s3://{store.bucket}-src/models/none/"
    elif case == "unreadable-s3":  # listed, but its bytes need a key Sunset does not hold
        source, client = f"{store.bucket}-src", store.primary.client
        client.create_bucket(Bucket=source)
        client.put_object(Bucket=source, Key="models/x/config.json", Body=b"{}")
        client.put_object(
            Bucket=source,
            Key="models/x/model.bin",
            Body=b"weights",
            SSECustomerAlgorithm="AES256",
            SSECustomerKey=os.urandom(32),
        )
        location = f"s3://{source}/models/x/"
    else:
        plain = f"{store.bucket}-plain"
        store.primary.client.create_bucket(Bucket=plain)
        monkeypatch.setenv("SUNSET_REPLICAS", f'[{{"name": "offsite", "bucket": "{plain}"}}]')
        store.copies.append(ObjectStore(store.primary.client, plain, "offsite"))
    before = _row_counts(site)

    with pytest.raises(InputError, match=re.escape(expected)):
        deprecate_model(
            DeprecationRequest(
                model_id="sunset-example-1", weights=location, recipients=str(site.recipients)
            )
        )

    assert _row_counts(site) == before
    for copy in store.copies:
        assert versions(copy) == {}
    assert site.mailbox() == []


def _row_counts(site: Site) -> dict[str, int]:
    with site.ledger.engine.connect() as connection:
        tables = sa.inspect(connection).get_table_names()
        return {
            table: connection.execute(sa.text(f'SELECT count(*) FROM "{table}"')).scalar_one()
            for table in tables
            if table != "alembic_version"
        }
