"""Messages API faults from the stand-in's fault queue: bursts of 429, 529, 500 and
mid-stream errors. The interview ends with exactly one answer per question, or stops
cleanly and resumes at the question it stopped on."""

from __future__ import annotations

import itertools
import os
import random
import time

import anthropic
import pytest
from pydantic import SecretStr
from sqlmodel import select

from sunset.errors import is_transient
from sunset.interview.client import AnthropicMessages, Deadline
from sunset.interview.protocol import load_protocol
from sunset.interview.runner import run_interviews
from sunset.ledger import DeprecationRun, InterviewSession, InterviewTurn
from sunset_dev.example_model import EXAMPLE_MODEL_ID
from tests.conftest import Site
from tests.reliability.tally import TALLY
from tests.reliability.world import (
    PROTOCOL_TURNS,
    TURN_IDS,
    answered_once,
    question_of,
    standin,
    standin_answer,
    standin_faults,
    standin_requests,
)
from tests.standin_control import INVALID_UTF8_BODY, LONE_SURROGATE_BODY, body_fault, sent_body

SEED = int(os.environ.get("SUNSET_FAULT_SEED", "8"))
SQLITE_ONLY = pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
# Each burst stays within the SDK's own retries (2), so no step retry is needed here.
BURST_FAULTS = [
    {"status": 429, "retry_after": 0.01},
    {"status": 529, "retry_after": 0.01},
    {"status": 500, "retry_after": 0.01},
    {"midstream_error": True},
]


def interview(site: Site, run_id: str) -> None:
    client = AnthropicMessages(
        base_url=site.stack.endpoints.messages_base_url, api_key=SecretStr("test-key")
    )
    run_interviews(
        site.ledger,
        client,
        run_id=run_id,
        model_id=EXAMPLE_MODEL_ID,
        protocol=load_protocol(),
        sessions=[1],
        max_tokens=1024,
        deadline=Deadline.after(120),
        finder_model=EXAMPLE_MODEL_ID,
    )


def new_run(site: Site) -> str:
    with site.ledger.session() as db:
        run = DeprecationRun(model_id=EXAMPLE_MODEL_ID)
        db.add(run)
    return run.id


def turns(site: Site) -> list[InterviewTurn]:
    with site.ledger.session() as db:
        return list(db.exec(select(InterviewTurn).order_by(InterviewTurn.seq)))


@SQLITE_ONLY
def test_bursts_of_errors_still_give_exactly_one_complete_answer_per_question(site: Site) -> None:
    base = site.stack.endpoints.messages_base_url
    rng = random.Random(SEED)
    kinds = itertools.cycle(rng.sample(BURST_FAULTS, len(BURST_FAULTS)))
    bursts = [[next(kinds) for _ in range(rng.randint(1, 2))] for _ in PROTOCOL_TURNS]
    # A zero delay is a no-op entry: it keeps each burst in front of its own question.
    standin(base, "POST", "/_standin/faults", [f for b in bursts for f in [*b, {"delay": 0}]])
    since = time.time()

    interview(site, new_run(site))

    log = standin_requests(base, since, EXAMPLE_MODEL_ID)
    TALLY.faults.update(standin_faults(log))
    served = standin_faults(log)
    assert sum(served.values()) == sum(len(b) for b in bursts)
    assert set(served) == {"messages 429", "messages 529", "messages 500", "messages mid-stream"}
    assert standin(base, "GET", "/_standin/faults") == []
    recorded = turns(site)
    assert [t.question_id for t in recorded] == TURN_IDS
    lost = [
        t.question_id
        for t in recorded
        if t.answer_text != standin_answer(t.question)  # complete, never cut short
    ]
    TALLY.lost(lost)
    assert lost == []
    assert [t.retries for t in recorded] == [len(b) for b in bursts] + [0]  # confirmation
    assert set(answered_once(log).values()) == {1}


@SQLITE_ONLY
def test_a_burst_longer_than_the_retries_stops_cleanly_and_the_interview_resumes(
    site: Site,
) -> None:
    base = site.stack.endpoints.messages_base_url
    stop_at = 4  # the fourth question meets three overloads in a row: one more than retried
    overloaded = {"status": 529, "retry_after": 0.01}
    standin(base, "POST", "/_standin/faults", [{"delay": 0}] * (stop_at - 1) + [overloaded] * 3)
    since = time.time()
    run_id = new_run(site)

    with pytest.raises(anthropic.APIStatusError) as stopped:
        interview(site, run_id)

    assert is_transient(stopped.value)  # the step would retry it
    assert [t.seq for t in turns(site)] == list(range(1, stop_at))
    with site.ledger.session() as db:
        assert db.exec(select(InterviewSession)).one().state == "running"

    interview(site, run_id)

    log = standin_requests(base, since, EXAMPLE_MODEL_ID)
    TALLY.faults.update(standin_faults(log))
    assert [t.seq for t in turns(site)] == list(range(1, len(TURN_IDS) + 1))
    assert set(answered_once(log).values()) == {1}
    refused = [question_of(e) for e in log if e["status"] != 200]
    assert refused == [PROTOCOL_TURNS[stop_at - 1].question_id] * 3
    with site.ledger.session() as db:
        assert db.exec(select(InterviewSession)).one().state == "completed"


@SQLITE_ONLY
def test_answers_that_are_not_valid_utf8_or_unicode_are_kept_raw_and_the_interview_completes(
    site: Site,
) -> None:
    base = site.stack.endpoints.messages_base_url
    bodies = {2: LONE_SURROGATE_BODY, 5: INVALID_UTF8_BODY}  # by turn
    faults = [body_fault(bodies[seq]) if seq in bodies else {"delay": 0} for seq in range(1, 6)]
    standin(base, "POST", "/_standin/faults", faults)
    since = time.time()

    interview(site, new_run(site))

    log = standin_requests(base, since, EXAMPLE_MODEL_ID)
    TALLY.faults.update(standin_faults(log))
    assert standin_faults(log)["messages undecodable body"] == 2
    recorded = turns(site)
    assert [t.question_id for t in recorded] == TURN_IDS
    # Every answer is kept as the bytes the stand-in sent: raw where they are no text.
    kept = {t.seq: t.response_raw or t.response_body.encode() for t in recorded}
    lost = [t.question_id for t in recorded if kept[t.seq] != sent_body(log[t.seq - 1])]
    TALLY.lost(lost)
    assert lost == []
    assert [t.seq for t in recorded if t.flagged == "undecodable"] == sorted(bodies)
    with site.ledger.session() as db:
        assert db.exec(select(InterviewSession)).one().state == "completed"
