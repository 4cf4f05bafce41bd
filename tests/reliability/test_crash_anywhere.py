"""Crash anywhere: SIGKILL the deprecation at seeded points in every step, resume it, and
end exactly where an uninterrupted run ends.

One run is killed again and again as it moves forward: each time it is started with the
same command, it resumes, and is killed at the next point. A point is an observation of
the ledger ("2 notices sent", "3 weights files stored", "turn 4 answered"), made from
outside while the process runs. To hold the process at a known place when the kill lands,
a real fault slows the next thing it does: an SMTP connection held before its banner, an
S3 request held before it is forwarded, a Messages request held and then refused, a slow
Prefect API. ``SUNSET_CRASH_SEED`` picks the points; the same seed kills at the same ones.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlmodel import col, func, select

from sunset.config import Settings
from sunset.errors import VerificationFailed
from sunset.ledger import (
    AttemptState,
    CatalogModel,
    Delivery,
    DeprecationRun,
    FixityEvent,
    InterviewTurn,
    Ledger,
    Report,
    RunState,
    Snapshot,
    SnapshotFile,
    StatusTransition,
    StepAttempt,
    utcnow,
)
from sunset.preservation.replicas import ReplicatedStore, connect_store, weights_reader
from sunset.preservation.seal import add_payload, finish_interrupted_seal
from sunset.preservation.snapshot import snapshot_weights
from sunset.preservation.verify import verify_snapshot
from sunset.runs.steps import (
    FLIP_STEP,
    INTERVIEW_STEP,
    NOTIFY_STEP,
    REPORT_STEP,
    SNAPSHOT_STEP,
    VERIFY_STEP,
)
from sunset_dev.example_model import EXAMPLE_MODEL_ID
from tests.conftest import Site
from tests.faults.s3_proxy import S3FaultProxy
from tests.faults.tcp_relay import TcpRelay
from tests.reliability.conftest import SIX_USERS, Reference, Runner, wait_until, write_recipients
from tests.reliability.tally import TALLY
from tests.reliability.world import (
    PROTOCOL_TURNS,
    World,
    answered_once,
    bag_problems,
    manifest_lines,
    question_of,
    source_weights,
    standin,
    standin_faults,
    standin_requests,
    weights_of,
)

SEED = int(os.environ.get("SUNSET_CRASH_SEED", "7"))
LEASE_SECONDS = 2  # the least Settings allows: each kill waits for it to lapse
# The stand-in keeps the request for this long, then refuses it: the process is inside
# the call when it is killed, and the log shows the question was never answered.
HELD_REQUEST = {"delay": 8.0, "status": 529}
POINT_TIMEOUT = 90.0


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
    prefect: TcpRelay
    messages: str

    def hold_next_question(self, after: int) -> None:
        standin(self.messages, "POST", "/_standin/faults", [{"delay": 0}] * after + [HELD_REQUEST])

    def calm(self) -> None:
        self.s3.latency = self.smtp.connect_delay = self.prefect.latency = 0.0
        self.smtp.drop_next = 0
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


def s3_latency(faults: Faults) -> None:
    faults.s3.latency = 0.3


def prefect_latency(faults: Faults) -> None:
    faults.prefect.latency = 1.0


def crash_plan(seed: int, weights_files: int) -> list[CrashPoint]:
    """Ten kill points, in the order the run reaches them, chosen by ``seed``."""
    rng = random.Random(seed)
    sent = rng.randint(0, 2)
    files = rng.randint(1, weights_files - 2)
    checks = rng.randint(1, weights_files - 1)
    first = rng.randint(1, 3)
    second = rng.randint(first + 1, len(PROTOCOL_TURNS) - 2)
    transcript = "data/interview/session-1.jsonl"
    return [
        CrashPoint(
            NOTIFY_STEP,
            f"after {sent} notices sent, the next one's SMTP connection held",
            prepare=lambda f: setattr(f.smtp, "connect_delay", 1.0),
            kill_when=lambda p, s: p.sent() == sent and p.claimed() == sent + 1,
        ),
        CrashPoint(
            NOTIFY_STEP,
            "in the retry back-off after an SMTP connection was dropped",
            prepare=lambda f: setattr(f.smtp, "drop_next", 1),
            kill_when=lambda p, s: p.notify_failures() > 0,
        ),
        CrashPoint(
            SNAPSHOT_STEP,
            f"after {files} weights files stored, the next upload held",
            prepare=s3_latency,
            kill_when=lambda p, s: p.weights_stored() >= files,
        ),
        CrashPoint(
            SNAPSHOT_STEP,
            "after every weights file, writing the tag files",
            # Files are recorded in batches: the last ones may have been recorded by the
            # run killed before. Wait for this run's own snapshot step.
            arm_when=lambda p, s: p.snapshot_attempts() > s["snapshot attempts"],
            arm=s3_latency,
            kill_when=lambda p, s: p.weights_stored() == weights_files,
        ),
        CrashPoint(
            VERIFY_STEP,
            f"after {checks} files re-read and re-hashed",
            arm_when=lambda p, s: p.snapshot_stored(),
            arm=s3_latency,
            kill_when=lambda p, s: p.checks() - s["checks"] >= checks,
        ),
        CrashPoint(
            INTERVIEW_STEP,
            f"after answer {first}, question {first + 1} in flight",
            prepare=lambda f: f.hold_next_question(after=first),
            kill_when=lambda p, s: p.answers() >= first and p.question_held(s["since"]),
        ),
        CrashPoint(
            INTERVIEW_STEP,
            f"after answer {second}, question {second + 1} in flight (resumed interview)",
            prepare=lambda f: f.hold_next_question(after=second - first),
            kill_when=lambda p, s: p.answers() >= second and p.question_held(s["since"]),
        ),
        CrashPoint(
            REPORT_STEP,
            "after the transcript is stored, before the report",
            arm_when=lambda p, s: p.answers() == len(PROTOCOL_TURNS),
            arm=s3_latency,
            kill_when=lambda p, s: p.stored(transcript),
        ),
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


@dataclass
class Lineage:
    """One deprecation, started again and again with the same command."""

    runner: Runner
    argv: list[str]
    env: dict[str, str]
    probe: Probe
    faults: Faults
    log: list[str] = field(default_factory=list)

    def crash_at(self, number: int, point: CrashPoint) -> None:
        point.prepare(self.faults)
        start = self.probe.counts()
        child = self.runner.start(f"crash-{number:02d}", *self.argv, **self.env)
        armed = point.arm_when is None
        deadline = time.monotonic() + POINT_TIMEOUT
        while True:
            if child.returncode() is not None:
                pytest.fail(f"run ended before point {number} ({point.where}):\n{child.output()}")
            if not armed and point.arm_when(self.probe, start):  # type: ignore[misc]
                point.arm(self.faults)
                armed = True
            if armed and point.kill_when(self.probe, start):
                break
            if time.monotonic() > deadline:
                child.kill()
                pytest.fail(f"point {number} ({point.where}) not reached:\n{child.output()}")
            time.sleep(0.02)
        child.kill()
        self.faults.calm()
        self.log.append(f"{number:2d}. {point.step}: {point.where}")

    def wait_for_the_lease(self) -> None:
        def lapsed() -> bool:
            with self.probe.ledger.session() as db:
                run = db.exec(select(DeprecationRun)).one()
            return run.lease_expires_at is None or run.lease_expires_at <= utcnow()

        wait_until(lapsed, LEASE_SECONDS + 10, "the killed run's lease to lapse", interval=0.1)


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


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_killed_at_ten_points_the_resumed_run_ends_as_an_uninterrupted_one(
    site: Site,
    runner: Runner,
    world: World,
    reference: Reference,
    prefect_api_relay: TcpRelay,
    tmp_path: Path,
) -> None:
    stack = site.stack.endpoints
    users = write_recipients(tmp_path / "users.csv", world.domain, SIX_USERS)
    argv = ["deprecate", EXAMPLE_MODEL_ID, "--weights", str(site.weights), "--recipients"]
    weights_files = len(source_weights(site.weights))
    plan = crash_plan(SEED, weights_files)
    since = time.time()
    slowed_before = prefect_api_relay.delayed
    with (
        S3FaultProxy(stack.s3_endpoint) as s3,
        TcpRelay(stack.smtp_host, stack.smtp_port) as smtp,
    ):
        faults = Faults(s3, smtp, prefect_api_relay, stack.messages_base_url)
        lineage = Lineage(
            runner,
            [*argv, str(users)],
            {
                "SUNSET_S3_ENDPOINT_URL": s3.url,
                "SUNSET_SMTP_PORT": str(smtp.port),
                "SUNSET_RUN_LEASE_SECONDS": str(LEASE_SECONDS),
            },
            Probe(site.ledger, stack.messages_base_url),
            faults,
        )
        for number, point in enumerate(plan, start=1):
            lineage.crash_at(number, point)
            problems = world.broken_promises()
            TALLY.lost(problems)
            assert problems == [], f"after kill {number}: {problems}"
            assert max(world.mails_by_recipient().values(), default=0) <= 1
            lineage.wait_for_the_lease()
        final = runner.run("crash-final", *lineage.argv, **lineage.env)
    TALLY.fault("smtp connection held", smtp.delayed)
    TALLY.fault("smtp connection dropped", smtp.dropped)
    TALLY.fault("s3 request held", s3.delayed)
    TALLY.fault("prefect api chunk delayed", prefect_api_relay.delayed - slowed_before)
    assert final.returncode() == 0, final.output()[-4000:]
    TALLY.crashes += len(plan)
    print(f"\nSUNSET_CRASH_SEED={SEED}, killed at:\n" + "\n".join(lineage.log))

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
    assert bag_problems(package, tmp_path / "bag") == []

    # Each recipient told once.
    assert mails == Counter({email: 1 for email in emails})

    # Each question answered once: one turn in the ledger, one answered request at the API.
    assert answers == reference.answers
    log = standin_requests(stack.messages_base_url, since, EXAMPLE_MODEL_ID)
    TALLY.faults.update(standin_faults(log))
    assert set(answered_once(log).values()) == {1}
    held = [question_of(e) for e in log if e["status"] != 200]  # killed while in flight
    assert len(held) == 2 and all(e["status"] in (200, 529) for e in log)
    ordered = [answers[(1, turn.question_id)] for turn in PROTOCOL_TURNS]
    for entry in log:
        if entry["status"] == 200:  # a resumed session replays exactly what was recorded
            replayed = [m["content"] for m in entry["json"]["messages"] if m["role"] == "assistant"]
            assert replayed == ordered[: len(replayed)]

    # One status transition, a completed run, no attempt left looking alive.
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
    assert 1 <= len(abandoned) <= len(plan)
    assert {a.step for a in attempts if a.state == AttemptState.COMPLETED} >= {
        NOTIFY_STEP,
        SNAPSHOT_STEP,
        VERIFY_STEP,
        INTERVIEW_STEP,
        REPORT_STEP,
        FLIP_STEP,
    }
    assert world.broken_promises() == []

    # The report: the newest version is what the package holds, and it states the same
    # facts as the uninterrupted run's report.
    latest = reports[-1]
    sealed = Path(latest.local_path).read_text()
    assert package["data/report/report.md"].decode() == sealed
    assert report_facts(sealed) == report_facts(reference.report)


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def preserve_example(site: Site) -> tuple[ReplicatedStore, str]:
    """The example weights preserved, by a run of their own, on the site's replicas."""
    settings = Settings()
    store = connect_store(settings)
    with site.ledger.session() as db:
        run = DeprecationRun(model_id=EXAMPLE_MODEL_ID)
        db.add(run)
        model = db.get(CatalogModel, EXAMPLE_MODEL_ID)
    assert model is not None
    reader = weights_reader(settings)
    summary = snapshot_weights(
        site.ledger,
        store,
        run=run,
        model=model,
        sources=reader.scan(str(site.weights)),
        weights=reader,
        organization="o",
    )
    return store, summary.snapshot_id


def test_a_seal_cut_short_is_completed_on_resume_but_a_tampered_tag_file_still_fails(
    site: Site,
) -> None:
    store, snapshot_id = preserve_example(site)
    # The seal recorded a transcript, then its process died before rewriting the tag files.
    add_payload(site.ledger, store, snapshot_id, "data/interview/s.jsonl", b"{}\n")
    with pytest.raises(VerificationFailed, match="not rewritten after a change"):
        verify_snapshot(site.ledger, store, snapshot_id=snapshot_id, run_id=None, organization="o")

    assert finish_interrupted_seal(site.ledger, store, snapshot_id, "o")
    verify_snapshot(site.ledger, store, snapshot_id=snapshot_id, run_id=None, organization="o")

    key = f"models/{EXAMPLE_MODEL_ID}/{snapshot_id}/manifest-sha256.txt"
    forged = site.store.get_bytes(key) + b"0" * 64 + b"  data/forged.bin\n"
    site.store.client.put_object(Bucket=site.store.bucket, Key=key, Body=forged)
    assert not finish_interrupted_seal(site.ledger, store, snapshot_id, "o")
    with pytest.raises(VerificationFailed, match="manifest-sha256.txt"):
        verify_snapshot(site.ledger, store, snapshot_id=snapshot_id, run_id=None, organization="o")


class Killed(BaseException):
    """Stands for SIGKILL inside the process: nothing after it runs."""


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_a_put_cut_short_before_its_record_is_adopted_on_resume_but_a_stranger_is_not(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, snapshot_id = preserve_example(site)
    transcript = "data/interview/session-1.jsonl"
    add_payload(site.ledger, store, snapshot_id, transcript, b'{"turn": 1}\n')
    finish_interrupted_seal(site.ledger, store, snapshot_id, "o")

    # The next version of the transcript reaches both replicas; the process dies before
    # the ledger records it.
    def die(*args: object, **kwargs: object) -> None:
        raise Killed

    with monkeypatch.context() as patch:
        patch.setattr("sunset.preservation.seal.record_stored", die)
        with pytest.raises(Killed):
            add_payload(site.ledger, store, snapshot_id, transcript, b'{"turn": 2}\n')
    with pytest.raises(VerificationFailed, match="shadowed"):
        verify_snapshot(site.ledger, store, snapshot_id=snapshot_id, run_id=None, organization="o")

    assert finish_interrupted_seal(site.ledger, store, snapshot_id, "o")
    verify_snapshot(site.ledger, store, snapshot_id=snapshot_id, run_id=None, organization="o")
    with site.ledger.session() as db:
        [row] = db.exec(select(SnapshotFile).where(SnapshotFile.path == transcript)).all()
    assert row.sha256 == hashlib.sha256(b'{"turn": 2}\n').hexdigest()

    # A version written by someone else, announced by no pending write, is not adopted.
    key = f"models/{EXAMPLE_MODEL_ID}/{snapshot_id}/{transcript}"
    site.store.client.put_object(Bucket=site.store.bucket, Key=key, Body=b'{"turn": 3}\n')
    assert not finish_interrupted_seal(site.ledger, store, snapshot_id, "o")
    with pytest.raises(VerificationFailed, match="shadowed"):
        verify_snapshot(site.ledger, store, snapshot_id=snapshot_id, run_id=None, organization="o")
