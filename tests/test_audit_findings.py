"""What an audit knows, against the real SeaweedFS: a replica that does not answer is
unknown, never damage, and nothing is repaired from or to it; a short outage is ridden
out by retries; damage whose only good copy cannot be reached waits instead of being
called irreparable; a package found healthy again gets one all-clear."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import select

from sunset.ledger import AuditFinding, AuditState, FindingKind, FixityEvent
from sunset.preservation.findings import REACHED, REPAIRED
from sunset.preservation.health import model_package_health
from sunset.preservation.package import WEIGHTS_DIR
from sunset.preservation.replicas import ReplicatedStore
from sunset.preservation.snapshot import SnapshotSummary
from sunset_dev.example_model import EXAMPLE_MODEL_ID
from tests.conftest import Site
from tests.faults.tcp_relay import TcpRelay
from tests.preservation import (
    PART,
    WEIGHTS,
    CountingReader,
    audit_in_process,
    configured_store,
    impatient,
    rot_on_disk,
    snapshot,
    start_run,
    with_copy,
    write_weights,
)

pytestmark = pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
OBJECTS = len(WEIGHTS) + 6  # payload files and tag files, on each replica
BIG = "model-00001-of-00002.bin"
NOWHERE = "http://127.0.0.1:9"  # nothing listens there: every request is refused


@pytest.fixture(autouse=True)
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUNSET_UPLOAD_PART_SIZE", str(PART))


def preserve(site: Site, tmp_path: Path) -> tuple[ReplicatedStore, SnapshotSummary]:
    store = configured_store()
    weights = str(write_weights(tmp_path / "weights"))
    return store, snapshot(site.ledger, store, weights, start_run(site.ledger), CountingReader())


def findings(site: Site) -> list[AuditFinding]:
    with site.ledger.session() as db:
        return list(db.exec(select(AuditFinding).order_by(AuditFinding.id)))  # type: ignore[arg-type]


def events(site: Site, audit_id: str) -> list[FixityEvent]:
    with site.ledger.session() as db:
        return list(db.exec(select(FixityEvent).where(FixityEvent.audit_id == audit_id)))


def test_a_replica_that_does_not_answer_is_unknown_and_its_return_is_one_all_clear(
    site: Site, tmp_path: Path
) -> None:
    store, summary = preserve(site, tmp_path)
    down = with_copy(store, impatient(store.copies[1], NOWHERE))

    outage = audit_in_process(site.ledger, down)

    assert outage.state == AuditState.INCOMPLETE
    assert list(outage.unreachable) == ["replica"]
    assert "EndpointConnectionError" in outage.unreachable["replica"]
    assert (outage.fast_checked, outage.deep_checked, outage.damaged) == (OBJECTS, OBJECTS, 0)
    assert outage.unchecked == OBJECTS and outage.repaired == 0
    assert outage.error and "could not audit replica 'replica'" in outage.error
    checks = events(site, outage.audit_id)
    # Only what was learned is a fixity event: the primary's checks, all of them ok.
    assert {(e.replica, e.outcome) for e in checks} == {("primary", "ok")}
    assert [(f.replica, f.kind) for f in findings(site)] == [
        ("replica", FindingKind.UNREACHABLE)
    ] * OBJECTS
    health = model_package_health(site.ledger, EXAMPLE_MODEL_ID, 90)
    assert health is not None and not health.healthy
    assert f"{OBJECTS} check(s) could not be made" in health.one_line()
    assert "no open damage" in health.one_line()

    back = audit_in_process(site.ledger, store)
    again = audit_in_process(site.ledger, store)

    assert back.state == AuditState.COMPLETED and back.error is None
    [cleared] = back.all_clear
    assert (cleared.snapshot_id, cleared.model_id) == (summary.snapshot_id, EXAMPLE_MODEL_ID)
    assert (cleared.objects, cleared.repaired) == (OBJECTS, 0)
    assert {(f.resolution, f.closed_audit_id) for f in findings(site)} == {(REACHED, back.audit_id)}
    assert again.state == AuditState.COMPLETED and again.all_clear == []
    health = model_package_health(site.ledger, EXAMPLE_MODEL_ID, 90)
    assert health is not None and health.healthy


def test_retries_with_backoff_ride_out_a_short_outage(site: Site, tmp_path: Path) -> None:
    store, _ = preserve(site, tmp_path)
    upstream = store.copies[1].endpoint.removeprefix("http://").split(":")
    with TcpRelay(upstream[0], int(upstream[1])) as relay:
        relay.drop_next = 2  # the first listing and its first retry are reset
        flaky = with_copy(store, impatient(store.copies[1], f"http://127.0.0.1:{relay.port}"))

        result = audit_in_process(site.ledger, flaky, delays=(0.01, 0.02, 0.04))

    assert relay.dropped == 2
    assert result.state == AuditState.COMPLETED and result.unreachable == {}
    assert (result.fast_checked, result.damaged) == (2 * OBJECTS, 0)
    assert findings(site) == []


def test_damage_whose_only_good_copy_cannot_be_reached_waits_and_is_repaired_later(
    site: Site, tmp_path: Path
) -> None:
    store, summary = preserve(site, tmp_path)
    path = f"{WEIGHTS_DIR}/{BIG}"
    original = (tmp_path / "weights" / BIG).read_bytes()
    rot_on_disk(site.stack.seaweedfs_dir, store.primary.bucket, original)
    down = with_copy(store, impatient(store.copies[1], NOWHERE))

    waiting = audit_in_process(site.ledger, down)

    assert waiting.state == AuditState.INCOMPLETE  # not failed: nothing is proven lost
    assert waiting.irreparable == [] and len(waiting.deferred) == 1
    assert "not known this run: replica" in waiting.deferred[0]
    [repair] = [e for e in events(site, waiting.audit_id) if e.method == "repair"]
    assert (repair.replica, repair.path, repair.outcome) == ("primary", path, "deferred")
    [damage] = [f for f in findings(site) if f.kind != FindingKind.UNREACHABLE]
    assert (damage.replica, damage.path, damage.kind) == ("primary", path, FindingKind.DAMAGED)

    repaired = audit_in_process(site.ledger, store)

    assert repaired.state == AuditState.COMPLETED and repaired.repaired == 1
    [cleared] = repaired.all_clear
    assert (cleared.objects, cleared.repaired) == (OBJECTS + 1, 1)
    closed = {(f.replica, f.path, f.kind): f.resolution for f in findings(site)}
    assert closed[("primary", path, FindingKind.DAMAGED)] == REPAIRED
    key = summary.location.split("/", 3)[3] + path
    assert store.primary.get_bytes(key) == original
