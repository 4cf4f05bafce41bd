"""The interview step inside the deprecate_model flow: step retries, resume, the package."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import bagit
import pytest
from sqlmodel import select

from flows import deprecate as deprecate_flow
from sunset.errors import InputError
from sunset.interview.protocol import load_protocol
from sunset.interview.transcript import (
    README_FILE,
    raw_body_path,
    transcript_jsonl,
    transcript_path,
)
from sunset.ledger import InterviewSession, InterviewTurn, Report, Snapshot, StepAttempt
from sunset.report.render import inline
from sunset.runs.request import DeprecationRequest
from sunset.runs.steps import INTERVIEW_STEP
from sunset_dev.example_model import EXAMPLE_MODEL_ID
from tests.conftest import Site
from tests.standin_control import INVALID_UTF8_BODY, LONE_SURROGATE_BODY, StandIn, last_question

pytestmark = pytest.mark.usefixtures("prefect_server")

QUESTIONS = [turn.text for turn in load_protocol().protocol.turns()]
N = len(QUESTIONS)  # each session ends with one more turn: the confirmation


def run_flow(site: Site, **overrides: Any) -> Any:
    fields: dict[str, Any] = {
        "model_id": EXAMPLE_MODEL_ID,
        "weights": str(site.weights),
        "recipients": str(site.recipients),
    } | overrides
    return deprecate_flow.deprecate_model(DeprecationRequest(**fields))


def interview_attempts(site: Site) -> list[tuple[int, str]]:
    with site.ledger.session() as db:
        rows = db.exec(
            select(StepAttempt).where(StepAttempt.step == INTERVIEW_STEP).order_by(StepAttempt.id)
        )
        return [(a.attempt, str(a.state)) for a in rows]


def turns(site: Site) -> list[InterviewTurn]:
    with site.ledger.session() as db:
        return list(db.exec(select(InterviewTurn).order_by(InterviewTurn.seq)))


def test_when_the_sdk_gives_up_the_step_retries_and_asks_only_the_rest(
    site: Site, standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUNSET_INTERVIEW_MAX_RETRIES", "1")
    # Turn 3 meets two 529s: the SDK retries once, then gives up; the step tries again.
    standin.queue({"delay": 0}, {"delay": 0}, {"status": 529}, {"status": 529})
    standin.queue({"status": 429, "retry_after": 0})

    outcome = run_flow(site)

    assert outcome.status == "deprecated"
    assert interview_attempts(site) == [(1, "failed"), (2, "completed")]
    with site.ledger.session() as db:
        failed = db.exec(select(StepAttempt).where(StepAttempt.step == INTERVIEW_STEP)).first()
        assert failed is not None and "OverloadedError" in (failed.error or "")
    log = standin.log()
    assert [entry["status"] for entry in log] == [200, 200, 529, 529, 429] + [200] * (N - 2)
    assert [last_question(entry) for entry in log] == (
        QUESTIONS[:3] + [QUESTIONS[2]] * 2 + QUESTIONS[2:]
    )
    recorded = turns(site)
    assert [t.question for t in recorded[:N]] == QUESTIONS  # one answer per question
    assert [t.retries for t in recorded] == [0, 0, 1] + [0] * (N - 2)

    # The sealed package holds the transcript the interview kept there, turn by turn.
    with site.ledger.session() as db:
        session = db.exec(select(InterviewSession)).one()
        snapshot = db.exec(select(Snapshot)).one()
        report = db.exec(select(Report)).one()
    stored = site.store.get_bytes(snapshot.prefix + transcript_path(1))
    assert stored == transcript_jsonl(site.ledger, session.id)
    assert len(stored.splitlines()) == N + 1
    assert recorded[0].answer_text in site.store.get_bytes(report.key).decode()


def test_undecodable_answers_are_sealed_raw_in_the_package_and_the_run_completes(
    site: Site, standin: StandIn, tmp_path: Path
) -> None:
    standin.queue({"delay": 0})
    standin.send_body(LONE_SURROGATE_BODY)  # the answer to question 2
    standin.queue({"delay": 0})
    standin.send_body(INVALID_UTF8_BODY)  # the answer to question 4

    outcome = run_flow(site)

    assert outcome.status == "deprecated"
    assert interview_attempts(site) == [(1, "completed")]
    flagged = [t.flagged for t in turns(site)]
    assert flagged == [None, "undecodable", None, "undecodable"] + [None] * (N - 3)
    with site.ledger.session() as db:
        report = db.exec(select(Report)).one()
    package = site.download_package(outcome.package, tmp_path / "bag")
    bagit.Bag(str(package)).validate()
    manifest = (package / "manifest-sha256.txt").read_text().splitlines()
    for seq, body in ((2, LONE_SURROGATE_BODY), (4, INVALID_UTF8_BODY)):
        assert (package / raw_body_path(1, seq)).read_bytes() == body
        assert f"{hashlib.sha256(body).hexdigest()}  {raw_body_path(1, seq)}" in manifest
    assert "raw/session-<n>-turn-<seq>.bin" in (package / README_FILE).read_text()
    # The report shows both as flagged, says what is wrong, and where the bytes are.
    markdown = site.store.get_bytes(report.key).decode()
    assert markdown.count("(FLAGGED: the answer could not be decoded)") == 2
    problems = [t.decode_problem for t in turns(site) if t.decode_problem is not None]
    assert "lone surrogate (\\ud800)" in problems[0] and "not valid UTF-8" in problems[1]
    assert all(inline(problem) in markdown for problem in problems)
    assert f"`{raw_body_path(1, 4)}` ({len(INVALID_UTF8_BODY)} bytes" in markdown


def test_a_changed_protocol_stops_the_resumed_run_until_it_is_restored(
    site: Site, standin: StandIn, tmp_path: Path
) -> None:
    protocol_file = tmp_path / "protocol.yaml"
    original = load_protocol().source
    protocol_file.write_bytes(original)
    # A 400 is not transient: the first run stops after two recorded answers.
    standin.queue({"delay": 0}, {"delay": 0}, {"status": 400})
    with pytest.raises(Exception, match="400"):
        run_flow(site, protocol=str(protocol_file))
    assert len(turns(site)) == 2
    standin.reset()

    protocol_file.write_bytes(original + b"# edited after the interview began\n")
    with pytest.raises(InputError, match="restore the original protocol file to resume"):
        run_flow(site, protocol=str(protocol_file))
    assert standin.log() == []
    assert interview_attempts(site) == [(1, "failed"), (2, "failed")]  # not retried

    protocol_file.write_bytes(original)
    outcome = run_flow(site, protocol=str(protocol_file))

    assert outcome.status == "deprecated"
    assert [last_question(entry) for entry in standin.log()] == QUESTIONS[2:]
    assert [t.question for t in turns(site)[:N]] == QUESTIONS
