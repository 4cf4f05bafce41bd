"""The audit_preservation flow against the real SeaweedFS: bit rot on disk and a deleted
object found and repaired, with an alert that says so; no good copy failing loudly; locks
kept ahead; and the run's artifact and `sunset audit` telling what the ledger holds. (A
replica stopped in the middle of an audit: test_audit_outage.py.)"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from prefect import get_client
from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter
from sqlmodel import select

from flows.audit import audit_preservation
from sunset.errors import PreservationError
from sunset.ledger import (
    AuditAttempt,
    AuditRun,
    FixityEvent,
    PreservedObject,
    utcnow,
)
from sunset.preservation.package import WEIGHTS_DIR
from sunset.preservation.replicas import ReplicatedStore
from sunset.preservation.snapshot import SnapshotSummary
from sunset_dev.example_model import EXAMPLE_MODEL_ID
from tasks.events import FIXITY_FAILED_EVENT
from tests.audit_views import (
    artifact_table,
    counted_in_ledger,
    emitted,
    health_rows_in_ledger,
    sunset_audit,
    sunset_cli,
)
from tests.conftest import Site
from tests.preservation import (
    PART,
    WEIGHTS,
    CountingReader,
    configured_store,
    rot_on_disk,
    snapshot,
    start_run,
    versions,
    write_weights,
)

pytestmark = pytest.mark.usefixtures("prefect_server")
BIG = "model-00001-of-00002.bin"
OBJECTS = len(WEIGHTS) + 6  # payload files and tag files, on each replica
SQLITE = pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
# A flipped bit, as the default deep check (SHA-256 and CRC64NVME) finds it.
ROT_FOUND = "SHA-256 differs from the record (re-hashed: SHA-256 and CRC64NVME)"


@pytest.fixture(autouse=True)
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUNSET_UPLOAD_PART_SIZE", str(PART))


def preserve(site: Site, weights: Path) -> tuple[ReplicatedStore, SnapshotSummary]:
    store = configured_store()
    summary = snapshot(site.ledger, store, str(weights), start_run(site.ledger), CountingReader())
    return store, summary


def audit_events(site: Site, audit_id: str) -> list[FixityEvent]:
    with site.ledger.session() as db:
        return list(
            db.exec(
                select(FixityEvent).where(FixityEvent.audit_id == audit_id).order_by(FixityEvent.id)  # type: ignore[arg-type]
            )
        )


def held(site: Site, replica: str, path: str) -> PreservedObject:
    with site.ledger.session() as db:
        return db.exec(
            select(PreservedObject).where(
                PreservedObject.replica == replica, PreservedObject.path == path
            )
        ).one()


def test_bit_rot_on_one_replica_is_found_by_deep_check_and_repaired_from_the_other(
    site: Site, tmp_path: Path
) -> None:
    weights = write_weights(tmp_path / "weights")
    store, summary = preserve(site, weights)
    path = f"{WEIGHTS_DIR}/{BIG}"
    key = summary.location.split("/", 3)[3] + path
    replica = store.copies[1]
    rotten = held(site, "replica", path)
    rot_on_disk(site.stack.seaweedfs_dir, replica.bucket, (weights / BIG).read_bytes())
    assert replica.head(key, rotten.version_id) is not None  # a HEAD cannot see it

    result = audit_preservation()

    assert (result.fast_checked, result.deep_checked) == (2 * OBJECTS, 2 * OBJECTS)
    assert (result.damaged, result.repaired, result.irreparable) == (1, 1, [])
    # The alert an on-call person reads: model, object, replica, what, repaired, the run.
    [alert] = emitted(FIXITY_FAILED_EVENT, f"sunset.snapshot.{summary.snapshot_id}")
    assert alert.resource["sunset.model-id"] == EXAMPLE_MODEL_ID
    [found] = alert.payload["objects"]
    assert (found["replica"], found["path"], found["found"], found["repaired"]) == (
        "replica",
        path,
        "damaged",
        True,
    )
    assert found["detail"] == ROT_FOUND
    text = alert.payload["text"]
    assert f"model {EXAMPLE_MODEL_ID}" in text and f"{path} on replica 'replica' damaged" in text
    assert "repaired: mismatch: restored from primary" in text
    assert f"audit run {result.name}" in text and result.name == f"audit-{utcnow():%Y-%m-%d}"
    with site.ledger.session() as db:
        flow_run_id = db.get(AuditRun, result.audit_id).flow_run_id  # type: ignore[union-attr]
    assert alert.payload["run_url"].endswith(f"/runs/flow-run/{flow_run_id}")
    assert alert.payload["run_url"] in text
    # The run's artifact and `sunset audit` say what the ledger holds.
    table, artifact = artifact_table(str(flow_run_id))
    assert table == counted_in_ledger(site, result.audit_id)
    assert table[(EXAMPLE_MODEL_ID, "replica")][3:5] == [1, 1]  # damaged, repaired
    assert "Deep-coverage clock: the oldest deep check is 0 day(s) old" in artifact
    assert "compared its SHA-256 and CRC64NVME with the record" in artifact
    shown = sunset_audit()
    assert any(line[0].startswith(f"Last audit: {result.name} completed") for line in shown)
    for row in health_rows_in_ledger(site):
        assert row in shown, (row, shown)
    status = " ".join(" ".join(sunset_cli("status", EXAMPLE_MODEL_ID)).split())
    assert f"Package health: no open damage; fast-checked ok since {utcnow():%Y-%m-%d}" in status
    events = audit_events(site, result.audit_id)
    bad = [e for e in events if e.outcome != "ok"]
    assert [(e.replica, e.path, e.method, e.outcome) for e in bad] == [
        ("replica", path, "deep", "mismatch")
    ]
    assert bad[0].version_id == rotten.version_id
    assert bad[0].detail == ROT_FOUND
    assert bad[0].bytes_read == rotten.size
    repaired = held(site, "replica", path)
    assert repaired.version_id != rotten.version_id
    repair, *rechecks = [e for e in events if e.path == path and e.replica == "replica"][-3:]
    assert (repair.method, repair.outcome) == ("repair", "ok")
    assert f"restored from primary version {held(site, 'primary', path).version_id}" in (
        repair.detail or ""
    )
    assert [(e.method, e.outcome, e.version_id) for e in rechecks] == [
        ("fast", "ok", repaired.version_id),
        ("deep", "ok", repaired.version_id),
    ]
    assert replica.get_bytes(key) == (weights / BIG).read_bytes()
    with site.ledger.session() as db:
        run = db.get(AuditRun, result.audit_id)
        steps = db.exec(select(AuditAttempt).where(AuditAttempt.run_id == result.audit_id)).all()
    assert run is not None and run.state == "completed" and run.summary
    assert [(s.step, s.state) for s in steps] == [
        (step, "completed")
        for step in (
            "fast_verify",
            "deep_verify",
            "repair_damage",
            "extend_retention",
            "conclude_audit",
        )
    ]

    again = audit_preservation()

    assert (again.damaged, again.repaired, again.irreparable) == (0, 0, [])


@SQLITE
def test_an_object_deleted_on_one_replica_is_found_and_restored(site: Site, tmp_path: Path) -> None:
    weights = write_weights(tmp_path / "weights")
    store, summary = preserve(site, weights)
    path = f"{WEIGHTS_DIR}/config.json"
    key = summary.location.split("/", 3)[3] + path
    primary = store.primary
    primary.client.delete_object(Bucket=primary.bucket, Key=key)  # a delete marker
    assert primary.head(key) is None

    result = audit_preservation(all_digests=True)

    assert (result.damaged, result.repaired, result.irreparable) == (1, 1, [])
    events = audit_events(site, result.audit_id)
    [found] = [e for e in events if e.outcome != "ok"]
    assert (found.replica, found.path, found.method, found.outcome) == (
        "primary",
        path,
        "fast",
        "shadowed",
    )
    assert found.detail == "a delete marker hides the preserved version"
    [repair] = [e for e in events if e.method == "repair"]
    assert "restored from replica" in (repair.detail or "")
    assert primary.get_bytes(key) == (weights / "config.json").read_bytes()
    assert primary.head(key).version_id == held(site, "primary", path).version_id  # type: ignore[union-attr]
    # Asked for every digest, each deep check, the repaired version's too, re-hashed SHA-512.
    every = "SHA-256, SHA-512 and CRC64NVME of every byte match the record"
    deep = [e for e in events if e.method == "deep"]
    assert deep and all(e.detail == every for e in deep)
    assert any(e.path == path and e.replica == "primary" for e in deep)
    with site.ledger.session() as db:
        flow_run_id = db.get(AuditRun, result.audit_id).flow_run_id  # type: ignore[union-attr]
    _, artifact = artifact_table(str(flow_run_id))
    assert "compared its SHA-256, SHA-512 and CRC64NVME with the record" in artifact


@SQLITE
def test_no_good_copy_left_fails_the_audit_loudly_and_emits_an_event(
    site: Site, tmp_path: Path
) -> None:
    weights = write_weights(tmp_path / "weights")
    store, summary = preserve(site, weights)
    for copy in store.copies:
        rot_on_disk(site.stack.seaweedfs_dir, copy.bucket, (weights / BIG).read_bytes())

    with pytest.raises(PreservationError, match="no good copy left") as failed:
        audit_preservation()

    assert f"{summary.snapshot_id} primary:{WEIGHTS_DIR}/{BIG}" in str(failed.value)
    assert f"{summary.snapshot_id} replica:{WEIGHTS_DIR}/{BIG}" in str(failed.value)
    with site.ledger.session() as db:
        run = db.exec(select(AuditRun)).one()
        repairs = db.exec(select(FixityEvent).where(FixityEvent.method == "repair")).all()
    assert run.state == "failed" and "no good copy" in (run.error or "")
    assert [(r.replica, r.outcome) for r in repairs] == [
        ("primary", "failed"),
        ("replica", "failed"),
    ]
    resource = f"sunset.snapshot.{summary.snapshot_id}"
    found = {}
    # The loud one for a lost object, and the one the operators' alert automation hears.
    for name in ("sunset.preservation.irreparable", FIXITY_FAILED_EVENT):
        wanted = EventFilter(
            event=EventNameFilter(name=[name]), resource=EventResourceFilter(id=[resource])
        )
        deadline = time.monotonic() + 30
        with get_client(sync_client=True) as client:
            while not (events := client.read_events(filter=wanted, limit=10).events):
                assert time.monotonic() < deadline, f"no {name} event"
                time.sleep(0.5)
        found[name] = events[0].payload
    assert len(found["sunset.preservation.irreparable"]["objects"]) == 2
    assert len(found[FIXITY_FAILED_EVENT]["irreparable"]) == 2


@SQLITE
def test_the_heartbeat_extends_locks_before_they_come_within_the_margin(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUNSET_RETENTION_DAYS", "2")
    monkeypatch.setenv("SUNSET_RETENTION_MARGIN_DAYS", "1")
    store, summary = preserve(site, write_weights(tmp_path / "weights"))
    prefix = summary.location.split("/", 3)[3]
    monkeypatch.setenv("SUNSET_RETENTION_DAYS", "30")
    monkeypatch.setenv("SUNSET_RETENTION_MARGIN_DAYS", "10")

    result = audit_preservation()

    assert result.retention_extended == 2 * OBJECTS
    for copy in store.copies:
        for key, found in versions(copy, prefix).items():
            [version] = found
            head = copy.client.head_object(
                Bucket=copy.bucket, Key=key, VersionId=version["VersionId"]
            )
            until = head["ObjectLockRetainUntilDate"]
            assert utcnow() + timedelta(days=29) < until <= utcnow() + timedelta(days=30)
            assert head["ObjectLockMode"] == "COMPLIANCE"
            assert held(site, copy.name, key.removeprefix(prefix)).retain_until == until
    extended = [e for e in audit_events(site, result.audit_id) if e.method == "retention"]
    assert len(extended) == 2 * OBJECTS and all(e.outcome == "ok" for e in extended)

    assert audit_preservation().retention_extended == 0  # 30 days left, more than the margin


@SQLITE
def test_sunset_audit_run_with_all_digests_re_hashes_sha512_in_every_deep_check(
    site: Site, tmp_path: Path
) -> None:
    preserve(site, write_weights(tmp_path / "weights"))

    sunset_cli("audit", "--run", "--all-digests")

    with site.ledger.session() as db:
        deep = db.exec(select(FixityEvent).where(FixityEvent.method == "deep")).all()
    assert len(deep) == 2 * OBJECTS
    assert {e.detail for e in deep} == {
        "SHA-256, SHA-512 and CRC64NVME of every byte match the record"
    }
