"""The lineage of the crash-anywhere tests: one deprecation killed again and again as it
moves forward (at the points of ``crash_points.py``), started each time with the same
command, until a last run ends it; and what that end must be.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pytest
from sqlmodel import col, select

from sunset.ledger import (
    AttemptState,
    CatalogModel,
    Delivery,
    DeprecationRun,
    Report,
    RunState,
    StatusTransition,
    StepAttempt,
    utcnow,
)
from sunset.runs.deliveries import unknown_deliveries
from sunset.runs.steps import (
    FLIP_STEP,
    INTERVIEW_STEP,
    NOTIFY_STEP,
    REPORT_STEP,
    SNAPSHOT_STEP,
    VERIFY_STEP,
)
from sunset_dev.devstack import read_mailbox
from sunset_dev.example_model import EXAMPLE_MODEL_ID
from tests.conftest import Site
from tests.reliability.conftest import Reference, wait_until
from tests.reliability.crash_points import CrashPoint, Faults, Probe
from tests.reliability.tally import TALLY
from tests.reliability.world import (
    PROTOCOL_TURNS,
    World,
    answered_once,
    bag_problems,
    manifest_lines,
    question_of,
    source_weights,
    standin_faults,
    standin_requests,
    weights_of,
)

LEASE_SECONDS = 2  # the least Settings allows: each kill waits for it to lapse
POINT_TIMEOUT = 90.0


class Started(Protocol):
    """A started ``sunset`` process, however it was started."""

    def returncode(self) -> int | None: ...

    def wait(self, timeout: float) -> int: ...

    def kill(self, *, alone: bool = False) -> None:
        """SIGKILL the command and what it started; ``alone``: the command's process only,
        as ``kill -9 PID`` does, so what it started (a temporary server) keeps running."""
        ...

    def output(self) -> str: ...


class Starter(Protocol):
    def start(self, name: str, *argv: str, **env: str) -> Started: ...


class SlotWatch(Protocol):
    """Who holds the model's one deprecation slot, seen from outside."""

    def taken_by_a_newcomer(self) -> bool:
        """A holder never seen before holds the slot now."""
        ...

    def bound(self, after_stranding: bool) -> float:
        """Seconds a run may take from its start to holding the slot."""
        ...


@dataclass
class Lineage:
    """One deprecation, started again and again with the same command.

    Each rerun must get where it is going within its time: the next kill point within
    ``point_timeout``, and the last run to the end within ``final_timeout``; one that does
    not is counted in the tally's "reruns that did not finish", and fails the test.
    """

    runner: Starter
    argv: list[str]
    env: dict[str, str]
    probe: Probe
    faults: Faults
    point_timeout: float = POINT_TIMEOUT
    slots: SlotWatch | None = None
    log: list[str] = field(default_factory=list)
    stranded: bool = False  # the last kill left the slot held by an unrecorded lease

    def crash_at(self, number: int, point: CrashPoint) -> None:
        point.prepare(self.faults)
        start = self.probe.counts()
        child = self.runner.start(f"crash-{number:02d}", *self.argv, **self.env)
        started = time.monotonic()
        armed = point.arm_when is None
        holds_slot_after: float | None = None
        while True:
            if child.returncode() is not None:
                pytest.fail(f"run ended before point {number} ({point.where}):\n{child.output()}")
            if holds_slot_after is None and self.slots and self.slots.taken_by_a_newcomer():
                holds_slot_after = time.monotonic() - started
            if not armed and point.arm_when(self.probe, start):  # type: ignore[misc]
                point.arm(self.faults)
                armed = True
            if armed and point.kill_when(self.probe, start):
                break
            if time.monotonic() > started + self.point_timeout:
                child.kill()
                TALLY.unfinished_reruns += 1
                pytest.fail(f"point {number} ({point.where}) not reached:\n{child.output()}")
            time.sleep(0.02)
        child.kill(alone=point.command_alone)
        self.faults.calm()
        if self.slots is not None:
            bound = self.slots.bound(after_stranding=self.stranded)
            assert holds_slot_after is not None and holds_slot_after <= bound, (
                f"run {number} held the model's slot only after {holds_slot_after} s "
                f"(bound {bound} s):\n{child.output()}"
            )
            waited = f", held the slot after {holds_slot_after:.1f} s"
        else:
            waited = ""
        self.stranded = point.strands_slot
        self.log.append(f"{number:2d}. {point.step}: {point.where}{waited}")

    def wait_for_the_lease(self) -> None:
        """Wait until the killed run's ledger lease lapses (if it had begun a run)."""

        def lapsed() -> bool:
            with self.probe.ledger.session() as db:
                run = db.exec(select(DeprecationRun)).one_or_none()
            return run is None or run.lease_expires_at is None or run.lease_expires_at <= utcnow()

        wait_until(lapsed, LEASE_SECONDS + 10, "the killed run's lease to lapse", interval=0.1)

    def finish(self, timeout: float) -> Started:
        """Run the command once more, to the end; it must succeed within ``timeout``."""
        final = self.runner.start("crash-final", *self.argv, **self.env)
        try:
            final.wait(timeout)
        except TimeoutError:
            TALLY.unfinished_reruns += 1
            pytest.fail(f"the last rerun did not finish in {timeout} s:\n{final.output()}")
        if final.returncode() != 0:
            TALLY.unfinished_reruns += 1
            pytest.fail(f"the last rerun failed:\n{final.output()[-4000:]}")
        return final


def decide_unknown_deliveries(
    runner: Starter, env: dict[str, str], world: World, outcome: str
) -> int:
    """Settle, as a release manager would, each notice the last run's ``outcome`` names as
    of unknown fate: ask the relay (here its Maildir) for the Message-ID Sunset put in the
    mail, count the notice as delivered if it holds it, else send it again, each through
    ``sunset deliveries decide``. Counts what is still unknown after that (what the
    outcome did not name, or a decision did not settle) in the tally, and returns how
    many were decided.
    """
    named = " ".join(outcome.split())  # the terminal may have wrapped the sentence
    unknown = unknown_deliveries(world.ledger)
    with world.ledger.session() as db:
        message_ids = {d.delivery_id: db.get(Delivery, d.delivery_id) for d in unknown}
    on_relay = {str(m["Message-ID"]) for m in read_mailbox(world.maildir)}
    decided = 0
    for delivery in unknown:
        if f"{delivery.recipient} ({delivery.channel}" not in named:
            continue
        row = message_ids[delivery.delivery_id]
        assert row is not None
        held = row.message_id in on_relay
        decision = "--count-as-delivered" if held else "--resend"
        reason = (
            f"the relay holds Message-ID {row.message_id}"
            if held
            else f"the relay has no Message-ID {row.message_id}"
        )
        argv = ["deliveries", "decide", EXAMPLE_MODEL_ID, "--recipient", delivery.recipient]
        child = runner.start("decide", *argv, decision, "--reason", reason, **env)
        assert child.wait(120) == 0, child.output()
        decided += 1
    left = unknown_deliveries(world.ledger)
    TALLY.undecided_unknown_deliveries += len(left)
    TALLY.deliveries_decided += decided
    assert left == [], f"notices of unknown fate left undecided: {left}"
    return decided


def assert_deprecated_once(site: Site, kills: int) -> list[Report]:
    """One status transition, a completed run, every step completed and no attempt left
    looking alive; at least one and at most ``kills`` attempts abandoned by a killed run
    (none when no run was killed). The reports, oldest first."""
    with site.ledger.session() as db:
        [transition] = db.exec(select(StatusTransition)).all()
        assert (transition.from_status, transition.to_status) == ("active", "deprecated")
        model = db.get(CatalogModel, EXAMPLE_MODEL_ID)
        assert model is not None and model.serving_status == "deprecated"
        [run] = db.exec(select(DeprecationRun)).all()
        assert run.state == RunState.COMPLETED
        attempts = db.exec(select(StepAttempt)).all()
        reports = db.exec(select(Report).order_by(col(Report.version))).all()
    assert all(a.state != AttemptState.RUNNING for a in attempts)
    abandoned = [a for a in attempts if (a.error or "").startswith("Abandoned")]
    assert min(kills, 1) <= len(abandoned) <= kills
    assert {a.step for a in attempts if a.state == AttemptState.COMPLETED} >= {
        NOTIFY_STEP,
        SNAPSHOT_STEP,
        VERIFY_STEP,
        INTERVIEW_STEP,
        REPORT_STEP,
        FLIP_STEP,
    }
    return list(reports)


def report_facts(report: str) -> dict[str, object]:
    """What two reports of the same deprecation must share, whatever crashed in between.

    Left out, because they rightly differ: run and snapshot ids, timestamps, request ids,
    latencies, retry counts, the bucket and endpoint, and the table of step attempts (a
    crashed run honestly lists its abandoned attempts).
    """
    weights_rows = sorted(  # the manifest's rows (path, bytes, SHA-256), not the checks'
        line
        for line in report.splitlines()
        if line.startswith("| data/weights/") and line.count("|") == 4
    )
    digest = re.search(r"Weights manifest digest .*: ([0-9a-f]{64})", report)
    turns = re.findall(r"^#### Turn (\d+): (\S+)", report, re.M)
    answers = re.findall(r"^```+text\n(.*?)\n```+$", report, re.M | re.S)
    return {
        "weights": weights_rows,
        "manifest digest": digest and digest.group(1),
        "turns": turns,
        "questions and answers": answers,
    }


def assert_ends_as_an_uninterrupted_run(
    site: Site,
    world: World,
    reference: Reference,
    users: Path,
    since: float,
    kills: int,
    scratch: Path,
    questions_killed: int,
) -> None:
    """The lineage, resumed to its end, ended exactly where an uninterrupted run ends
    (``questions_killed``: how many kills landed with a question in flight)."""
    stack = site.stack.endpoints
    # Nothing lost: every weights file, every notice, every answer of the uninterrupted run.
    package = world.package(EXAMPLE_MODEL_ID)
    expected = weights_of(reference.package)
    emails = [line.split(",")[0] for line in users.read_text().splitlines()[1:]]
    mails, answers = world.mails_by_recipient(), world.answers(EXAMPLE_MODEL_ID)
    lost = [path for path, digest in expected.items() if weights_of(package).get(path) != digest]
    lost += [email for email in emails if not mails[email]]
    lost += [key for key, text in reference.answers.items() if answers.get(key) != text]
    TALLY.lost(lost)
    assert lost == []

    # The package: the same weights, byte for byte, and the same manifest lines for them.
    assert expected == source_weights(site.weights)
    for algorithm in ("sha256", "sha512"):
        assert manifest_lines(package, algorithm) == manifest_lines(reference.package, algorithm)
    assert bag_problems(package, scratch / "bag") == []

    # Each recipient told once.
    assert mails == Counter({email: 1 for email in emails})

    # Each question answered once: one turn in the ledger, one answered request at the API.
    assert answers == reference.answers
    log = standin_requests(stack.messages_base_url, since, EXAMPLE_MODEL_ID)
    TALLY.faults.update(standin_faults(log))
    assert set(answered_once(log).values()) == {1}
    held = [question_of(e) for e in log if e["status"] != 200]  # killed while in flight
    assert len(held) == questions_killed and all(e["status"] in (200, 529) for e in log)
    ordered = [answers[(1, turn.question_id)] for turn in PROTOCOL_TURNS]
    for entry in log:
        if entry["status"] == 200:  # a resumed session replays exactly what was recorded
            replayed = [m["content"] for m in entry["json"]["messages"] if m["role"] == "assistant"]
            assert replayed == ordered[: len(replayed)]

    reports = assert_deprecated_once(site, kills)
    assert world.broken_promises() == []
    # No silent leftover: a version a kill left unrecorded was adopted or named.
    assert world.unexplained_weights_versions() == []

    # The report: the newest version is what the package holds, and it states the same
    # facts as the uninterrupted run's report.
    latest = reports[-1]
    sealed = Path(latest.local_path).read_text()
    assert package["data/report/report.md"].decode() == sealed
    assert report_facts(sealed) == report_facts(reference.report)
