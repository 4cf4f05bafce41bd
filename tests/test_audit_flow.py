"""The audit_preservation flow against the real SeaweedFS: bit rot on disk and a deleted
object found and repaired, with alerts that say so; a replica's SeaweedFS stopped in the
middle of an audit, then restarted; no good copy failing loudly; locks kept ahead; and
the run's artifact and `sunset audit` telling what the ledger holds."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prefect import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterKey,
    FlowRunFilter,
    FlowRunFilterId,
)
from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter
from prefect.events.worker import EventsWorker
from sqlmodel import select

from flows.audit import audit_preservation
from sunset.errors import PreservationError
from sunset.ledger import (
    AuditAttempt,
    AuditFinding,
    AuditRun,
    FindingKind,
    FixityEvent,
    PreservedObject,
    utcnow,
)
from sunset.preservation.package import WEIGHTS_DIR
from sunset.preservation.replicas import ReplicatedStore
from sunset.preservation.snapshot import SnapshotSummary
from sunset.preservation.store import ObjectStore
from sunset_dev.devstack import ServiceHandle, s3_client, start_seaweedfs
from sunset_dev.example_model import EXAMPLE_MODEL_ID
from tasks.audit import ARTIFACT_KEY
from tasks.events import ALL_CLEAR_EVENT, AUDIT_INCOMPLETE_EVENT, FIXITY_FAILED_EVENT
from tests.conftest import Site
from tests.faults.tcp_relay import TcpRelay
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


def emitted(name: str, resource_id: str, *, at_least: int = 1) -> list[Any]:
    """The events ``name`` about ``resource_id`` the Prefect server holds, once at least
    ``at_least`` arrived, and a moment after, for any that would follow."""
    EventsWorker.drain_all()
    wanted = EventFilter(
        event=EventNameFilter(name=[name]), resource=EventResourceFilter(id=[resource_id])
    )
    deadline = time.monotonic() + 30
    with get_client(sync_client=True) as client:
        while len(client.read_events(filter=wanted, limit=50).events) < at_least:
            assert time.monotonic() < deadline, f"no {name} event about {resource_id}"
            time.sleep(0.5)
        time.sleep(1.5)
        return list(client.read_events(filter=wanted, limit=50).events)


def artifact_table(flow_run_id: str) -> tuple[dict[tuple[str, str], list[int]], str]:
    """The audit run's artifact: its table's counts by model and replica, and its text."""
    with get_client(sync_client=True) as client:
        [artifact] = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[ARTIFACT_KEY])),
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
        )
    text = str(artifact.data)
    rows = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 9 and cells[2].isdigit():
            rows[(cells[0], cells[1])] = [int(cell) for cell in cells[2:]]
    return rows, text


def counted_in_ledger(site: Site, audit_id: str) -> dict[tuple[str, str], list[int]]:
    """Per replica, what the ledger says the run did, in the artifact's columns: objects
    fast- and deep-checked, bytes re-read, objects damaged, repaired, locks extended,
    objects it could not check."""
    by_replica: dict[str, dict[str, set[str]]] = {}
    read: dict[str, int] = {}
    for event in audit_events(site, audit_id):
        replica = event.replica or ""
        columns = by_replica.setdefault(replica, {})
        if event.method in ("fast", "deep"):
            columns.setdefault(event.method, set()).add(event.path)
            if event.outcome in ("mismatch", "unlocked", "missing", "shadowed"):
                columns.setdefault("damaged", set()).add(event.path)
        elif event.outcome == "ok":
            columns.setdefault(event.method, set()).add(event.path)
        if event.method == "deep":
            read[replica] = read.get(replica, 0) + event.bytes_read
    with site.ledger.session() as db:
        unknown = db.exec(
            select(AuditFinding).where(
                AuditFinding.last_audit_id == audit_id,
                AuditFinding.kind == FindingKind.UNREACHABLE,
            )
        ).all()
    for finding in unknown:
        by_replica.setdefault(finding.replica, {}).setdefault("unreachable", set()).add(
            finding.path
        )
    order = ("fast", "deep", "read", "damaged", "repair", "retention", "unreachable")
    return {
        (EXAMPLE_MODEL_ID, replica): [
            read.get(replica, 0) if column == "read" else len(columns.get(column, set()))
            for column in order
        ]
        for replica, columns in by_replica.items()
    }


def sunset_audit() -> list[list[str]]:
    """`sunset audit` at 80 columns, in a process of its own: each line's cells."""
    env = os.environ | {"COLUMNS": "80"}
    done = subprocess.run(
        [sys.executable, "-m", "sunset.cli", "audit"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, done.stdout
    return [[cell.strip() for cell in line.split("│")] for line in lines]


def health_rows_in_ledger(site: Site) -> list[list[str]]:
    """The rows `sunset audit` must show for the one package, worked out from the ledger:
    replica, the day since which every object passed a fast and a deep check, the share
    of bytes deep-checked, what is open, and the earliest lock."""
    with site.ledger.session() as db:
        objects = db.exec(select(PreservedObject)).all()
        passed = db.exec(select(FixityEvent).where(FixityEvent.outcome == "ok")).all()
        still_open = db.exec(select(AuditFinding).where(AuditFinding.closed_at == None)).all()  # noqa: E711
    last_passed: dict[tuple[str, str, str], Any] = {}
    for event in passed:
        key = (event.replica or "", event.path, event.method)
        last_passed[key] = max(last_passed.get(key, event.checked_at), event.checked_at)
    rows = []
    for replica in sorted({o.replica for o in objects}):
        mine = [o for o in objects if o.replica == replica]
        since = {
            method: [
                moment
                if (moment := last_passed.get((replica, o.path, method)))
                and (moment >= o.stored_at)
                else None
                for o in mine
            ]
            for method in ("fast", "deep")
        }
        days = {
            method: "never" if None in moments else f"{min(moments):%Y-%m-%d}"  # type: ignore[type-var]
            for method, moments in since.items()
        }
        covered = sum(o.size for o, moment in zip(mine, since["deep"], strict=True) if moment)
        kinds = [f.kind for f in still_open if f.replica == replica]
        damaged = len([k for k in kinds if k != FindingKind.UNREACHABLE])
        unchecked = len(kinds) - damaged
        opened = [
            f"{damaged} damaged" if damaged else "",
            f"{unchecked} unchecked" if unchecked else "",
        ]
        rows.append(
            [
                replica,
                days["fast"],
                days["deep"],
                f"{100 * covered // sum(o.size for o in mine)}%",
                ", ".join(part for part in opened if part) or "none",
                f"{min(o.retain_until for o in mine):%Y-%m-%d}",
            ]
        )
    return rows


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
    assert found["detail"] == "sha512 differs from the manifest"
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
    shown = sunset_audit()
    assert any(line[0].startswith(f"Last audit: {result.name} completed") for line in shown)
    for row in health_rows_in_ledger(site):
        assert row in shown, (row, shown)
    events = audit_events(site, result.audit_id)
    bad = [e for e in events if e.outcome != "ok"]
    assert [(e.replica, e.path, e.method, e.outcome) for e in bad] == [
        ("replica", path, "deep", "mismatch")
    ]
    assert bad[0].version_id == rotten.version_id
    assert bad[0].detail == "sha512 differs from the manifest"
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

    result = audit_preservation()

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


@dataclass
class Offsite:
    """A replica on a SeaweedFS of its own, behind a relay whose address stays the same
    when SeaweedFS is stopped and started again (on ports of its own choosing)."""

    directory: Path
    relay: TcpRelay
    weed: ServiceHandle
    bucket: str = "offsite-packages"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.relay.port}"

    def stop(self) -> None:
        self.relay.hold()  # requests that come meanwhile reach a store that is gone
        self.weed.stop()
        self.relay.release()

    def restart(self) -> None:
        self.weed = start_seaweedfs(self.directory)
        self.relay.upstream = ("127.0.0.1", self.weed.port)


@pytest.fixture
def offsite(site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Offsite]:
    """SUNSET_REPLICAS naming one replica, 'offsite', on a SeaweedFS of its own."""
    directory = tmp_path / "offsite-seaweedfs"
    place = Offsite(directory, TcpRelay("127.0.0.1", 0), start_seaweedfs(directory))
    place.relay.upstream = ("127.0.0.1", place.weed.port)
    place.relay.start()
    try:
        client = s3_client(place.endpoint, "sunset-devstack", "sunset-devstack")
        ObjectStore(client, place.bucket, "offsite").ensure_bucket()
        replicas = [{"name": "offsite", "bucket": place.bucket, "endpoint_url": place.endpoint}]
        monkeypatch.setenv("SUNSET_REPLICAS", json.dumps(replicas))
        yield place
    finally:
        place.relay.stop()
        place.weed.stop()


def stop_at_first_deep_check(site: Site, offsite: Offsite) -> None:
    """Stop the offsite SeaweedFS as soon as the audit has deep-checked one object there."""
    deadline = time.monotonic() + 120
    first = select(FixityEvent).where(
        FixityEvent.replica == "offsite", FixityEvent.method == "deep"
    )
    while time.monotonic() < deadline:
        with site.ledger.session() as db:
            if db.exec(first).first() is not None:
                offsite.stop()
                return
        time.sleep(0.02)


@SQLITE
def test_a_replica_stopped_in_the_middle_of_an_audit_is_unknown_and_its_return_is_all_clear(
    site: Site, offsite: Offsite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUNSET_AUDIT_STORE_RETRIES", "2")
    monkeypatch.setenv("SUNSET_AUDIT_STORE_RETRY_SECONDS", "0.2")
    store, summary = preserve(site, write_weights(tmp_path / "weights"))
    assert [copy.name for copy in store.copies] == ["primary", "offsite"]
    offsite.relay.latency = 0.3  # keeps the audit among its offsite deep checks a while
    stopper = threading.Thread(target=stop_at_first_deep_check, args=(site, offsite))
    stopper.start()

    ended = audit_preservation(return_state=True)
    stopper.join(timeout=120)

    # A state that says the audit could not complete, not a failure, not "irreparable".
    assert (ended.type.value, ended.name) == ("FAILED", "Incomplete")
    assert "could not audit replica 'offsite'" in (ended.message or "")
    assert "no good copy" not in (ended.message or "")
    with site.ledger.session() as db:
        run = db.exec(select(AuditRun)).one()
        checks = db.exec(select(FixityEvent).where(FixityEvent.audit_id == run.id)).all()
        unknown = db.exec(select(AuditFinding)).all()
    assert (run.state, run.name) == ("incomplete", f"audit-{utcnow():%Y-%m-%d}")
    assert {check.outcome for check in checks} == {"ok"}  # no damage recorded
    assert [check for check in checks if check.method == "repair"] == []  # none attempted
    stopped_after = [c for c in checks if (c.replica, c.method) == ("offsite", "deep")]
    assert 0 < len(stopped_after) < OBJECTS  # it really stopped in the middle
    assert unknown and {(f.replica, f.kind) for f in unknown} == {
        ("offsite", FindingKind.UNREACHABLE)
    }
    [alert] = emitted(AUDIT_INCOMPLETE_EVENT, f"sunset.audit.{run.id}")
    assert "could not audit replica 'offsite'" in alert.payload["text"]
    assert re.search(r"Connection|Endpoint", alert.payload["replicas"]["offsite"])
    resource = f"sunset.snapshot.{summary.snapshot_id}"
    assert emitted(FIXITY_FAILED_EVENT, resource, at_least=0) == []

    offsite.relay.latency = 0
    offsite.restart()
    back = audit_preservation()
    again = audit_preservation()

    assert (back.state, back.damaged, back.unreachable, back.error) == ("completed", 0, {}, None)
    assert back.fast_checked == back.deep_checked == 2 * OBJECTS
    [cleared] = emitted(ALL_CLEAR_EVENT, resource)
    assert cleared.payload["model_id"] == EXAMPLE_MODEL_ID
    assert f"all clear for model {EXAMPLE_MODEL_ID}" in cleared.payload["text"]
    assert again.state == "completed" and again.all_clear == []
    assert len(emitted(ALL_CLEAR_EVENT, resource)) == 1
