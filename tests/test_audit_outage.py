"""A replica's SeaweedFS stopped in the middle of an audit, then started again: what it
holds is unknown, never damage, nothing is repaired from or to it, one alert says the
audit could not complete; once it is back, the next audit is clean and one all-clear is
sent."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlmodel import select

from flows.audit import audit_preservation
from sunset.ledger import AuditFinding, AuditRun, FindingKind, FixityEvent, utcnow
from sunset.preservation.store import ObjectStore
from sunset_dev.devstack import ServiceHandle, s3_client, start_seaweedfs
from sunset_dev.example_model import EXAMPLE_MODEL_ID
from tasks.events import ALL_CLEAR_EVENT, AUDIT_INCOMPLETE_EVENT, FIXITY_FAILED_EVENT
from tests.audit_views import emitted
from tests.conftest import Site
from tests.faults.tcp_relay import TcpRelay
from tests.preservation import (
    PART,
    WEIGHTS,
    CountingReader,
    configured_store,
    snapshot,
    start_run,
    write_weights,
)

pytestmark = [
    pytest.mark.usefixtures("prefect_server"),
    pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True),
]
OBJECTS = len(WEIGHTS) + 6  # payload files and tag files, on each replica


@pytest.fixture(autouse=True)
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUNSET_UPLOAD_PART_SIZE", str(PART))


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


def test_a_replica_stopped_in_the_middle_of_an_audit_is_unknown_and_its_return_is_all_clear(
    site: Site, offsite: Offsite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUNSET_AUDIT_STORE_RETRIES", "2")
    monkeypatch.setenv("SUNSET_AUDIT_STORE_RETRY_SECONDS", "0.2")
    weights = str(write_weights(tmp_path / "weights"))
    store = configured_store()
    summary = snapshot(site.ledger, store, weights, start_run(site.ledger), CountingReader())
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
