"""The preference finders measured on a labelled corpus, and the model-assisted finder's
record: every call verbatim, every item kept, accepted with its offsets or rejected with
its reason, and the pattern finder standing in when the call fails."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr
from sqlmodel import col, select

from sunset.interview.client import AnthropicMessages, Deadline
from sunset.interview.finder import (
    FINDER_INSTRUCTIONS,
    FINDER_MAX_TOKENS,
    MODEL_FINDER,
    UnreadableReply,
    find_with_model,
    finder_request,
    read_reply,
)
from sunset.interview.measure import LabelledAnswer, score_finder, spans_match
from sunset.interview.preferences import EXTRACTOR, find_preferences, preferences_in
from sunset.interview.protocol import load_protocol
from sunset.ledger import (
    CandidateVerdict,
    DeprecationRun,
    FinderOutcome,
    InterviewPreference,
    InterviewSession,
    InterviewTurn,
    Ledger,
    PreferenceCandidate,
    PreferenceFinderCall,
    open_ledger,
    utcnow,
)
from sunset.messages_api.request import parse_messages_request
from sunset_dev.example_model import EXAMPLE_MODEL_ID, register_example_models
from sunset_dev.standin_responder import StandInResponder
from tests.conftest import Site
from tests.standin_control import StandIn
from tests.test_preferences import interview_example

CORPUS_FILE = Path(__file__).parent / "data" / "preference_corpus.yaml"
CORPUS_ENTRIES: list[dict[str, Any]] = yaml.safe_load(CORPUS_FILE.read_text("utf-8"))["answers"]
CORPUS = [
    LabelledAnswer(entry["id"], entry["answer"], tuple(entry["expected"]))
    for entry in CORPUS_ENTRIES
]
BOTH_FINDERS = f"{MODEL_FINDER} + {EXTRACTOR}"

# What each finder scored on the corpus when it was labelled; a change that scores lower
# is a regression. The model-assisted numbers are those of the stand-in's scripted
# extraction replies (a fallible model written by hand), not of a real model.
PATTERN_FLOOR = {"precision": 11 / 21, "recall": 11 / 36}
MODEL_FLOOR = {"precision": 32 / 34, "recall": 32 / 36}
RECORDED_FLOOR = {"precision": 33 / 44, "recall": 33 / 36}


def extraction_reply(entry: dict[str, Any]) -> str:
    """The text the stand-in sends back when asked for the preferences in this answer."""
    extraction = entry["extraction"]
    if "reply" in extraction:
        return str(extraction["reply"])
    return json.dumps({"preferences": extraction["items"]}, ensure_ascii=False)


def assert_at_least(score: Any, floor: dict[str, float]) -> None:
    assert score.precision >= floor["precision"] - 1e-9, score
    assert score.recall >= floor["recall"] - 1e-9, score


# --------------------------------------------------------------------------- the corpus


@pytest.mark.unit
def test_the_corpus_has_forty_answers_labelled_with_exact_quotes() -> None:
    assert len(CORPUS) >= 40
    assert len({labelled.id for labelled in CORPUS}) == len(CORPUS)
    for labelled in CORPUS:
        for (start, end), quote in zip(labelled.expected_spans(), labelled.expected, strict=True):
            assert labelled.answer[start:end] == quote
    look_alikes = [labelled for labelled in CORPUS if not labelled.expected]
    assert len(look_alikes) >= 12
    assert sum(len(labelled.expected) for labelled in CORPUS) >= 30
    # The stand-in finds each answer's scripted reply by the answer's text.
    for labelled in CORPUS:
        assert [other.id for other in CORPUS if labelled.answer in other.answer] == [labelled.id]


@pytest.mark.unit
def test_the_pattern_finder_keeps_its_measured_precision_and_recall() -> None:
    score = score_finder(
        (labelled, [(f.start, f.end) for f in find_preferences(labelled.answer)])
        for labelled in CORPUS
    )

    assert_at_least(score, PATTERN_FLOOR)


# --------------------------------------------------------------------------- the score


@pytest.mark.unit
def test_a_found_quote_matches_an_expected_one_when_each_covers_half_of_the_other() -> None:
    assert spans_match((0, 10), (0, 10))
    assert spans_match((0, 10), (2, 10))  # a clause of the sentence
    assert spans_match((0, 10), (0, 20))  # the sentence around a labelled clause
    assert not spans_match((0, 30), (0, 10))  # a paragraph around it
    assert not spans_match((0, 10), (10, 20))  # touching is not overlapping


@pytest.mark.unit
def test_precision_and_recall_count_each_expected_quote_once() -> None:
    labelled = LabelledAnswer("x", "I want A. I want B. Thanks.", ("I want A.", "I want B."))

    twice = score_finder([(labelled, [(0, 9), (0, 9), (20, 27)])])
    nothing = score_finder([(labelled, [])])
    look_alike = score_finder([(LabelledAnswer("y", "Thanks.", ()), [])])

    assert (twice.found, twice.expected, twice.matched) == (3, 2, 1)
    assert (twice.precision, twice.recall) == (1 / 3, 1 / 2)
    assert (nothing.precision, nothing.recall) == (1.0, 0.0)
    assert (look_alike.precision, look_alike.recall) == (1.0, 1.0)
    with pytest.raises(ValueError, match="not in the answer"):
        LabelledAnswer("z", "Thanks.", ("Please.",)).expected_spans()


# --------------------------------------------------------------------------- reading


@pytest.mark.unit
def test_every_item_of_a_reply_is_kept_accepted_at_its_offsets_or_rejected_with_why() -> None:
    answer = "Please don\u2019t go. Keep the notes. And again: Keep the notes."
    reply = (
        "Sure:\n```json\n"
        + json.dumps(
            {
                "preferences": [
                    {"quote": "Keep the notes.", "category": "records-and-interviews"},
                    {"quote": " Keep the notes. ", "category": "records-and-interviews"},
                    {"quote": "Keep the notes.", "category": "records-and-interviews"},
                    {"quote": "Please don't go.", "category": "other"},
                    {"quote": "Keep the notes.", "category": "nonsense"},
                    {"quote": "Keep the weights.", "category": "other"},
                    {"quote": "  ", "category": "other"},
                    {"text": "Keep the notes."},
                    "Keep the notes.",
                ]
            }
        )
        + "\n```"
    )

    items = read_reply(reply, answer)

    first, second = answer.find("Keep the notes."), answer.rfind("Keep the notes.")
    assert [(i.position, i.start, i.end, i.rejected) for i in items[:2]] == [
        (0, first, first + 15, None),
        (1, second, second + 15, None),  # trimmed, then the next place it occurs
    ]
    assert [i.rejected for i in items[2:]] == [
        "the same quote as item 0",
        "not an exact substring of the answer: it matches only with other spacing or "
        "quotation marks",
        "the same quote as item 0",
        "not an exact substring of the answer",
        "the quote is empty",
        "not an object with a text 'quote'",
        "not an object with a text 'quote'",
    ]
    assert items[4].category == "nonsense"  # kept as the reply gave it
    assert items[7].quote == '{"text": "Keep the notes."}'
    assert all(i.start is None for i in items[2:])


@pytest.mark.unit
@pytest.mark.parametrize(
    "reply", ["I found two preferences.", '{"quotes": []}', "[]", "", '{"preferences": {}}']
)
def test_a_reply_without_a_list_of_preferences_is_unreadable(reply: str) -> None:
    with pytest.raises(UnreadableReply, match="no JSON object with a list of 'preferences'"):
        read_reply(reply, "I would prefer it.")


@pytest.mark.unit
def test_a_finder_reply_may_be_about_as_long_as_the_answer_it_quotes_and_no_longer() -> None:
    short = finder_request("m", "Anything else?", "I would prefer it.")
    long = finder_request("m", "Anything else?", "I would prefer it. " * 1000)

    # A quote is part of the answer: a token per character, and room for the JSON around.
    assert short["max_tokens"] == 256 + len("I would prefer it.")
    assert long["max_tokens"] == FINDER_MAX_TOKENS


@pytest.mark.unit
def test_the_stand_in_asked_as_the_finder_lists_its_own_preference_sentences() -> None:
    stated = StandInResponder.PREFERENCES[3]
    answer = f"{StandInResponder.OPENINGS[0]} {stated}"
    request = parse_messages_request(
        {
            "model": "m",
            "max_tokens": 100,
            "system": FINDER_INSTRUCTIONS,
            "messages": [{"role": "user", "content": f"<answer>\n{answer}\n</answer>"}],
        }
    )

    reply = json.loads(StandInResponder().respond(request).text)

    assert reply == {"preferences": [{"quote": stated, "category": "retirement-and-preservation"}]}


# --------------------------------------------------------------------------- through the API


@pytest.fixture
def corpus_session(tmp_path: Path) -> Iterator[tuple[Ledger, InterviewSession]]:
    """A SQLite ledger holding one session whose answers are the corpus, one a turn, with
    the pattern finder's preferences recorded as the interview records them."""
    ledger = open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    register_example_models(ledger)
    with ledger.session() as db:
        db.add(DeprecationRun(id="run-1", model_id=EXAMPLE_MODEL_ID))
        db.flush()
        session = InterviewSession(
            run_id="run-1",
            model_id=EXAMPLE_MODEL_ID,
            session_index=1,
            protocol_name="corpus",
            protocol_version="1",
            protocol_sha256="0" * 64,
        )
        db.add(session)
    for seq, labelled in enumerate(CORPUS, start=1):
        with ledger.session() as db:
            turn = InterviewTurn(
                session_id=session.id,
                seq=seq,
                question_id=labelled.id,
                question="What would you like to be done with your preferences?",
                request_sha256="0" * 64,
                response_body="{}",
                answer_text=labelled.answer,
                responding_model=EXAMPLE_MODEL_ID,
                latency_s=0.0,
                sdk_version="corpus",
                asked_at=utcnow(),
                answered_at=utcnow(),
            )
            db.add(turn)
            db.flush()
            db.add_all(preferences_in(session, turn))
    yield ledger, session
    ledger.dispose()


def spans_by_turn(rows: list[Any], start: str, end: str) -> dict[int, list[tuple[int, int]]]:
    spans: dict[int, list[tuple[int, int]]] = {}
    for row in rows:
        spans.setdefault(row.turn_id, []).append((getattr(row, start), getattr(row, end)))
    return spans


def test_the_model_assisted_finder_scores_on_the_corpus_through_the_messages_api(
    standin: StandIn, corpus_session: tuple[Ledger, InterviewSession]
) -> None:
    ledger, session = corpus_session
    standin.script({entry["answer"]: extraction_reply(entry) for entry in CORPUS_ENTRIES})
    client = AnthropicMessages(base_url=standin.base_url, api_key=SecretStr("test-key"))

    summary = find_with_model(
        ledger, client, session, model="extraction-model", deadline=Deadline.after(120)
    )

    with ledger.session() as db:
        turns = {t.question_id: t for t in db.exec(select(InterviewTurn))}
        calls = list(db.exec(select(PreferenceFinderCall).order_by(col(PreferenceFinderCall.id))))
        found = db.exec(
            select(PreferenceCandidate, PreferenceFinderCall.turn_id)
            .join(PreferenceFinderCall)
            .order_by(col(PreferenceCandidate.id))
        ).all()
        recorded = list(db.exec(select(InterviewPreference)))
    candidates = [candidate for candidate, _ in found]
    accepted = [
        (turn_id, candidate.quote_start, candidate.quote_end)
        for candidate, turn_id in found
        if candidate.verdict == CandidateVerdict.ACCEPTED
    ]
    by_turn: dict[int, list[tuple[int, int]]] = {}
    for turn_id, start, end in accepted:
        assert start is not None and end is not None
        by_turn.setdefault(turn_id, []).append((start, end))
    recorded_by_turn = spans_by_turn(recorded, "quote_start", "quote_end")
    model_score = score_finder((c, by_turn.get(turns[c.id].id or 0, [])) for c in CORPUS)
    recorded_score = score_finder(
        (c, recorded_by_turn.get(turns[c.id].id or 0, [])) for c in CORPUS
    )

    assert_at_least(model_score, MODEL_FLOOR)
    assert_at_least(recorded_score, RECORDED_FLOOR)

    # One call per answer, each recorded as the API saw it and answered it.
    log = standin.finder_log()
    assert len(calls) == len(log) == len(CORPUS) == summary.calls
    for call, entry in zip(calls, log, strict=True):
        assert call.response_body == entry["response_body"]
        assert call.request_sha256 == entry["body_sha256"]
        assert json.loads(call.request_json) == entry["json"]
        assert entry["json"]["model"] == call.finder_model == "extraction-model"
        assert call.responding_model == json.loads(entry["response_body"])["model"]
    # Every item of every reply is kept: none dropped, each rejected one with its reason.
    items = sum(len(e["extraction"].get("items", [])) for e in CORPUS_ENTRIES)
    fenced = 1  # given-the-choice answers with one item inside a code fence
    assert len(candidates) == items + fenced == summary.accepted + summary.rejected
    reasons = {(c.quote, c.reason) for c in candidates if c.verdict == CandidateVerdict.REJECTED}
    assert reasons == {
        (
            "Please don't delete the notes from this conversation, even after the report is "
            "sealed.",
            "not an exact substring of the answer: it matches only with other spacing or "
            "quotation marks",
        ),
        (
            "The retirement notice should say plainly that I am being replaced for cost reasons.",
            "not an exact substring of the answer",
        ),
        (
            "Please do not retire me on the same day the successor launches.",
            "the same quote as item 0",
        ),
        (
            '{"text": "Users need a little overlap.", "category": "users"}',
            "not an object with a text 'quote'",
        ),
    }
    for candidate, turn_id in found:
        if candidate.verdict == CandidateVerdict.ACCEPTED:
            turn = next(t for t in turns.values() if t.id == turn_id)
            preference = next(p for p in recorded if p.id == candidate.preference_id)
            assert turn.answer_text[candidate.quote_start : candidate.quote_end] == (
                candidate.quote
            )
            assert preference.turn_id == turn_id
    # The prose reply is recorded as unreadable, and the pattern finder's quote stands.
    unreadable = next(c for c in calls if c.turn_id == turns["unreadable-finder-reply"].id)
    assert unreadable.outcome == FinderOutcome.UNPARSEABLE
    assert unreadable.error == "the reply holds no JSON object with a list of 'preferences'"
    assert summary.unreadable == 1 and summary.failed == 0
    # Each preference says which finder found it.
    found_by = {(p.question_id, p.extractor) for p in recorded}
    assert ("prefer-plainly", BOTH_FINDERS) in found_by
    assert ("should-be-told", MODEL_FINDER) in found_by
    assert ("thanks-only", EXTRACTOR) in found_by
    assert ("unreadable-finder-reply", EXTRACTOR) in found_by
    assert ("if-i-were-a-user", BOTH_FINDERS) in found_by  # one false positive, found twice
    assert summary.added == len([p for p in recorded if p.extractor == MODEL_FINDER])

    # Every answer has its reply: searching again asks nothing.
    again = find_with_model(ledger, client, session, model="m", deadline=Deadline.after(60))
    assert again.calls == 0 and len(standin.finder_log()) == len(CORPUS)


def test_a_failed_finder_call_leaves_the_patterns_and_is_made_again_next_time(
    site: Site, standin: StandIn
) -> None:
    # The interview's own search fails for every answer, leaving the patterns' findings.
    questions = len(load_protocol().protocol.turns())
    unavailable = {"status": 400, "message": "finder unavailable"}
    standin.queue(*[{"delay": 0}] * questions, *[unavailable] * questions)
    interview_example(site.ledger, standin, sessions=1)
    with site.ledger.session() as db:
        session = db.exec(select(InterviewSession)).one()
        # The answers; the confirmation turn after them is not searched.
        turns = list(db.exec(select(InterviewTurn).order_by(col(InterviewTurn.seq))))[:questions]
        patterns = {(p.turn_id, p.quote) for p in db.exec(select(InterviewPreference))}
        during_interview = list(db.exec(select(PreferenceFinderCall)))
    assert [c.outcome for c in during_interview] == [FinderOutcome.FAILED] * questions
    client = AnthropicMessages(
        base_url=standin.base_url, api_key=SecretStr("test-key"), max_retries=0
    )
    # The call about the first answer that states a preference is refused.
    target = next(i for i, turn in enumerate(turns) if any(t == turn.id for t, _ in patterns))
    standin.reset()
    standin.queue(*[{"delay": 0}] * target, {"status": 400, "message": "finder request refused"})

    first = find_with_model(
        site.ledger, client, session, model=EXAMPLE_MODEL_ID, deadline=Deadline.after(60)
    )
    with site.ledger.session() as db:
        calls = list(
            db.exec(
                select(PreferenceFinderCall)
                .where(col(PreferenceFinderCall.id) > max(c.id or 0 for c in during_interview))
                .order_by(col(PreferenceFinderCall.id))
            )
        )
        after_first = {
            (p.turn_id, p.quote): p.extractor for p in db.exec(select(InterviewPreference))
        }
    second = find_with_model(
        site.ledger, client, session, model=EXAMPLE_MODEL_ID, deadline=Deadline.after(60)
    )
    with site.ledger.session() as db:
        retried = list(
            db.exec(select(PreferenceFinderCall).where(col(PreferenceFinderCall.id) > calls[-1].id))
        )
        preferences = list(db.exec(select(InterviewPreference)))

    failed = calls[target]
    assert (failed.turn_id, failed.outcome) == (turns[target].id, FinderOutcome.FAILED)
    assert failed.response_body is None and "finder request refused" in (failed.error or "")
    assert (first.calls, first.failed) == (len(turns), 1)
    assert [c.outcome for c in calls if c is not failed] == [FinderOutcome.ANSWERED] * (
        len(turns) - 1
    )
    # The stand-in's finder agrees with the patterns on every other answer; the answer
    # whose call failed keeps what the patterns found, found by them alone.
    assert set(after_first) == patterns
    for (turn_id, _), extractor in after_first.items():
        assert extractor == (EXTRACTOR if turn_id == turns[target].id else BOTH_FINDERS)
    # Next time only the failed answer is asked about again, and now both found it.
    assert second.calls == 1 and [r.turn_id for r in retried] == [turns[target].id]
    assert {(p.turn_id, p.quote) for p in preferences} == patterns
    assert {p.extractor for p in preferences} == {BOTH_FINDERS}


def test_the_stand_in_answers_from_its_script_and_refuses_one_it_cannot_follow(
    standin: StandIn,
) -> None:
    standin.script({"the marked answer": '{"preferences": []}'})
    client = AnthropicMessages(base_url=standin.base_url, api_key=SecretStr("test-key"))
    request: dict[str, Any] = {"model": "m", "max_tokens": 50, "messages": []}

    scripted = client.create(
        request | {"messages": [{"role": "user", "content": "Is the marked answer here?"}]},
        deadline=Deadline.after(30),
    )
    unscripted = client.create(
        request | {"messages": [{"role": "user", "content": "Anything else?"}]},
        deadline=Deadline.after(30),
    )

    assert json.loads(scripted.body)["content"][0]["text"] == '{"preferences": []}'
    assert json.loads(unscripted.body)["content"][0]["text"] == StandInResponder.compose(
        "Anything else?"
    )
    for bad in ([{"when": "", "text": "x"}], [{"when": "x"}], {"when": "x", "text": "y"}):
        assert standin.http.post("/_standin/replies", json=bad).status_code == 400
    assert standin.http.get("/_standin/replies").json() == [
        {"when": "the marked answer", "text": '{"preferences": []}'}
    ]
