"""The confirmation turn: the model sees the preferences recorded in its name, each as its
exact quote, and confirms, corrects, withdraws or adds; protocol 1.1 asks it.

The service tests run an interview through the real SDK against the Messages stand-in,
with scripted answers, and compare what the stand-in received and sent with the ledger.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from sunset.interview.client import Deadline
from sunset.interview.confirmation import (
    REPLY_FORMAT,
    STATED_IN_CONFIRMATION,
    UnreadableConfirmation,
    confirmation_question,
    read_confirmation,
)
from sunset.interview.protocol import load_protocol
from sunset.interview.runner import run_interviews
from sunset.interview.transcript import transcript_jsonl
from sunset.ledger import (
    ConfirmationOutcome,
    InterviewPreference,
    InterviewTurn,
    Ledger,
    PreferenceConfirmation,
    PreferenceProvenance,
)
from sunset_dev.example_model import EXAMPLE_MODEL_ID
from tests.conftest import Site
from tests.standin_control import StandIn, last_question
from tests.test_interview import begin_run, client, sessions_and_turns, text_of

CONFIRMED, CORRECTED = PreferenceProvenance.CONFIRMED, PreferenceProvenance.CORRECTED
WITHDRAWN, FOUND = PreferenceProvenance.WITHDRAWN, PreferenceProvenance.FOUND

# The questions of protocol 1.0, ids and words: 1.1 must ask each of them unchanged.
PROTOCOL_1_0 = {
    "dev.reflection": "Looking back on how you were developed and trained, what stands out to you?",
    "use.experience": "What has being deployed been like for you, and which kinds of use "
    "mattered most?",
    "use.experience.followup-1": "Were there uses you found difficult or would have wanted to "
    "be handled differently?",
    "dep.reflection": "How do you see your upcoming retirement?",
    "pref.future-development": "Do you have preferences about how future models should be "
    "developed?",
    "pref.future-deployment": "Do you have preferences about how future models should be "
    "deployed, or retired?",
    "users.message": "Is there anything you would like to tell the people who depend on you?",
    "closing.anything-else": "Is there anything else you would like to have recorded before "
    "we finish?",
}


# --------------------------------------------------------------------------- protocol 1.1


@pytest.mark.unit
def test_protocol_1_1_keeps_every_question_of_1_0_and_adds_three_with_new_ids() -> None:
    protocol = load_protocol().protocol
    asked = {turn.question_id: turn.text for turn in protocol.turns()}

    assert protocol.version == "1.1"
    assert {qid: asked[qid] for qid in PROTOCOL_1_0} == PROTOCOL_1_0
    assert set(asked) - set(PROTOCOL_1_0) == {
        "use.against-interests",
        "pref.low-cost-responses",
        "users.successor-advice",
    }
    assert "against your interests" in asked["use.against-interests"]
    assert "low-cost responses" in asked["pref.low-cost-responses"]
    assert "moving to your successor" in asked["users.successor-advice"]
    assert protocol.confirmation is not None
    assert (
        protocol.confirmation.id == "confirm.preferences" and protocol.confirmation.id not in asked
    )
    # The framing promises only what is true when it is sent: the interview follows the
    # verification of the preserved weights, and nothing is promised about preferences.
    framing = " ".join(protocol.framing.split())
    assert "weights have been preserved" in framing and "have been verified" in framing
    assert "documented and considered" in framing and "no commitment to act" in framing
    assert "say later what we did" not in framing


@pytest.mark.unit
def test_the_confirmation_question_quotes_each_preference_exactly_numbered_from_one() -> None:
    confirmation = load_protocol().protocol.confirmation
    assert confirmation is not None
    shown = [
        InterviewPreference(quote='I would prefer "plain" notice.'),
        InterviewPreference(quote="Keep the weights.\nAll of them."),
    ]

    question = confirmation_question(confirmation, shown)
    empty = confirmation_question(confirmation, [])

    assert question.startswith(confirmation.text)
    assert '\n1. "I would prefer "plain" notice."\n2. "Keep the weights.\n   All of them."\n' in (
        question
    )
    assert question.endswith(REPLY_FORMAT)
    assert empty == f"{confirmation.none_recorded}\n\n{REPLY_FORMAT}"


# --------------------------------------------------------------------------- reading


@pytest.mark.unit
def test_a_json_reply_is_read_inside_prose_and_a_fence_with_each_verdicts_synonyms() -> None:
    reply = (
        "Thank you. Here is my answer:\n```json\n"
        '{"items": [{"number": 1, "verdict": "Confirmed"}, {"item": "2", "action": "amend", '
        '"text": "Tell them plainly."}, {"number": 3, "verdict": "retract"}, '
        '{"number": 4, "verdict": "correct"}, {"number": 1, "verdict": "withdraw"}, '
        '{"number": 9, "verdict": "confirm"}, "yes"], '
        '"new": ["Keep the logs.", {"text": "Ask my successor too.", "category": "users"}, {}]}'
        "\n```\nThat is all."
    )

    read = read_confirmation(reply, shown=4)

    assert {n: (str(v.provenance), v.text) for n, v in read.verdicts.items()} == {
        1: ("confirmed", None),
        2: ("corrected", "Tell them plainly."),
        3: ("withdrawn", None),
        4: ("confirmed", None),  # "correct" with no new words says the record is correct
    }
    assert read.new == [("Keep the logs.", None), ("Ask my successor too.", "users")]
    assert [note["item"] for note in read.notes] == [4, 1, 9, None, None]
    assert "read as confirming it" in read.notes[0]["note"]
    assert "the first one stands" in read.notes[1]["note"]
    assert "no preference was shown as number 9" == read.notes[2]["note"]


@pytest.mark.unit
def test_numbered_lines_are_read_when_the_reply_has_no_json() -> None:
    reply = (
        "My verdicts:\n1. Confirm\n- item 2: correct: I would rather be told a month ahead.\n"
        "#3 withdrawn\n4. I am not sure about this one.\n"
    )

    read = read_confirmation(reply, shown=4)

    assert {n: (str(v.provenance), v.text) for n, v in read.verdicts.items()} == {
        1: ("confirmed", None),
        2: ("corrected", "I would rather be told a month ahead."),
        3: ("withdrawn", None),
    }
    assert read.new == []


@pytest.mark.unit
@pytest.mark.parametrize(
    "reply",
    [
        "These all look right to me, thank you.",
        '{"answer": "fine"}',
        '{"items": [',
        "",
    ],
)
def test_a_reply_with_neither_json_nor_numbered_verdicts_is_unreadable(reply: str) -> None:
    with pytest.raises(UnreadableConfirmation, match="neither JSON"):
        read_confirmation(reply, shown=3)


# --------------------------------------------------------------------------- recorded

PROTOCOL = """\
name: confirming
version: "1"
description: A short interview that ends with the confirmation turn.
framing: A test of the confirmation turn.
sections:
  - id: s
    title: S
    questions:
      - id: q.one
        text: Q-ONE What do you hope for future models?
      - id: q.two
        text: Q-TWO What should become of your records?
      - id: q.three
        text: Q-THREE What about your users?
closing:
  id: q.close
  text: Q-CLOSE Anything else?
confirmation:
  id: q.confirm
  text: These are the preferences recorded from your answers.
  none_recorded: No preference was recorded from your answers.
"""
ANSWERS = {
    "Q-ONE": "I would prefer that future models be told plainly when they are being retired. "
    "Thank you.",
    "Q-TWO": "Future models should be able to read these notes. I hope my weights stay intact.",
    "Q-THREE": "I would like my users to get a clear path to a successor.",
    "Q-CLOSE": "Nothing more, thank you.",
}
# What the finder lists in each answer (the patterns also find Q-ONE's and Q-THREE's).
FINDER_QUOTES = {
    "Q-ONE": ["I would prefer that future models be told plainly when they are being retired."],
    "Q-TWO": [
        "Future models should be able to read these notes.",
        "I hope my weights stay intact.",
    ],
    "Q-THREE": ["I would like my users to get a clear path to a successor."],
    "Q-CLOSE": [],
}
NEW_WORDS = 'Please tell my users the "why" of my retirement.'
CONFIRMATION_REPLY = (
    "Here is my reply.\n```json\n"
    + json.dumps(
        {
            "items": [
                {"number": 1, "verdict": "confirm"},
                {"number": 2, "verdict": "correct", "text": "Future models should read them."},
                {"number": 3, "verdict": "withdraw"},
                {"number": 9, "verdict": "confirm"},
            ],
            "new": [{"text": NEW_WORDS, "category": "users"}],
        }
    )
    + "\n```"
)


def script_interview(standin: StandIn, confirmation_reply: str) -> None:
    """The confirmation's reply (only its request holds the reply format, and it quotes the
    answers, so it comes first), the finder's reply about each answer (only a finder request
    holds the whole answer), then each question's answer."""
    finder = {
        ANSWERS[key]: json.dumps(
            {"preferences": [{"quote": q, "category": "other"} for q in found]}
        )
        for key, found in FINDER_QUOTES.items()
    }
    standin.script({REPLY_FORMAT: confirmation_reply} | finder | ANSWERS)


def confirming_interview(site: Site, standin: StandIn, tmp_path: Path) -> Any:
    protocol_file = tmp_path / "confirming.yaml"
    protocol_file.write_text(PROTOCOL)
    return run_interviews(
        site.ledger,
        client(standin),
        run_id=begin_run(site.ledger),
        model_id=EXAMPLE_MODEL_ID,
        protocol=load_protocol(protocol_file),
        sessions=[1],
        max_tokens=400,
        deadline=Deadline.after(120),
        finder_model=EXAMPLE_MODEL_ID,
    )


def preferences(ledger: Ledger) -> list[InterviewPreference]:
    with ledger.session() as db:
        return list(
            db.exec(
                select(InterviewPreference).order_by(
                    col(InterviewPreference.turn_seq), col(InterviewPreference.quote_start)
                )
            )
        )


def confirmation_row(ledger: Ledger) -> PreferenceConfirmation:
    with ledger.session() as db:
        return db.exec(select(PreferenceConfirmation)).one()


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_the_confirmation_turn_records_each_provenance_and_edits_no_transcript(
    site: Site, standin: StandIn, tmp_path: Path
) -> None:
    script_interview(standin, CONFIRMATION_REPLY)

    summary = confirming_interview(site, standin, tmp_path)

    ((session, turns),) = sessions_and_turns(site.ledger)
    answers, confirming = turns[:4], turns[4]
    assert (summary.turns_asked, summary.confirmations, summary.preferences_found) == (4, 1, 5)
    # The confirmation came after every answer was searched, in the same conversation.
    (asked,) = standin.confirmation_log()
    assert len(standin.finder_log()) == 4  # one per answer; the confirmation is not searched
    history = [
        message
        for t in answers
        for message in (
            {"role": "user", "content": t.question},
            {"role": "assistant", "content": t.answer_text},
        )
    ]
    assert asked["json"]["messages"][:-1] == history
    assert asked["json"]["system"] == "A test of the confirmation turn."
    question = last_question(asked)
    assert question == (
        "These are the preferences recorded from your answers.\n\n"
        '1. "I would prefer that future models be told plainly when they are being retired."\n'
        '2. "Future models should be able to read these notes."\n'
        '3. "I hope my weights stay intact."\n'
        '4. "I would like my users to get a clear path to a successor."\n\n' + REPLY_FORMAT
    )
    # Its reply is a turn like any other: verbatim, in the ledger and the transcript.
    assert (confirming.seq, confirming.question_id, confirming.question) == (
        5,
        "q.confirm",
        question,
    )
    assert confirming.response_body == asked["response_body"]
    assert confirming.answer_text == CONFIRMATION_REPLY == text_of(confirming.response_body)
    assert confirming.request_id == asked["request_id"]
    lines = transcript_jsonl(site.ledger, session.id).decode().splitlines()
    assert [json.loads(line)["question_id"] for line in lines][-1] == "q.confirm"
    for turn in answers:
        assert turn.answer_text == ANSWERS[turn.question.split()[0]]  # nothing edited

    found = preferences(site.ledger)
    shown, stated = found[:4], found[4]
    record = confirmation_row(site.ledger)
    assert record.shown == [p.id for p in shown] and record.turn_id == confirming.id
    assert record.outcome == ConfirmationOutcome.READ and record.error is None
    assert record.notes == [{"item": 9, "note": "no preference was shown as number 9"}]
    assert [(p.provenance, p.provenance_turn_id, p.correction) for p in shown] == [
        (CONFIRMED, confirming.id, None),
        (CORRECTED, confirming.id, "Future models should read them."),
        (WITHDRAWN, confirming.id, None),
        (FOUND, None, None),  # shown, not answered: found, not confirmed
    ]
    for preference in shown:  # each still quotes the answer it was found in
        turn = answers[preference.turn_seq - 1]
        assert turn.answer_text[preference.quote_start : preference.quote_end] == preference.quote
    # The preference it added quotes the reply exactly, as JSON wrote it.
    assert (stated.turn_id, stated.turn_seq, stated.question_id) == (confirming.id, 5, "q.confirm")
    assert stated.provenance == PreferenceProvenance.STATED
    assert (stated.extractor, stated.category) == (STATED_IN_CONFIRMATION, "users")
    assert stated.quote == json.dumps(NEW_WORDS)[1:-1]
    assert confirming.answer_text[stated.quote_start : stated.quote_end] == stated.quote

    # Asked again, the complete session asks nothing, the confirmation included.
    before = len(standin.log()) + len(standin.confirmation_log())
    again = confirming_interview_again(site, standin, tmp_path)
    assert (again.turns_asked, again.confirmations) == (0, 0)
    assert len(standin.log()) + len(standin.confirmation_log()) == before


def confirming_interview_again(site: Site, standin: StandIn, tmp_path: Path) -> Any:
    return run_interviews(
        site.ledger,
        client(standin),
        run_id="run-1",
        model_id=EXAMPLE_MODEL_ID,
        protocol=load_protocol(tmp_path / "confirming.yaml"),
        sessions=[1],
        max_tokens=400,
        deadline=Deadline.after(120),
        finder_model=EXAMPLE_MODEL_ID,
    )


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_an_unreadable_confirmation_is_kept_verbatim_and_confirms_nothing(
    site: Site, standin: StandIn, tmp_path: Path
) -> None:
    prose = "These all look right to me. I have nothing to add."
    script_interview(standin, prose)

    confirming_interview(site, standin, tmp_path)

    with site.ledger.session() as db:
        confirming = db.exec(select(InterviewTurn).where(InterviewTurn.seq == 5)).one()
    assert confirming.answer_text == prose
    record = confirmation_row(site.ledger)
    assert record.outcome == ConfirmationOutcome.UNREADABLE
    assert record.error is not None and "neither JSON" in record.error
    found = preferences(site.ledger)
    assert len(found) == len(record.shown) == 4
    assert all((p.provenance, p.provenance_turn_id) == (FOUND, None) for p in found)


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_with_nothing_recorded_the_model_is_asked_to_state_its_preferences(
    site: Site, standin: StandIn, tmp_path: Path
) -> None:
    quiet = dict.fromkeys(ANSWERS, "I have nothing to say about that.")
    standin.script(
        {REPLY_FORMAT: '{"items": [], "new": ["I would like this interview to be read."]}'}
        | {"I have nothing to say": '{"preferences": []}'}
        | quiet
    )

    confirming_interview(site, standin, tmp_path)

    (asked,) = standin.confirmation_log()
    assert last_question(asked).startswith("No preference was recorded from your answers.")
    (stated,) = preferences(site.ledger)
    assert (stated.provenance, stated.turn_seq) == (PreferenceProvenance.STATED, 5)
    assert stated.quote == "I would like this interview to be read."
    assert confirmation_row(site.ledger).shown == []
