"""Kill points of the crash-anywhere tests: where a run is killed, the probe that sees it
get there, and the faults that hold it there.

A point is an observation of the ledger ("2 notices sent", "3 weights files stored",
"turn 4 answered"), made from outside while the process runs. To hold the process at a
known place when the kill lands, a real fault slows the next thing it does: an SMTP
connection held before its banner, an S3 request held before it is forwarded, a Messages
request held and then refused, a slow Prefect API. ``SUNSET_CRASH_SEED`` picks the points;
the same seed kills at the same ones.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlmodel import col, func, select

from sunset.ledger import (
    Delivery,
    DeprecationRun,
    FixityEvent,
    InterviewTurn,
    Ledger,
    Report,
    Snapshot,
    SnapshotFile,
    StatusTransition,
    StepAttempt,
)
from sunset.runs.steps import (
    FLIP_STEP,
    INTERVIEW_STEP,
    NOTIFY_STEP,
    REPORT_STEP,
    SNAPSHOT_STEP,
    VERIFY_STEP,
)
from tests.faults.s3_proxy import S3FaultProxy
from tests.faults.tcp_relay import TcpRelay
from tests.reliability.world import PROTOCOL_TURNS, standin

SEED = int(os.environ.get("SUNSET_CRASH_SEED", "7"))
# The stand-in keeps the request for this long, then refuses it: the process is inside
# the call when it is killed, and the log shows the question was never answered.
HELD_REQUEST = {"delay": 8.0, "status": 529}
TRANSCRIPT = "data/interview/session-1.jsonl"


class Probe:
    """Progress of the run, read from the ledger (and the stand-in) while the process works."""

    def __init__(self, ledger: Ledger, messages: str) -> None:
        self.ledger = ledger
        self.messages = messages

    def question_held(self, since: float) -> bool:
        """The stand-in holds a question: the process is waiting inside the API call."""
        log = standin(self.messages, "GET", "/_standin/requests")
        return any(
            e["fault"] == HELD_REQUEST and e["status"] is None and e["received_unix"] >= since
            for e in log
        )

    def _count(self, query: object) -> int:
        with self.ledger.session() as db:
            return int(db.exec(query).one())  # type: ignore[call-overload]

    def sent(self) -> int:
        return self._count(select(func.count()).where(Delivery.state == "sent"))

    def claimed(self) -> int:
        return self._count(select(func.count()).select_from(Delivery))

    def handed_over(self) -> int:
        return self._count(select(func.count()).where(Delivery.state == "handover"))

    def notify_failures(self) -> int:
        return self._count(
            select(func.count()).where(
                StepAttempt.step == NOTIFY_STEP, col(StepAttempt.error).startswith("TransientError")
            )
        )

    def weights_stored(self) -> int:
        return self._count(
            select(func.count()).where(col(SnapshotFile.path).startswith("data/weights/"))
        )

    def snapshot_stored(self) -> bool:
        return self._count(select(func.count()).where(Snapshot.state == "stored")) > 0

    def checks(self) -> int:
        return self._count(select(func.count()).select_from(FixityEvent))

    def answers(self) -> int:
        return self._count(select(func.count()).select_from(InterviewTurn))

    def stored(self, path: str) -> bool:
        return self._count(select(func.count()).where(SnapshotFile.path == path)) > 0

    def report_attempts(self) -> int:
        return self._count(select(func.count()).where(StepAttempt.step == REPORT_STEP))

    def reports(self) -> int:
        return self._count(select(func.count()).select_from(Report))

    def transitions(self) -> int:
        return self._count(select(func.count()).select_from(StatusTransition))

    def snapshot_attempts(self) -> int:
        return self._count(select(func.count()).where(StepAttempt.step == SNAPSHOT_STEP))

    def recorded_slot_leases(self) -> set[str]:
        """The orchestrator leases the ledger's runs recorded."""
        with self.ledger.session() as db:
            leases = db.exec(select(DeprecationRun.orchestrator_lease_id)).all()
        return {lease for lease in leases if lease}

    def counts(self) -> dict[str, float]:
        return {
            "checks": self.checks(),
            "report attempts": self.report_attempts(),
            "snapshot attempts": self.snapshot_attempts(),
            "since": time.time(),
        }


@dataclass
class Faults:
    """The knobs a crash point turns to hold the process where it is to be killed."""

    s3: S3FaultProxy
    smtp: TcpRelay
    messages: str
    prefect: TcpRelay | None = None  # none in front of a temporary server

    def hold_next_question(self, after: int) -> None:
        standin(self.messages, "POST", "/_standin/faults", [{"delay": 0}] * after + [HELD_REQUEST])

    def calm(self) -> None:
        self.s3.latency = self.smtp.connect_delay = self.s3.rate = 0.0
        self.smtp.drop_next = self.smtp.spare_next = 0
        if self.prefect is not None:
            self.prefect.latency = 0.0
        standin(self.messages, "DELETE", "/_standin/faults")


Condition = Callable[[Probe, dict[str, float]], bool]


@dataclass(frozen=True)
class CrashPoint:
    step: str
    where: str
    kill_when: Condition
    prepare: Callable[[Faults], None] = lambda faults: None
    arm_when: Condition | None = None
    arm: Callable[[Faults], None] = lambda faults: None
    # Killed before its slot's lease id reached the ledger: the next run has no proof that
    # the holder died until the lease expires, so it may wait that long for the slot.
    strands_slot: bool = False
    # Killed as `kill -9 PID` kills: the command's process alone, so Prefect's temporary
    # server, which it started, outlives it (adopted by init) until the next run stops it.
    command_alone: bool = False


def s3_latency(faults: Faults) -> None:
    faults.s3.latency = 0.3


def prefect_latency(faults: Faults) -> None:
    assert faults.prefect is not None, "a slow Prefect API needs a relay in front of it"
    faults.prefect.latency = 1.0


def drop_a_notice_connection(faults: Faults) -> None:
    # The run's preflight logs in to the relay twice first: the CLI's quick check, the flow's.
    faults.smtp.spare_next, faults.smtp.drop_next = 2, 1


def notice_connection_held(sent: int) -> CrashPoint:
    return CrashPoint(
        NOTIFY_STEP,
        f"after {sent} notices sent, the next one's SMTP connection held",
        prepare=lambda f: setattr(f.smtp, "connect_delay", 1.0),
        kill_when=lambda p, s: p.sent() == sent and p.claimed() == sent + 1,
    )


def weights_upload_held(files: int) -> CrashPoint:
    return CrashPoint(
        SNAPSHOT_STEP,
        f"after {files} weights files stored, the next upload held",
        prepare=s3_latency,
        kill_when=lambda p, s: p.weights_stored() >= files,
    )


def writing_tag_files(weights_files: int) -> CrashPoint:
    return CrashPoint(
        SNAPSHOT_STEP,
        "after every weights file, writing the tag files",
        # Files are recorded in batches: the last ones may have been recorded by the run
        # killed before. Wait for this run's own snapshot step.
        arm_when=lambda p, s: p.snapshot_attempts() > s["snapshot attempts"],
        arm=s3_latency,
        kill_when=lambda p, s: p.weights_stored() == weights_files,
    )


def files_rehashed(checks: int) -> CrashPoint:
    return CrashPoint(
        VERIFY_STEP,
        f"after {checks} files re-read and re-hashed",
        arm_when=lambda p, s: p.snapshot_stored(),
        arm=s3_latency,
        kill_when=lambda p, s: p.checks() - s["checks"] >= checks,
    )


def question_in_flight(answered: int, held_after: int, note: str = "") -> CrashPoint:
    """Killed with question ``answered + 1`` in flight, ``held_after`` answers into this run."""
    return CrashPoint(
        INTERVIEW_STEP,
        f"after answer {answered}, question {answered + 1} in flight{note}",
        prepare=lambda f: f.hold_next_question(after=held_after),
        kill_when=lambda p, s: p.answers() >= answered and p.question_held(s["since"]),
    )


def before_the_report() -> CrashPoint:
    return CrashPoint(
        REPORT_STEP,
        "after the transcript is stored, before the report",
        arm_when=lambda p, s: p.answers() == len(PROTOCOL_TURNS),
        arm=s3_latency,
        kill_when=lambda p, s: p.stored(TRANSCRIPT),
    )


@dataclass(frozen=True)
class Draw:
    """The seeded choices of a plan: how far each step gets before its kill."""

    sent: int
    files: int
    checks: int
    first: int
    second: int

    @classmethod
    def of(cls, seed: int, weights_files: int) -> Draw:
        rng = random.Random(seed)
        sent = rng.randint(0, 2)
        files = rng.randint(1, weights_files - 2)
        checks = rng.randint(1, weights_files - 1)
        first = rng.randint(1, 3)
        second = rng.randint(first + 1, len(PROTOCOL_TURNS) - 2)
        return cls(sent, files, checks, first, second)


def crash_plan(seed: int, weights_files: int) -> list[CrashPoint]:
    """Ten kill points, in the order the run reaches them, chosen by ``seed``."""
    draw = Draw.of(seed, weights_files)
    return [
        notice_connection_held(draw.sent),
        CrashPoint(
            NOTIFY_STEP,
            "in the retry back-off after an SMTP connection was dropped",
            prepare=drop_a_notice_connection,
            kill_when=lambda p, s: p.notify_failures() > 0,
        ),
        weights_upload_held(draw.files),
        writing_tag_files(weights_files),
        files_rehashed(draw.checks),
        question_in_flight(draw.first, held_after=draw.first),
        question_in_flight(
            draw.second, held_after=draw.second - draw.first, note=" (resumed interview)"
        ),
        before_the_report(),
        CrashPoint(
            REPORT_STEP,
            "after the report row, its Prefect artifacts on their way",
            arm_when=lambda p, s: p.report_attempts() > s["report attempts"],
            arm=prefect_latency,
            kill_when=lambda p, s: p.reports() >= 1,
        ),
        CrashPoint(
            FLIP_STEP,
            "after the status transition, before the run is closed",
            arm_when=lambda p, s: p.report_attempts() > s["report attempts"],
            arm=prefect_latency,
            kill_when=lambda p, s: p.transitions() >= 1,
        ),
    ]
