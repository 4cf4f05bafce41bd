"""The serving-status state machine, driven by Hypothesis through sequences of operations.

Runs are begun, finished, have notices sent, files stored, checked (well or badly) and
reports sealed, in any order, while flips to deprecated and retired are attempted along the
way, all through Sunset's real functions on a real SQLite ledger. A model of what must hold,
kept by the test itself, predicts every flip; and whatever the sequence, no model is ever
retired without a verified package and a sealed report.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, precondition, rule
from sqlmodel import select

from sunset.errors import GuardRefused, InputError, RunConflict
from sunset.ledger import (
    CatalogModel,
    DeprecationRun,
    FixityEvent,
    Ledger,
    PreservedObject,
    Report,
    RunState,
    ServingStatus,
    Snapshot,
    SnapshotFile,
    StatusTransition,
    open_ledger,
    utcnow,
)
from sunset.runs.attempts import record_attempt
from sunset.runs.lifecycle import begin_run, finish_run
from sunset.runs.steps import NOTIFY_STEP
from sunset.serving.guards import flip_status
from sunset.serving.lifecycle import DEPRECATION, TRANSITIONS

MODEL = "m1"
PATHS = ("data/weights/a.bin", "data/weights/b.bin")
TARGETS = (ServingStatus.DEPRECATED, ServingStatus.RETIRED)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated ledger with one active model, copied afresh for every example."""
    path = tmp_path_factory.mktemp("template") / "ledger.db"
    ledger = open_ledger(f"sqlite:///{path}")
    with ledger.session() as db:
        db.add(CatalogModel(id=MODEL, display_name="M1"))
    ledger.dispose()
    return path


def _no_fsync(connection: Any, record: Any) -> None:
    connection.execute("PRAGMA synchronous=OFF")


@dataclass
class RunFacts:
    """What the test knows it did for one run."""

    notified: bool = False
    stored: dict[str, int] = field(default_factory=dict)  # path -> when it was stored
    checked: dict[str, tuple[int, bool]] = field(default_factory=dict)  # path -> (when, ok)
    sealed: bool = False

    def verified(self) -> bool:
        return bool(self.stored) and all(
            path in self.checked
            and self.checked[path][1]
            and self.checked[path][0] > self.stored[path]
            for path in self.stored
        )


class ServingMachine(RuleBasedStateMachine):
    template: Path
    outcomes: Counter[str] = Counter()  # across examples: proof the search went somewhere

    runs = Bundle("runs")

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp())
        shutil.copy(self.template, self.directory / "ledger.db")
        self.ledger = Ledger(f"sqlite:///{self.directory / 'ledger.db'}")
        # A throwaway file: no fsync per commit, so hundreds of sequences fit in seconds.
        sa.event.listen(self.ledger.engine, "connect", _no_fsync)
        self.facts: dict[str, RunFacts] = {}
        self.clock = 0
        self.begun = 0
        self.latest = "none"
        self.latest_snapshot_run: str | None = None  # whose snapshot is the model's newest

    def teardown(self) -> None:
        self.ledger.dispose()
        shutil.rmtree(self.directory, ignore_errors=True)

    def tick(self) -> int:
        self.clock += 1
        return self.clock

    def status(self) -> ServingStatus:
        with self.ledger.session() as db:
            model = db.get(CatalogModel, MODEL)
            assert model is not None
            return ServingStatus(model.serving_status)

    def run_state(self, run_id: str) -> RunState:
        with self.ledger.session() as db:
            run = db.get(DeprecationRun, run_id)
            assert run is not None
            return RunState(run.state)

    # ------------------------------------------------------------------ operations

    @precondition(lambda self: self.begun < 4)
    @rule(target=runs, retire=st.booleans(), weights=st.sampled_from(["/w1", "/w2"]))
    def begin(self, retire: bool, weights: str) -> str:
        # The same request again resumes its unfinished run; a different one supersedes it
        # once the run before it has stopped.
        self.begun += 1
        target = ServingStatus.RETIRED if retire else ServingStatus.DEPRECATED
        try:
            run = begin_run(
                self.ledger,
                model_id=MODEL,
                kind=DEPRECATION,
                parameters={"weights": weights, "retire": retire},
                target=target,
                flow_run_id=f"f{self.begun}",
                lease_seconds=3600,
            )
        except RunConflict:
            assert any(self.run_state(r) == RunState.RUNNING for r in self.facts)
            return "none"
        except InputError:
            assert self.status() in (target, ServingStatus.RETIRED)
            return "none"
        self.facts.setdefault(run.id, RunFacts())
        self.latest = run.id
        return run.id

    @rule(run=runs, failed=st.booleans())
    def finish(self, run: str, failed: bool) -> None:
        if run in self.facts and self.run_state(run) == RunState.RUNNING:
            finish_run(self.ledger, run, error="stopped" if failed else None)

    @rule(run=runs, completed=st.booleans())
    def notify(self, run: str, completed: bool) -> None:
        if run not in self.facts:
            return
        try:
            with record_attempt(self.ledger, run_id=run, step=NOTIFY_STEP, flow_run_id=None):
                if not completed:
                    raise ConnectionError("relay down")
        except ConnectionError:
            return
        self.facts[run].notified = True

    @rule(run=runs, path=st.sampled_from(PATHS))
    def store(self, run: str, path: str) -> None:
        if run not in self.facts:
            return
        with self.ledger.session() as db:
            snapshot = db.exec(select(Snapshot).where(Snapshot.run_id == run)).first()
            if snapshot is None:
                snapshot = Snapshot(
                    id=f"s-{run}", run_id=run, model_id=MODEL, endpoint="e", bucket="b", prefix="p/"
                )
                db.add(snapshot)
                db.flush()
                self.latest_snapshot_run = run
            row = db.exec(
                select(SnapshotFile).where(
                    SnapshotFile.snapshot_id == snapshot.id, SnapshotFile.path == path
                )
            ).first() or SnapshotFile(
                snapshot_id=snapshot.id,
                path=path,
                size=1,
                sha256="0" * 64,
                sha512="0" * 128,
                crc64nvme="AAAAAAAAAAA=",
            )
            row.stored_at = utcnow()
            db.add(row)
            held = db.exec(
                select(PreservedObject).where(
                    PreservedObject.snapshot_id == snapshot.id, PreservedObject.path == path
                )
            ).first() or PreservedObject(
                snapshot_id=snapshot.id,
                replica="primary",
                endpoint="e",
                bucket="b",
                path=path,
                size=1,
                sha256="0" * 64,
                sha512="0" * 128,
                crc64nvme="AAAAAAAAAAA=",
                retain_until=utcnow() + timedelta(days=1),
            )
            held.stored_at = row.stored_at
            db.add(held)
        self.facts[run].stored[path] = self.tick()

    @rule(run=runs, path=st.sampled_from(PATHS), ok=st.booleans())
    def check(self, run: str, path: str, ok: bool) -> None:
        if run not in self.facts or path not in self.facts[run].stored:
            return
        with self.ledger.session() as db:
            for method in ("fast", "deep"):
                db.add(
                    FixityEvent(
                        snapshot_id=f"s-{run}",
                        run_id=run,
                        bucket="b",
                        replica="primary",
                        path=path,
                        method=method,
                        outcome="ok" if ok else "mismatch",
                    )
                )
        self.facts[run].checked[path] = (self.tick(), ok)

    @precondition(lambda self: bool(self.facts))
    @rule(run=runs, seal=st.booleans())
    def do_the_steps(self, run: str, seal: bool) -> None:
        """What a run that goes well does before its flip: notify, store, check, seal."""
        self.notify(run, completed=True)
        for path in PATHS:
            self.store(run, path)
            self.check(run, path, ok=True)
        if seal:
            self.seal(run)

    @rule(run=runs)
    def seal(self, run: str) -> None:
        if run not in self.facts or not self.facts[run].stored:
            return
        with self.ledger.session() as db:
            version = len(db.exec(select(Report).where(Report.run_id == run)).all()) + 1
            db.add(
                Report(
                    run_id=run,
                    snapshot_id=f"s-{run}",
                    version=version,
                    key="k",
                    sha256="0" * 64,
                    local_path="/r.md",
                )
            )
        self.facts[run].sealed = True

    @precondition(lambda self: self.latest != "none")
    @rule(to=st.sampled_from(TARGETS))
    def flip_the_latest_run(self, to: ServingStatus) -> None:
        self.flip(self.latest, to)

    @precondition(lambda self: bool(self.facts))
    @rule(run=runs, to=st.sampled_from(TARGETS))
    def flip(self, run: str, to: ServingStatus) -> None:
        target = to
        if run not in self.facts:
            return
        facts, before = self.facts[run], self.status()
        with self.ledger.session() as db:
            done = db.exec(
                select(StatusTransition).where(
                    StatusTransition.run_id == run, StatusTransition.to_status == target
                )
            ).first()
        live = self.run_state(run) == RunState.RUNNING
        # The guards look at the model's newest package: for deprecation it must be this
        # run's; for retirement it must be verified and carry a sealed report.
        newest = self.latest_snapshot_run
        package = self.facts.get(newest) if newest else None
        allowed = live and (
            done is not None
            or (
                target in TRANSITIONS[before]
                and (facts.notified or target == ServingStatus.RETIRED)
                and package is not None
                and package.verified()
                and (target != ServingStatus.DEPRECATED or newest == run)
                and (target != ServingStatus.RETIRED or package.sealed)
            )
        )
        try:
            flip_status(self.ledger, run_id=run, target=target, actor="hypothesis", reason="r")
        except GuardRefused:
            assert not allowed, f"refused a flip to {target} that every guard allows"
            assert self.status() == before
            self.outcomes["refused"] += 1
            return
        self.outcomes[target.value] += 1
        assert allowed, f"flipped {before} -> {target} without {facts}"
        if done is None:
            assert self.status() == target
        if target == ServingStatus.RETIRED and done is None:
            # The property: never retired without a verified package and a sealed report.
            assert package is not None and package.verified() and package.sealed

    # ------------------------------------------------------------------ always

    @invariant()
    def the_status_is_the_last_transition_and_every_step_was_allowed(self) -> None:
        with self.ledger.session() as db:
            transitions = db.exec(select(StatusTransition).order_by(StatusTransition.id)).all()
        status = ServingStatus.ACTIVE
        for transition in transitions:
            assert transition.from_status == status
            assert ServingStatus(transition.to_status) in TRANSITIONS[status]
            status = ServingStatus(transition.to_status)
        assert self.status() == status


def test_no_sequence_of_operations_retires_a_model_without_its_guards(template: Path) -> None:
    ServingMachine.template = template
    machine = settings(
        max_examples=60,
        stateful_step_count=30,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
        derandomize=True,
        database=None,
    )(ServingMachine)
    machine.TestCase().runTest()

    assert min(ServingMachine.outcomes[k] for k in ("refused", "deprecated", "retired")) > 0
