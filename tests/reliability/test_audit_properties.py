"""The preservation audit, driven by Hypothesis through store outages, blips and real
damage, against the real SeaweedFS.

Each example preserves a small package on two replicas, each reached through a relay
that can refuse every connection (an outage, for the length of one audit) or the next
one (a blip). Audits run with any replicas down, and versions are hidden behind newer
ones between them, in any order. A model kept by the test predicts every audit: whatever
the sequence, no damage is ever recorded that was not done, nothing is checked or
repaired on a replica that is down, a run with a replica down ends incomplete (never
failed, never "irreparable"), damage on a replica that answers is repaired in the run
that finds it, and a package that an earlier run left with open findings gets exactly
one all-clear when it is whole again.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from sqlmodel import col, select

from sunset.ledger import (
    AuditFinding,
    AuditState,
    FindingKind,
    FixityEvent,
    Ledger,
    open_ledger,
)
from sunset.preservation.outcomes import finding_kind
from sunset.preservation.replicas import ReplicatedStore
from sunset.preservation.store import ObjectStore
from sunset_dev.devstack import DevStack, s3_client
from sunset_dev.example_model import register_example_models
from tests.faults.tcp_relay import TcpRelay
from tests.preservation import (
    CountingReader,
    audit_in_process,
    impatient,
    snapshot,
    start_run,
)
from tests.reliability.tally import TALLY

REPLICAS = ("primary", "replica")
WEIGHTS = {"config.json": 200, "model.bin": 3000, "tokenizer.json": 500}
PATHS = tuple(f"data/weights/{name}" for name in WEIGHTS)
DOWN = 10**9  # connections a relay refuses: all of them, for as long as the outage lasts
DELAYS = (0.005, 0.01)  # the audit's waits before asking a silent replica again


class AuditMachine(RuleBasedStateMachine):
    stack: DevStack
    template: Path
    weights: Path
    relays: dict[str, TcpRelay]
    # Across examples, proof that the search went somewhere: audits by how they ended,
    # objects repaired, all-clears given.
    seen: Counter[str] = Counter()

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp())
        shutil.copy(self.template, self.directory / "ledger.db")
        self.ledger = Ledger(f"sqlite:///{self.directory / 'ledger.db'}")
        direct = s3_client(self.stack.endpoints.s3_endpoint, *self.stack.s3_credentials)
        bucket = f"am-{uuid.uuid4().hex[:12]}"
        # The store itself, reached directly: how the test damages it.
        self.direct = {name: ObjectStore(direct, f"{bucket}-{name}", name) for name in REPLICAS}
        for copy in self.direct.values():
            copy.ensure_bucket()
        for relay in self.relays.values():
            relay.drop_next = 0
        result = snapshot(
            self.ledger, self.store(), str(self.weights), start_run(self.ledger), CountingReader()
        )
        self.prefix = result.location.split("/", 3)[3]
        self.down: set[str] = set()  # the replicas that refused every connection last audit
        self.damaged: set[tuple[str, str]] = set()  # (replica, path) hidden, not yet repaired
        self.ever_damaged: set[tuple[str, str]] = set()
        self.left_open = False  # the last audit left findings open

    def teardown(self) -> None:
        self.ledger.dispose()
        shutil.rmtree(self.directory, ignore_errors=True)

    def store(self) -> ReplicatedStore:
        """The store as the audit sees it: every replica through its relay, with a fresh
        connection pool, so that an outage begun since the last audit shows at once."""
        return ReplicatedStore(
            copies=[
                impatient(self.direct[name], f"http://127.0.0.1:{self.relays[name].port}")
                for name in REPLICAS
            ],
            part_size=5 * 1024 * 1024,
            retention=timedelta(days=2),
        )

    # ------------------------------------------------------------------ operations

    @rule(replica=st.sampled_from(REPLICAS))
    def blip(self, replica: str) -> None:
        """The next connection is reset: a retry rides it out."""
        self.relays[replica].drop_next = 1

    @rule(replica=st.sampled_from(REPLICAS), path=st.sampled_from(PATHS))
    def hide(self, replica: str, path: str) -> None:
        """Real damage: a newer version stands in front of the preserved one."""
        copy = self.direct[replica]
        copy.client.put_object(Bucket=copy.bucket, Key=self.prefix + path, Body=b"intruder")
        self.damaged.add((replica, path))
        self.ever_damaged.add((replica, path))

    @rule(down=st.sets(st.sampled_from(REPLICAS)))
    def audit(self, down: set[str]) -> None:
        """An audit while the replicas in ``down`` refuse every connection."""
        self.down = down
        for name in down:
            self.relays[name].drop_next = DOWN
        dropped = sum(relay.dropped for relay in self.relays.values())
        result = audit_in_process(self.ledger, self.store(), delays=DELAYS)
        TALLY.fault("s3 outage", sum(r.dropped for r in self.relays.values()) - dropped)
        for relay in self.relays.values():
            relay.drop_next = 0  # the outage is over, and a blip not used up is forgotten
        self.seen.update(
            {result.state: 1, "repaired": result.repaired, "all-clear": len(result.all_clear)}
        )
        checks = self.checks(result.audit_id)

        assert result.state != AuditState.FAILED, result.error
        assert set(result.unreachable) == self.down
        assert {e.replica for e in checks} <= set(REPLICAS) - self.down, "a down replica checked"
        if self.down:
            assert result.state == AuditState.INCOMPLETE
            assert result.error and all(f"replica {r!r}" in result.error for r in self.down)
        else:
            assert result.state == AuditState.COMPLETED, result.error
        # Damage on a replica that answers is found and repaired in the same run.
        found = {(e.replica, e.path) for e in checks if finding_kind(e.outcome) is not None}
        reachable = {(r, p) for r, p in self.damaged if r not in self.down}
        assert found == reachable
        assert {(e.replica, e.path) for e in checks if e.method == "repair"} == reachable
        assert result.repaired == len(reachable)
        self.damaged -= reachable
        assert len(result.all_clear) == (1 if self.left_open and not self.down else 0)
        self.left_open = bool(self.down)

    # ------------------------------------------------------------------ always

    @invariant()
    def no_false_damage(self) -> None:
        with self.ledger.session() as db:
            events = db.exec(select(FixityEvent)).all()
            still_open = db.exec(
                select(AuditFinding).where(col(AuditFinding.closed_at).is_(None))
            ).all()
        recorded = {(e.replica, e.path) for e in events if finding_kind(e.outcome) is not None}
        assert recorded <= self.ever_damaged, "damage recorded that was never done"
        open_damage = {(f.replica, f.path) for f in still_open if f.kind != FindingKind.UNREACHABLE}
        assert open_damage <= self.damaged, "damage open that is not there"

    def checks(self, audit_id: str) -> list[Any]:
        with self.ledger.session() as db:
            return list(db.exec(select(FixityEvent).where(FixityEvent.audit_id == audit_id)))


@pytest.fixture
def template(tmp_path: Path) -> Path:
    """A migrated ledger with the example models, copied afresh for every example."""
    path = tmp_path / "ledger.db"
    ledger = open_ledger(f"sqlite:///{path}")
    register_example_models(ledger)
    ledger.dispose()
    return path


def test_no_sequence_of_outages_and_damage_makes_the_audit_report_false_damage(
    stack: DevStack, template: Path, tmp_path: Path
) -> None:
    weights = tmp_path / "weights"
    for name, size in WEIGHTS.items():
        (weights / name).parent.mkdir(parents=True, exist_ok=True)
        (weights / name).write_bytes(random.Random(name).randbytes(size))
    host, port = stack.endpoints.s3_endpoint.removeprefix("http://").split(":")
    with TcpRelay(host, int(port)) as primary, TcpRelay(host, int(port)) as replica:
        AuditMachine.stack, AuditMachine.template, AuditMachine.weights = stack, template, weights
        AuditMachine.relays = {"primary": primary, "replica": replica}
        machine = settings(
            max_examples=8,
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
            derandomize=True,
            database=None,
        )(AuditMachine)
        machine.TestCase().runTest()

    assert all(
        AuditMachine.seen[k] > 0 for k in ("completed", "incomplete", "repaired", "all-clear")
    )
