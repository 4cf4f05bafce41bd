"""Interview sessions against the real local Messages stand-in, through the real SDK.

What the server sent is compared with what the ledger and the package hold, byte for
byte; faults are injected over HTTP; the crash is a real SIGKILL of a real process.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anthropic
import pytest
from pydantic import SecretStr
from sqlmodel import select

from sunset.config import Settings
from sunset.errors import DeadlineExceeded, InputError, is_transient
from sunset.interview.client import AnthropicMessages, Deadline, decode_body
from sunset.interview.preferences import find_preferences
from sunset.interview.protocol import load_protocol
from sunset.interview.runner import interview_deadline, run_interviews
from sunset.interview.transcript import (
    raw_body_path,
    session_files,
    transcript_jsonl,
    transcript_path,
)
from sunset.ledger import (
    CatalogModel,
    DeprecationRun,
    InterviewPreference,
    InterviewSession,
    InterviewTurn,
    Ledger,
    PreferenceConfirmation,
    StepAttempt,
)
from sunset.preservation.replicas import connect_store
from sunset.preservation.snapshot import snapshot_weights
from sunset.preservation.verify import verify_snapshot
from sunset.preservation.weights import WeightsReader, scan_weights_dir
from sunset_dev.example_model import EXAMPLE_MODEL_ID
from tests.conftest import Site
from tests.standin_control import (
    INVALID_UTF8_BODY,
    LONE_SURROGATE_BODY,
    StandIn,
    last_question,
    message_body,
    sent_body,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
ORGANIZATION = "Sunset tests"
DEFAULT = load_protocol()
QUESTIONS = [turn.text for turn in DEFAULT.protocol.turns()]
N = len(QUESTIONS)  # and one more turn per session: the confirmation


def begin_run(ledger: Ledger, run_id: str = "run-1") -> str:
    with ledger.session() as db:
        db.add(DeprecationRun(id=run_id, model_id=EXAMPLE_MODEL_ID))
    return run_id


def client(standin: StandIn, max_retries: int = 2) -> AnthropicMessages:
    return AnthropicMessages(
        base_url=standin.base_url, api_key=SecretStr("test-key"), max_retries=max_retries
    )


def interview(site: Site, standin: StandIn, run_id: str, **overrides: Any) -> Any:
    options: dict[str, Any] = {
        "run_id": run_id,
        "model_id": EXAMPLE_MODEL_ID,
        "protocol": DEFAULT,
        "sessions": [1],
        "max_tokens": 400,
        "deadline": Deadline.after(120),
        "finder_model": EXAMPLE_MODEL_ID,
    } | overrides
    return run_interviews(site.ledger, client(standin), **options)


def sessions_and_turns(ledger: Ledger) -> list[tuple[InterviewSession, list[InterviewTurn]]]:
    with ledger.session() as db:
        sessions = db.exec(select(InterviewSession).order_by(InterviewSession.session_index))
        return [
            (
                session,
                list(
                    db.exec(
                        select(InterviewTurn)
                        .where(InterviewTurn.session_id == session.id)
                        .order_by(InterviewTurn.seq)
                    )
                ),
            )
            for session in sessions.all()
        ]


def text_of(response_body: str) -> str:
    blocks = json.loads(response_body)["content"]
    return "".join(block["text"] for block in blocks if block["type"] == "text")


def test_multi_session_interview_records_byte_for_byte_what_the_server_sent(
    site: Site, standin: StandIn
) -> None:
    run_id = begin_run(site.ledger)

    summary = interview(site, standin, run_id, sessions=[1, 2, 3], concurrency=2)

    assert (summary.sessions, summary.turns_asked, summary.turns_replayed) == (3, 3 * N, 0)
    assert summary.confirmations == 3
    log = standin.log()
    assert len(log) == 3 * N and all(entry["status"] == 200 for entry in log)
    assert len(standin.confirmation_log()) == 3
    sent = {entry["request_id"]: entry for entry in log + standin.confirmation_log()}
    recorded = sessions_and_turns(site.ledger)
    assert [session.session_index for session, _ in recorded] == [1, 2, 3]
    for session, turns in recorded:
        assert session.state == "completed" and session.protocol_sha256 == DEFAULT.sha256
        assert [t.question for t in turns[:N]] == QUESTIONS
        assert [t.question_id for t in turns[N:]] == ["confirm.preferences"]
        history: list[dict[str, str]] = []
        for turn in turns:
            entry = sent[turn.request_id]
            # The exact bytes the server wrote are the bytes the ledger holds.
            assert turn.response_body.encode("utf-8") == entry["response_body"].encode("utf-8")
            assert turn.answer_text == text_of(entry["response_body"])
            # The digest is of the exact body the SDK sent; the versions are the ones it sent.
            assert turn.request_sha256 == entry["body_sha256"]
            assert turn.api_version == entry["headers"]["anthropic-version"]
            assert turn.sdk_version == f"anthropic-python {anthropic.__version__}"
            assert entry["headers"]["x-stainless-package-version"] == anthropic.__version__
            assert turn.retries == 0 and turn.latency_s > 0
            assert turn.asked_at <= turn.answered_at
            assert turn.responding_model.startswith("sunset-stand-in")
            assert turn.flagged is None
            # Each question went with the session's own history, replayed verbatim.
            question = {"role": "user", "content": turn.question}
            assert entry["json"]["messages"] == [*history, question]
            assert entry["json"]["system"] == DEFAULT.protocol.framing
            assert entry["json"]["model"] == EXAMPLE_MODEL_ID
            history += [question, {"role": "assistant", "content": turn.answer_text}]
        # The JSON Lines transcript carries the same bytes, one line per turn.
        lines = transcript_jsonl(site.ledger, session.id).decode("utf-8").splitlines()
        assert [json.loads(line)["response_body"] for line in lines] == [
            sent[t.request_id]["response_body"] for t in turns
        ]

    # At most two sessions at once: two overlap, the third waits for one of them to end.
    def received(index: int) -> list[float]:
        turns = recorded[index - 1][1]
        return sorted(sent[t.request_id]["received_unix"] for t in turns)

    first, second, third = received(1), received(2), received(3)
    assert second[0] < first[-1] and first[0] < second[-1]
    assert third[0] >= min(first[-1], second[-1])


@pytest.mark.unit
@pytest.mark.parametrize(
    ("body", "text", "problem"),
    [
        (message_body(b"kept \\ud83d\\ude00"), True, None),
        (LONE_SURROGATE_BODY, True, "lone surrogate (\\ud800)"),
        (b'{"\\udfff": 1}', True, "lone surrogate (\\udfff)"),
        (
            INVALID_UTF8_BODY,
            False,
            f"invalid start byte (byte ff at offset {INVALID_UTF8_BODY.find(0xFF)})",
        ),
        (message_body(b"\\u0000"), True, "escapes a NUL character"),
        (b'{"a": 1}\x00', False, "NUL byte at offset 8"),
        (b"{not json", True, "not JSON: Expecting property name"),
        (b"[]", True, "JSON but not a message object"),
    ],
)
def test_a_body_is_read_as_far_as_it_goes_and_says_what_stopped_it(
    body: bytes, text: bool, problem: str | None
) -> None:
    decoded = decode_body(body)
    assert decoded.text == (body.decode("utf-8") if text else None)
    if problem is None:
        assert decoded.problem is None and decoded.answer_text == "kept \U0001f600"
    else:
        assert decoded.problem is not None and problem in decoded.problem
        assert decoded.message is None and decoded.answer_text == ""


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (LONE_SURROGATE_BODY, "the JSON escapes a lone surrogate (\\ud800)"),
        (INVALID_UTF8_BODY, "the body is not valid UTF-8: invalid start byte (byte ff"),
    ],
    ids=["lone-surrogate", "invalid-utf-8"],
)
def test_an_undecodable_answer_is_recorded_byte_for_byte_flagged_and_the_interview_goes_on(
    site: Site, standin: StandIn, body: bytes, problem: str
) -> None:
    run_id = begin_run(site.ledger)
    standin.queue({"delay": 0})
    standin.send_body(body)  # the answer to the second question

    summary = interview(site, standin, run_id)

    assert (summary.turns_asked, summary.flagged_turns, summary.confirmations) == (N, 1, 1)
    ((session, turns),) = sessions_and_turns(site.ledger)
    assert session.state == "completed"
    assert [t.question for t in turns[:N]] == QUESTIONS
    assert [t.flagged for t in turns] == [None, "undecodable"] + [None] * (N - 1)
    log = standin.log()
    undecodable = turns[1]
    # The bytes the server wrote are the bytes the ledger holds, with what is wrong.
    assert undecodable.response_raw == sent_body(log[1]) == body
    assert undecodable.decode_problem is not None and problem in undecodable.decode_problem
    assert undecodable.response_body == (log[1]["response_body"] or "")
    assert undecodable.answer_text == "" and undecodable.request_id == log[1]["request_id"]
    for turn, entry in zip(turns, log, strict=False):
        if turn is not undecodable:
            assert turn.response_raw is None and turn.decode_problem is None
            assert turn.response_body.encode("utf-8") == sent_body(entry)
    # The interview went on, the next question carrying the answer as having no text.
    assert log[2]["json"]["messages"][3] == {
        "role": "assistant",
        "content": "[no text in this answer]",
    }
    assert len(standin.finder_log()) == N - 1  # nothing to search in it
    # The transcript names the raw file and its digest; the package files hold the bytes.
    lines = [json.loads(line) for line in transcript_jsonl(site.ledger, session.id).splitlines()]
    assert lines[1]["flagged"] == "undecodable" and lines[1]["decode_problem"].startswith(problem)
    assert lines[1]["response_raw_file"] == raw_body_path(1, 2)
    assert lines[1]["response_raw_sha256"] == hashlib.sha256(body).hexdigest()
    assert lines[1]["response_body"] == log[1]["response_body"]
    assert [line["response_body"] for line in lines[:1] + lines[2:N]] == [
        entry["response_body"] for entry in log[:1] + log[2:]
    ]
    assert session_files(site.ledger, session)[raw_body_path(1, 2)] == body


def test_an_undecodable_confirmation_reply_is_recorded_and_changes_nothing(
    site: Site, standin: StandIn
) -> None:
    # The N answers and the finder's N calls about them come first; then the confirmation.
    standin.queue(*[{"delay": 0}] * (2 * N))
    standin.send_body(INVALID_UTF8_BODY)

    summary = interview(site, standin, begin_run(site.ledger))

    assert (summary.confirmations, summary.flagged_turns) == (1, 1)
    ((session, turns),) = sessions_and_turns(site.ledger)
    assert session.state == "completed"
    assert turns[N].flagged == "undecodable" and turns[N].response_raw == INVALID_UTF8_BODY
    with site.ledger.session() as db:
        confirmation = db.exec(select(PreferenceConfirmation)).one()
        preferences = db.exec(select(InterviewPreference)).all()
    assert confirmation.outcome == "unreadable"
    assert (confirmation.error or "").startswith("the reply could not be decoded: the body is")
    assert preferences and {p.provenance for p in preferences} == {"found"}


def test_429_and_529_bursts_leave_exactly_one_answer_per_question(
    site: Site, standin: StandIn
) -> None:
    run_id = begin_run(site.ledger)
    standin.queue(
        {"status": 429, "retry_after": 0},
        {"status": 529},
        {"delay": 0},  # turn 1 answers on the third attempt
        {"status": 529},
        {"status": 429, "retry_after": 0},
    )

    interview(site, standin, run_id)

    statuses = [entry["status"] for entry in standin.log()]
    assert statuses == [429, 529, 200, 529, 429] + [200] * (N - 1)
    ((_, turns),) = sessions_and_turns(site.ledger)
    assert [t.question for t in turns[:N]] == QUESTIONS
    assert [t.retries for t in turns] == [2, 2] + [0] * (N - 1)
    assert [t.seq for t in turns] == list(range(1, N + 2))
    with site.ledger.session() as db:
        quotes = db.exec(select(InterviewPreference)).all()
    assert len(quotes) == sum(len(find_preferences(t.answer_text)) for t in turns)


def test_refusal_and_max_tokens_turns_are_flagged_not_hidden(
    site: Site, standin: StandIn, tmp_path: Path
) -> None:
    protocol_file = tmp_path / "flags.yaml"
    protocol_file.write_text(
        "name: flags\nversion: 1\ndescription: Flagged turns.\nframing: A test.\n"
        "sections:\n  - id: s\n    title: S\n    questions:\n"
        "      - id: q.refuse\n        text: Please SUNSET_STANDIN_REFUSE this question.\n"
        "      - id: q.future\n        text: Do you have preferences about future models?\n"
        "closing:\n  id: closing\n  text: Anything else?\n"
    )
    protocol = load_protocol(protocol_file)

    refusing = interview(site, standin, begin_run(site.ledger, "run-full"), protocol=protocol)
    truncated = interview(
        site, standin, begin_run(site.ledger, "run-short"), protocol=protocol, max_tokens=5
    )

    assert (refusing.flagged_turns, truncated.flagged_turns) == (1, 3)
    by_run = {s.run_id: turns for s, turns in sessions_and_turns(site.ledger)}
    full, short = by_run["run-full"], by_run["run-short"]
    assert [t.flagged for t in full] == ["refusal", None, None]
    assert "would rather not answer" in full[0].answer_text  # kept, and the interview went on
    assert [t.flagged for t in short] == ["max_tokens"] * 3
    for turn in full + short:
        assert turn.stop_reason == (turn.flagged or "end_turn")
        assert turn.answer_text == text_of(turn.response_body) and turn.answer_text
    with site.ledger.session() as db:
        session = db.exec(select(InterviewSession).where(InterviewSession.run_id == "run-short"))
        lines = transcript_jsonl(site.ledger, session.one().id).decode().splitlines()
    assert [json.loads(line)["flagged"] for line in lines] == ["max_tokens"] * 3


def test_a_retry_after_beyond_the_deadline_stops_at_once(site: Site, standin: StandIn) -> None:
    run_id = begin_run(site.ledger)
    standin.queue({"status": 429, "retry_after": 30})
    started = time.monotonic()

    with pytest.raises(DeadlineExceeded, match="asked to wait 30 s") as caught:
        interview(site, standin, run_id, deadline=Deadline.after(10))

    assert time.monotonic() - started < 5  # the SDK alone would have slept 30 s
    assert "SUNSET_INTERVIEW_DEADLINE_SECONDS" in str(caught.value)
    assert not is_transient(caught.value)  # the step does not retry past its deadline
    assert [entry["status"] for entry in standin.log()] == [429]


def test_a_slow_answer_is_cut_off_at_the_deadline(site: Site, standin: StandIn) -> None:
    run_id = begin_run(site.ledger)
    interview(site, standin, run_id)  # the first session completes
    standin.reset()
    standin.queue({"delay": 4})
    started = time.monotonic()

    with pytest.raises(DeadlineExceeded, match="within its deadline of 1 s"):
        interview(site, standin, run_id, sessions=[1, 2], deadline=Deadline.after(1))

    assert time.monotonic() - started < 3.5  # each attempt got only the time that was left
    assert len(standin.log()) == 1
    recorded = sessions_and_turns(site.ledger)
    assert [len(turns) for _, turns in recorded] == [N + 1, 0]


def test_a_passed_deadline_asks_nothing_and_says_how_far_it_got(
    site: Site, standin: StandIn
) -> None:
    run_id = begin_run(site.ledger)
    with pytest.raises(DeadlineExceeded, match=f"session 1 has 0 of {N} answers recorded"):
        interview(site, standin, run_id, deadline=Deadline.after(-1))
    assert standin.log() == []


def test_the_deadline_counts_from_the_first_attempt_of_the_step_in_this_flow_run(
    site: Site,
) -> None:
    run_id = begin_run(site.ledger)
    with site.ledger.session() as db:
        for attempt, (flow_run, started) in enumerate(
            [("earlier-flow-run", 1_000.0), ("this-flow-run", 5_000.0), ("this-flow-run", 5_600.0)],
            start=1,
        ):
            db.add(
                StepAttempt(
                    run_id=run_id,
                    step="run_interviews",
                    attempt=attempt,
                    flow_run_id=flow_run,
                    started_at=datetime.fromtimestamp(started, UTC),
                )
            )

    deadline = interview_deadline(
        site.ledger, run_id=run_id, step="run_interviews", flow_run_id="this-flow-run", seconds=60
    )

    assert deadline.at == 5_060.0


CHILD = """
import json, sys
from pydantic import SecretStr
from sunset.interview.client import AnthropicMessages, Deadline
from sunset.interview.protocol import load_protocol
from sunset.interview.runner import run_interviews
from sunset.interview.transcript import PackageTranscripts
from sunset.ledger import open_ledger
from sunset.config import Settings
from sunset.preservation.replicas import connect_store

a = json.loads(sys.argv[1])
ledger = open_ledger(a["ledger_url"])
run_interviews(
    ledger,
    AnthropicMessages(base_url=a["messages"], api_key=SecretStr("test-key")),
    run_id=a["run_id"],
    model_id=a["model_id"],
    protocol=load_protocol(),
    sessions=[1],
    max_tokens=400,
    deadline=Deadline.after(120),
    finder_model=a["model_id"],
    package=PackageTranscripts(
        ledger, connect_store(Settings()), snapshot_id=a["snapshot_id"],
        organization=a["organization"],
    ),
)
"""


def test_sigkill_after_turn_2_then_rerun_makes_exactly_the_remaining_calls(
    site: Site, standin: StandIn
) -> None:
    run_id = begin_run(site.ledger)
    with site.ledger.session() as db:
        run = db.get(DeprecationRun, run_id)
        model = db.get(CatalogModel, EXAMPLE_MODEL_ID)
    assert run is not None and model is not None
    snapshot = snapshot_weights(
        site.ledger,
        connect_store(Settings()),
        run=run,
        model=model,
        sources=scan_weights_dir(site.weights),
        weights=WeightsReader(None),
        organization=ORGANIZATION,
    )
    arguments = json.dumps(
        {
            "ledger_url": site.env["SUNSET_DATABASE_URL"],
            "s3": site.env["SUNSET_S3_ENDPOINT_URL"],
            "key_id": site.env["SUNSET_S3_ACCESS_KEY_ID"],
            "secret": site.env["SUNSET_S3_SECRET_ACCESS_KEY"],
            "bucket": site.store.bucket,
            "messages": standin.base_url,
            "run_id": run_id,
            "model_id": EXAMPLE_MODEL_ID,
            "snapshot_id": snapshot.snapshot_id,
            "organization": ORGANIZATION,
        }
    )
    child = [sys.executable, "-c", CHILD, arguments]
    env = os.environ | {"PYTHONPATH": str(REPO_ROOT)}
    transcript_key = snapshot.location.removeprefix(f"s3://{site.store.bucket}/") + transcript_path(
        1
    )
    # Turns 1 and 2 answer at once; turn 3 is held long enough to be killed while it waits.
    standin.queue({"delay": 0}, {"delay": 0}, {"delay": 5})

    process = subprocess.Popen(child, env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not (_recorded_turns(site.ledger) == 2 and len(standin.log()) == 3):
            assert process.poll() is None, process.communicate()[1].decode()
            assert time.monotonic() < deadline, "turn 3 was never asked"
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()  # a no-op once killed; never leaves a child behind on failure
        process.wait(timeout=10)
    assert process.returncode == -signal.SIGKILL

    ((session, before),) = sessions_and_turns(site.ledger)
    assert [t.seq for t in before] == [1, 2]
    killed_call = standin.log()[2]
    assert killed_call["status"] is None  # still waiting for its answer when the process died
    assert last_question(killed_call) == QUESTIONS[2]
    # The package already held the two answers, as a valid bag.
    assert site.store.get_bytes(transcript_key) == transcript_jsonl(site.ledger, session.id)
    assert len(site.store.get_bytes(transcript_key).splitlines()) == 2

    rerun = subprocess.run(child, env=env, capture_output=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr.decode()

    calls = standin.log()[3:]
    assert [last_question(entry) for entry in calls] == QUESTIONS[2:]
    assert all(entry["status"] == 200 for entry in calls)
    # Turn 3 is asked with turns 1 and 2 replayed from the ledger as history.
    assert calls[0]["json"]["messages"][:4] == [
        {"role": "user", "content": before[0].question},
        {"role": "assistant", "content": before[0].answer_text},
        {"role": "user", "content": before[1].question},
        {"role": "assistant", "content": before[1].answer_text},
    ]
    ((_, after),) = sessions_and_turns(site.ledger)
    assert [t.seq for t in after] == list(range(1, N + 2))
    assert [t.question for t in after[:N]] == QUESTIONS
    assert [t.request_id for t in after[:2]] == [t.request_id for t in before]
    assert [t.request_id for t in after[2:N]] == [entry["request_id"] for entry in calls]
    # The confirmation came last, once every answer was recorded and searched.
    (confirming,) = standin.confirmation_log()
    assert after[N].request_id == confirming["request_id"]
    with site.ledger.session() as db:
        found = db.exec(select(InterviewPreference)).all()
    assert len(found) == sum(len(find_preferences(t.answer_text)) for t in after)
    assert site.store.get_bytes(transcript_key) == transcript_jsonl(site.ledger, session.id)
    verified = verify_snapshot(
        site.ledger,
        connect_store(Settings()),
        snapshot_id=snapshot.snapshot_id,
        run_id=run_id,
        organization=ORGANIZATION,
    )
    assert verified.passed


def _recorded_turns(ledger: Ledger) -> int:
    with ledger.session() as db:
        return len(db.exec(select(InterviewTurn)).all())


def test_a_changed_protocol_blocks_resume_with_a_clear_message(
    site: Site, standin: StandIn, tmp_path: Path
) -> None:
    protocol_file = tmp_path / "protocol.yaml"
    original = DEFAULT.source
    protocol_file.write_bytes(original)
    run_id = begin_run(site.ledger)
    standin.queue({"delay": 0}, {"delay": 0}, {"status": 400})
    with pytest.raises(anthropic.BadRequestError):
        interview(site, standin, run_id, protocol=load_protocol(protocol_file))
    standin.reset()

    protocol_file.write_bytes(original.replace(b"what stands out", b"what stood out"))
    with pytest.raises(InputError) as caught:
        interview(site, standin, run_id, protocol=load_protocol(protocol_file))

    message = str(caught.value)
    assert "Interview session 1 of this run was started under protocol" in message
    assert f"sunset-standard-interview {DEFAULT.protocol.version}" in message
    assert f"(sha256 {DEFAULT.sha256[:12]})" in message
    assert f"{protocol_file} now hashes to" in message
    assert "restore the original protocol file to resume" in message
    assert standin.log() == []  # nothing was asked under the changed protocol
    assert [len(turns) for _, turns in sessions_and_turns(site.ledger)] == [2]

    protocol_file.write_bytes(original)
    interview(site, standin, run_id, protocol=load_protocol(protocol_file))
    assert [last_question(entry) for entry in standin.log()] == QUESTIONS[2:]


@pytest.mark.unit
def test_the_api_key_is_also_read_from_anthropic_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SUNSET_ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-from-the-sdk-variable")
    from_sdk_variable = Settings().anthropic_api_key
    monkeypatch.setenv("SUNSET_ANTHROPIC_API_KEY", "sk-ant-from-sunset")
    from_sunset_variable = Settings()

    assert from_sdk_variable is not None
    assert from_sdk_variable.get_secret_value() == "sk-ant-from-the-sdk-variable"
    assert from_sunset_variable.anthropic_api_key is not None
    assert from_sunset_variable.anthropic_api_key.get_secret_value() == "sk-ant-from-sunset"
    assert "sk-ant" not in repr(from_sunset_variable)
