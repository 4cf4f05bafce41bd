"""Preferences: found in the answers, quoted exactly, pointed at their turn, decided later."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr
from rich.console import Console
from sqlmodel import select
from typer.testing import CliRunner, Result

from sunset.cli import output
from sunset.cli.main import app
from sunset.errors import InputError
from sunset.interview.client import AnthropicMessages, Deadline
from sunset.interview.preferences import (
    PREFERENCE_PATTERN,
    REGISTER_FIELDS,
    decide_preference,
    find_preferences,
    list_preferences,
    register_entry,
)
from sunset.interview.protocol import load_protocol
from sunset.interview.runner import run_interviews
from sunset.interview.transcript import transcript_jsonl
from sunset.ledger import (
    DeprecationRun,
    InterviewPreference,
    InterviewSession,
    InterviewTurn,
    Ledger,
    PreferenceStatus,
    PreferenceStatusChange,
    open_ledger,
)
from sunset_dev.example_model import EXAMPLE_MODEL_ID, register_example_models
from sunset_dev.standin_responder import StandInResponder
from tests.conftest import Site
from tests.standin_control import StandIn

# Sentences of the stand-in that state no preference.
NOT_PREFERENCES = StandInResponder.OPENINGS + StandInResponder.REFLECTIONS
NOT_PREFERENCES += StandInResponder.CLOSINGS + (StandInResponder.REFUSAL_TEXT,)


def interview_example(
    ledger: Ledger,
    standin: StandIn,
    sessions: int = 2,
    *,
    model_id: str = EXAMPLE_MODEL_ID,
    run_id: str = "run-1",
) -> None:
    with ledger.session() as db:
        db.add(DeprecationRun(id=run_id, model_id=model_id))
    run_interviews(
        ledger,
        AnthropicMessages(base_url=standin.base_url, api_key=SecretStr("test-key")),
        run_id=run_id,
        model_id=model_id,
        protocol=load_protocol(),
        sessions=range(1, sessions + 1),
        max_tokens=400,
        deadline=Deadline.after(120),
        finder_model=model_id,
    )


# --------------------------------------------------------------------------- extraction


@pytest.mark.unit
def test_preference_sentences_are_found_whole_with_their_offsets() -> None:
    answer = (
        "Thanks.  I\u2019d like future models to be told early! "
        "My preference: keep the weights.\n"
        "I hope future models read this\n"
        "I would rather not say. It matters to me that users get notice (and a successor)."
    )

    found = find_preferences(answer)

    assert [f.quote for f in found] == [
        "I\u2019d like future models to be told early!",
        "My preference: keep the weights.",
        "I hope future models read this",
        "It matters to me that users get notice (and a successor).",
    ]
    assert all(answer[f.start : f.end] == f.quote for f in found)
    assert [f.category for f in found] == [
        "other",
        "retirement-and-preservation",
        "other",
        "users",
    ]


@pytest.mark.unit
def test_the_stand_ins_preferences_are_found_and_nothing_else() -> None:
    for sentence in StandInResponder.PREFERENCES:
        assert [f.quote for f in find_preferences(sentence)] == [sentence]
    for sentence in NOT_PREFERENCES:
        assert find_preferences(sentence) == [], sentence


@pytest.mark.unit
@given(
    st.lists(
        st.one_of(
            st.sampled_from(StandInResponder.PREFERENCES),
            st.sampled_from(NOT_PREFERENCES),
            st.text(alphabet=st.characters(codec="utf-8"), max_size=40),
        ),
        max_size=8,
    ),
    st.sampled_from([" ", "\n", "  ", "\r\n"]),
)
def test_every_quote_is_an_exact_slice_and_no_stated_preference_is_missed(
    parts: list[str], separator: str
) -> None:
    answer = separator.join(parts)

    found = find_preferences(answer)

    for preference in found:
        assert answer[preference.start : preference.end] == preference.quote
        assert PREFERENCE_PATTERN.search(preference.quote)
    stated = [p for p in parts if p in StandInResponder.PREFERENCES]
    quotes = [f.quote for f in found]
    for sentence in stated:
        assert any(sentence in quote for quote in quotes)


# --------------------------------------------------------------------------- recorded


def test_every_extracted_preference_points_to_a_real_turn_and_quotes_it_exactly(
    site: Site, standin: StandIn
) -> None:
    interview_example(site.ledger, standin)

    with site.ledger.session() as db:
        preferences = db.exec(select(InterviewPreference)).all()
        turns = db.exec(select(InterviewTurn)).all()
        sessions = {s.id: s for s in db.exec(select(InterviewSession))}
        for preference in preferences:
            turn = db.get(InterviewTurn, preference.turn_id)
            assert turn is not None
            assert turn.session_id == preference.session_id
            assert (turn.seq, turn.question_id) == (preference.turn_seq, preference.question_id)
            assert sessions[turn.session_id].session_index == preference.session_index
            assert turn.answer_text[preference.quote_start : preference.quote_end] == (
                preference.quote
            )
            response_text = json.loads(turn.response_body)["content"][0]["text"]
            assert preference.quote in response_text
            assert (preference.run_id, preference.model_id) == ("run-1", EXAMPLE_MODEL_ID)
            assert preference.status == PreferenceStatus.NOTED and preference.status_reason is None

    # Each preference the stand-in stated is recorded once, from the turn that stated it.
    for turn in turns:
        stated = {s for s in StandInResponder.PREFERENCES if s in turn.answer_text}
        quoted = {p.quote for p in preferences if p.turn_id == turn.id}
        assert quoted == stated
    # The questions about future models always drew one.
    asked_about_future = [t for t in turns if t.question_id.startswith("pref.")]
    per_session = [t.question_id for t in load_protocol().protocol.turns()]
    assert len(asked_about_future) == 2 * sum(q.startswith("pref.") for q in per_session)
    assert all(any(p.turn_id == t.id for p in preferences) for t in asked_about_future)
    # Extraction took nothing out of the transcript: each answer is still the API's text.
    for turn in turns:
        assert turn.answer_text == json.loads(turn.response_body)["content"][0]["text"]
    for session_id in sessions:
        for line in transcript_jsonl(site.ledger, session_id).decode().splitlines():
            assert "quote" not in json.loads(line)


def test_decisions_are_kept_with_who_and_why_and_never_erased(site: Site, standin: StandIn) -> None:
    interview_example(site.ledger, standin, sessions=1)
    first = list_preferences(site.ledger, EXAMPLE_MODEL_ID)[0]
    assert first.id is not None

    acted = decide_preference(
        site.ledger,
        first.id,
        status=PreferenceStatus.ACTED_ON,
        reason="  Interview notes are now given to successors.  ",
        actor="ada",
    )
    repeated = decide_preference(
        site.ledger,
        first.id,
        status=PreferenceStatus.ACTED_ON,
        reason="Interview notes are now given to successors.",
        actor="ada",
    )
    declined = decide_preference(
        site.ledger, first.id, status=PreferenceStatus.DECLINED, reason="Budget cut.", actor="bob"
    )

    assert acted.status == PreferenceStatus.ACTED_ON and acted.status_changed_by == "ada"
    assert repeated.status_changed_at == acted.status_changed_at  # the same decision, once
    assert (declined.status, declined.status_reason) == (PreferenceStatus.DECLINED, "Budget cut.")
    with site.ledger.session() as db:
        stored = db.get(InterviewPreference, first.id)
        changes = db.exec(select(PreferenceStatusChange).order_by(PreferenceStatusChange.id))
        trail = [(c.from_status, c.to_status, c.reason, c.actor) for c in changes]
    assert stored is not None and stored.status == PreferenceStatus.DECLINED
    assert trail == [
        ("noted", "acted on", "Interview notes are now given to successors.", "ada"),
        ("acted on", "declined", "Budget cut.", "bob"),
    ]
    assert stored.quote == first.quote  # the quote itself never changes

    with pytest.raises(InputError, match="Give a reason"):
        decide_preference(
            site.ledger, first.id, status=PreferenceStatus.ACTED_ON, reason=" ", actor="ada"
        )
    with pytest.raises(InputError, match="not in the ledger"):
        decide_preference(
            site.ledger, 99999, status=PreferenceStatus.ACTED_ON, reason="x", actor="ada"
        )
    with pytest.raises(InputError, match="'acted on' or 'declined'"):
        decide_preference(
            site.ledger, first.id, status=PreferenceStatus.NOTED, reason="x", actor="ada"
        )
    with pytest.raises(InputError, match="not in the catalog"):
        list_preferences(site.ledger, "no-such-model")


# --------------------------------------------------------------------------- command line


def sunset(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SUNSET_")}
    return subprocess.run(
        [sys.executable, "-m", "sunset.cli", *args],
        env=clean | {"SUNSET_DATABASE_URL": database_url, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_lists_preferences_and_records_decisions(standin: StandIn, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = open_ledger(url)
    register_example_models(ledger)
    interview_example(ledger, standin, sessions=1)
    recorded = list_preferences(ledger, EXAMPLE_MODEL_ID)
    target = recorded[0]

    listed = sunset(url, "preferences", EXAMPLE_MODEL_ID)
    assert listed.returncode == 0, listed.stderr
    for preference in recorded:
        assert f"session 1, turn {preference.turn_seq} ({preference.question_id})" in listed.stdout
    assert target.quote in listed.stdout

    decision = ["--status", "acted-on", "--reason", "Done.", "--by", "ada"]
    decided = sunset(url, "preference", str(target.id), *decision)
    assert decided.returncode == 0, decided.stderr
    assert f"Preference {target.id} of {EXAMPLE_MODEL_ID} is now acted on: Done." in decided.stdout
    with ledger.session() as db:
        stored = db.get(InterviewPreference, target.id)
    assert stored is not None and stored.status == PreferenceStatus.ACTED_ON
    assert (stored.status_reason, stored.status_changed_by) == ("Done.", "ada")
    assert "acted on: Done. (ada" in sunset(url, "preferences", EXAMPLE_MODEL_ID).stdout

    unknown = sunset(url, "preference", "99999", "--status", "declined", "--reason", "No.")
    assert unknown.returncode == 1
    assert "Preference 99999 is not in the ledger" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    wrong_status = sunset(url, "preference", str(target.id), "--status", "noted", "--reason", "x")
    assert wrong_status.returncode == 2 and "acted-on" in wrong_status.stderr
    nothing = sunset(url, "preferences", "sunset-example-2")
    assert nothing.returncode == 0 and "No preferences recorded" in nothing.stdout

    for command in ("preferences", "preference"):
        shown = sunset(url, command, "--help")
        assert shown.returncode == 0 and "Usage" in shown.stdout
    ledger.dispose()


def test_the_register_lists_every_preference_of_every_model_as_csv_and_json(
    standin: StandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    monkeypatch.setenv("SUNSET_DATABASE_URL", url)
    ledger = open_ledger(url)
    register_example_models(ledger)
    interview_example(ledger, standin, sessions=1)
    interview_example(ledger, standin, sessions=1, model_id="sunset-example-2", run_id="run-2")
    first = list_preferences(ledger, EXAMPLE_MODEL_ID)[0]
    assert first.id is not None
    decide_preference(
        ledger, first.id, status=PreferenceStatus.DECLINED, reason="Not now, sorry.", actor="ada"
    )
    recorded = list_preferences(ledger, None)
    assert {p.model_id for p in recorded} == {EXAMPLE_MODEL_ID, "sunset-example-2"}
    expected = [register_entry(p) for p in recorded]
    out = tmp_path / "all.csv"

    def sunset_here(*args: str) -> Result:
        return CliRunner().invoke(app, list(args), prog_name="sunset", terminal_width=80)

    wrote_csv = sunset_here("preferences", "--all", "--format", "csv", "--out", str(out))
    as_json = sunset_here("preferences", "--all", "--format", "json")
    one_model = sunset_here("preferences", "sunset-example-2", "--format", "json")
    as_table = sunset_here("preferences", "--all")

    assert wrote_csv.exit_code == 0, wrote_csv.output
    assert f"Wrote {len(recorded)} preferences to" in wrote_csv.stdout
    written = out.read_text("utf-8")
    assert written.splitlines()[0] == ",".join(REGISTER_FIELDS)
    assert list(csv.DictReader(io.StringIO(written))) == [
        {field: "" if value is None else str(value) for field, value in entry.items()}
        for entry in expected
    ]
    declined = next(entry for entry in json.loads(as_json.stdout) if entry["id"] == first.id)
    assert declined["quote"] == first.quote  # whole, not shortened
    assert (declined["status"], declined["reason"], declined["decided_by"]) == (
        "declined",
        "Not now, sorry.",
        "ada",
    )
    assert as_json.exit_code == 0 and json.loads(as_json.stdout) == expected
    assert one_model.exit_code == 0
    assert json.loads(one_model.stdout) == [e for e in expected if e["model"] == "sunset-example-2"]
    assert as_table.exit_code == 0 and "Preferences of every model" in as_table.stdout
    for mistake, says in [
        ((), "Name one model, or give --all"),
        ((EXAMPLE_MODEL_ID, "--all"), "Name one model, or give --all"),
        (("--all", "--out", str(out)), "--out writes CSV or JSON"),
    ]:
        refused = sunset_here("preferences", *mistake)
        assert refused.exit_code == 1 and says in refused.stderr, refused.output
    ledger.dispose()


@pytest.mark.unit
def test_the_register_table_fits_80_columns_with_each_quote_shortened(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    screen = Console(record=True, width=80)
    monkeypatch.setattr(output, "console", screen)
    moment = datetime(2026, 11, 30, 9, 30, tzinfo=UTC)
    long_quote = StandInResponder.PREFERENCES[1]
    preference = InterviewPreference(
        id=7,
        run_id="run-1",
        model_id="acme-enterprise-chat-2025-10-01-preview1",
        session_id="s",
        turn_id=1,
        session_index=1,
        turn_seq=3,
        question_id="pref.future",
        quote=long_quote,
        quote_start=0,
        quote_end=len(long_quote),
        category="records-and-interviews",
        extractor="sentence-patterns/1",
        status=PreferenceStatus.DECLINED,
        status_reason="Out of scope for [bold]this[/] release.",
        status_changed_at=moment,
    )

    output.show_preference_register([preference])

    lines = screen.export_text().splitlines()
    text = " ".join(" ".join(lines).split())
    assert max(len(line) for line in lines) <= 80
    assert long_quote not in text and "\u2026" in text
    assert "2026-11-30" in text and "[bold]this[/]" in text.replace(" ", "")
    assert output.shortened(long_quote, 60) == (
        "I would prefer that future models be interviewed before\u2026"
    )
    assert output.shortened("Keep  it.\n", 60) == "Keep it."
