"""The fast check is one version listing and reads no object; the deep check re-reads the
version and confirms its lock; against the real SeaweedFS."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
from sqlmodel import select

from sunset.ledger import PreservedObject
from sunset.preservation.fixity import deep_check, fast_check, still_held
from sunset.preservation.package import WEIGHTS_DIR
from sunset.preservation.replicas import ReplicatedStore
from sunset.preservation.snapshot import SnapshotSummary
from sunset.preservation.store import ObjectStore
from tests.conftest import Site
from tests.preservation import (
    PART,
    CountingReader,
    configured_store,
    rot_on_disk,
    snapshot,
    start_run,
    write_weights,
)

pytestmark = pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
BIG = f"{WEIGHTS_DIR}/model-00001-of-00002.bin"


@pytest.fixture(autouse=True)
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUNSET_UPLOAD_PART_SIZE", str(PART))


def preserve(site: Site, tmp_path: Path) -> tuple[ReplicatedStore, SnapshotSummary, str]:
    store = configured_store()
    weights = str(write_weights(tmp_path / "weights"))
    summary = snapshot(site.ledger, store, weights, start_run(site.ledger), CountingReader())
    return store, summary, summary.location.split("/", 3)[3]


def primary_rows(site: Site) -> list[PreservedObject]:
    with site.ledger.session() as db:
        return list(
            db.exec(
                select(PreservedObject)
                .where(PreservedObject.replica == "primary")
                .order_by(PreservedObject.path)
            )
        )


@contextmanager
def s3_requests(copy: ObjectStore) -> Iterator[Counter[str]]:
    """Count the requests ``copy`` makes, by operation name."""
    made: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        made[model.name] += 1

    copy.client.meta.events.register("before-call.s3", count)
    try:
        yield made
    finally:
        copy.client.meta.events.unregister("before-call.s3", count)


def test_a_fast_check_of_a_whole_package_is_one_version_listing(site: Site, tmp_path: Path) -> None:
    store, _, prefix = preserve(site, tmp_path)
    rows = primary_rows(site)
    assert len(rows) == 10 and all(row.etag for row in rows)

    with s3_requests(store.primary) as made:
        findings = fast_check(store.primary, prefix, rows)

    assert made == {"ListObjectVersions": 1}  # no HEAD, no GET, whatever the object count
    assert [f.path for f in findings] == [row.path for row in rows]
    assert all(f.ok and f.method == "fast" and f.bytes_read == 0 for f in findings)
    assert [f.version_id for f in findings] == [row.version_id for row in rows]


def test_a_fast_check_finds_a_new_version_a_delete_marker_and_a_changed_record(
    site: Site, tmp_path: Path
) -> None:
    store, _, prefix = preserve(site, tmp_path)
    primary = store.primary
    rows = {row.path: row for row in primary_rows(site)}
    config, tokenizer = f"{WEIGHTS_DIR}/config.json", f"{WEIGHTS_DIR}/tokenizer/tokenizer.json"
    newer = primary.client.put_object(Bucket=primary.bucket, Key=prefix + BIG, Body=b"other")
    primary.client.delete_object(Bucket=primary.bucket, Key=prefix + config)
    small = f"{WEIGHTS_DIR}/model-00002-of-00002.bin"
    # What the store would show had a version itself changed or gone: records that no
    # longer agree with it.
    rows[small] = rows[small].model_copy(update={"size": rows[small].size + 1})
    rows["bagit.txt"] = rows["bagit.txt"].model_copy(update={"etag": '"0000"'})
    rows[tokenizer] = rows[tokenizer].model_copy(update={"version_id": "no-such-version"})

    with s3_requests(primary) as made:
        findings = {f.path: f for f in fast_check(primary, prefix, list(rows.values()))}

    assert made == {"ListObjectVersions": 1}
    assert {path: f.outcome for path, f in findings.items() if not f.ok} == {
        BIG: "shadowed",
        config: "shadowed",
        small: "mismatch",
        "bagit.txt": "mismatch",
        tokenizer: "missing",
    }
    assert findings[BIG].detail == (
        f"version {newer['VersionId']} stands in front of the preserved version"
    )
    assert findings[config].detail == "a delete marker hides the preserved version"
    assert "listed size 1048576" in (findings[small].detail or "")
    assert "recorded 1048577" in (findings[small].detail or "")
    assert '"0000"' in (findings["bagit.txt"].detail or "")
    assert findings[tokenizer].detail == "version no-such-version is gone"


def test_a_listing_the_store_refuses_is_unreadable_to_a_check_and_an_error_to_a_resume(
    site: Site, tmp_path: Path
) -> None:
    store, _, prefix = preserve(site, tmp_path)
    rows = primary_rows(site)
    gone = ObjectStore(store.primary.client, f"{store.bucket}-never-made", "primary")

    findings = fast_check(gone, prefix, rows)

    assert {f.outcome for f in findings} == {"unreadable"}
    assert "NoSuchBucket" in (findings[0].detail or "")
    # A resumed snapshot must not take a failed listing for "nothing stored" and resend.
    with pytest.raises(botocore.exceptions.ClientError, match="NoSuchBucket"):
        still_held(gone, prefix, rows)
    assert still_held(store.primary, prefix, rows) == rows


def test_a_deep_check_rehashes_the_version_and_confirms_its_lock(
    site: Site, tmp_path: Path
) -> None:
    store, _, prefix = preserve(site, tmp_path)
    [row] = [r for r in primary_rows(site) if r.path == BIG]

    with s3_requests(store.primary) as made:
        intact = deep_check(store.primary, prefix + BIG, row)
    later = row.retain_until + timedelta(days=1)
    too_short = deep_check(
        store.primary, prefix + BIG, row.model_copy(update={"retain_until": later})
    )

    assert made == {"GetObject": 1}  # the lock comes with the bytes
    assert (intact.outcome, intact.bytes_read) == ("ok", row.size)
    assert intact.detail == "SHA-256 and CRC64NVME of every byte match the record"
    assert too_short.outcome == "unlocked"
    assert f"required COMPLIANCE until {later:%Y-%m-%dT%H:%M:%SZ}" in (too_short.detail or "")


def test_a_deep_check_finds_one_flipped_bit_by_its_sha256(site: Site, tmp_path: Path) -> None:
    store, _, prefix = preserve(site, tmp_path)
    [row] = [r for r in primary_rows(site) if r.path == BIG]
    original = (tmp_path / "weights" / BIG.removeprefix(f"{WEIGHTS_DIR}/")).read_bytes()
    rot_on_disk(site.stack.seaweedfs_dir, store.primary.bucket, original)

    rotten = deep_check(store.primary, prefix + BIG, row)

    assert (rotten.outcome, rotten.bytes_read) == ("mismatch", row.size)
    assert rotten.detail == "SHA-256 differs from the record (re-hashed: SHA-256 and CRC64NVME)"


def test_only_a_deep_check_of_all_digests_re_hashes_sha512(site: Site, tmp_path: Path) -> None:
    store, _, prefix = preserve(site, tmp_path)
    [row] = [r for r in primary_rows(site) if r.path == BIG]
    other_sha512 = row.model_copy(update={"sha512": "0" * 128})  # the bytes are intact

    by_default = deep_check(store.primary, prefix + BIG, other_sha512)
    every = deep_check(store.primary, prefix + BIG, other_sha512, all_digests=True)
    intact = deep_check(store.primary, prefix + BIG, row, all_digests=True)

    assert (by_default.outcome, by_default.detail) == (
        "ok",
        "SHA-256 and CRC64NVME of every byte match the record",
    )
    assert (every.outcome, every.detail) == (
        "mismatch",
        "SHA-512 differs from the record (re-hashed: SHA-256, SHA-512 and CRC64NVME)",
    )
    assert (intact.outcome, intact.detail) == (
        "ok",
        "SHA-256, SHA-512 and CRC64NVME of every byte match the record",
    )
