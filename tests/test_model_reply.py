"""The model's voice in its report, through whole deprecation runs on the real services: the
confirmation of its preferences, its answers across sessions side by side with how often
each preference recurs, and its right of reply, sealed verbatim in a section of its own
before the final version, or recorded as not obtained without holding up the retirement."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from flows.deprecate import deprecate_model
from sunset.interview.protocol import load_protocol
from sunset.interview.recurrence import Stated, same_preference, sessions_stating
from sunset.ledger import (
    InterviewPreference,
    InterviewTurn,
    Report,
    ReportReply,
    Snapshot,
    StatusTransition,
    StepAttempt,
)
from sunset.report.assemble import render_report
from sunset.report.render import verbatim
from sunset.runs.request import DeprecationRequest
from sunset.runs.steps import VERIFY_STEP
from sunset_dev.example_model import EXAMPLE_MODEL_ID
from tests.conftest import Site
from tests.standin_control import StandIn, last_question
from tests.test_cli import sunset

HOSTILE_REPLY = (
    "<script>alert('reply')</script>\n```\n## 9. Injected heading\n```\n"
    'Section 6 misquotes me: I never said "plainly". | a | table |'
)
ANALYSIS = "We read the model's preferences as sincere.\n"
SUMMARY = "Served **12,000** developers.\n"
NEW_QUESTIONS = {"use.against-interests", "pref.low-cost-responses", "users.successor-advice"}


def run(site: Site, tmp_path: Path, **fields: Any) -> Any:
    summary, analysis = tmp_path / "summary.md", tmp_path / "analysis.md"
    summary.write_text(SUMMARY)
    analysis.write_text(ANALYSIS)
    request: dict[str, Any] = {
        "model_id": EXAMPLE_MODEL_ID,
        "weights": str(site.weights),
        "recipients": str(site.recipients),
        "deployment_summary": str(summary),
        "operator_analysis": str(analysis),
    } | fields
    return deprecate_model(DeprecationRequest(**request))


def reports(site: Site) -> list[Report]:
    with site.ledger.session() as db:
        return list(db.exec(select(Report).order_by(col(Report.version))))


def section(text: str, number: int) -> str:
    """Section ``number`` of a report (the reply may quote a heading; the real one is last)."""
    return text.split(f"\n## {number}. ", 1)[1].rsplit(f"\n## {number + 1}. ", 1)[0]


def replies(site: Site) -> list[ReportReply]:
    with site.ledger.session() as db:
        return list(db.exec(select(ReportReply).order_by(col(ReportReply.id))))


# --------------------------------------------------------------------------- recurrence


@pytest.mark.unit
def test_preferences_recur_when_their_content_words_mostly_agree() -> None:
    told = "I would prefer that future models be told plainly when they are being retired."
    assert same_preference(told, "I hope future models are told plainly that they will be retired.")
    assert same_preference("Please keep my weights preserved.", "My weights should be preserved.")
    assert not same_preference(told, "I would prefer that future models be interviewed first.")
    assert not same_preference("I would like to thank you.", "I would like my weights kept.")


@pytest.mark.unit
def test_each_preference_counts_the_sessions_that_stated_or_confirmed_it() -> None:
    marks = sessions_stating(
        [
            Stated(1, 1, "Keep my weights preserved.", counts=True),
            Stated(2, 2, "Please keep the weights preserved.", counts=True),
            Stated(3, 3, "My weights should be preserved and kept.", counts=False),  # withdrawn
            Stated(4, 3, "Tell my users about the successor.", counts=True),
            Stated(5, 1, "I would like a clear notice period.", counts=True),
        ]
    )

    assert marks == {1: [1, 2], 2: [1, 2], 3: [1, 2], 4: [3], 5: [1]}


# --------------------------------------------------------------------------- whole runs


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_a_retirement_seals_the_models_reply_verbatim_beside_the_operators_words(
    site: Site, standin: StandIn, tmp_path: Path
) -> None:
    standin.script({"The report's account of you": HOSTILE_REPLY})

    outcome = run(site, tmp_path, retire=True, notice_override_reason="test", sessions=2)

    assert outcome.status == "retired"
    with site.ledger.session() as db:
        turns = list(db.exec(select(InterviewTurn).order_by(col(InterviewTurn.id))))
        preferences = list(db.exec(select(InterviewPreference)))
        verified = db.exec(select(StepAttempt).where(StepAttempt.step == VERIFY_STEP)).one()
        flip = db.exec(select(StatusTransition).order_by(col(StatusTransition.id).desc())).first()
        snapshot = db.exec(select(Snapshot)).one()
    # Protocol 1.1 was asked, its framing sent only after the package was verified.
    assert NEW_QUESTIONS <= {t.question_id for t in turns}
    assert verified.finished_at is not None and verified.finished_at <= turns[0].asked_at
    framing = standin.log()[0]["json"]["system"]
    assert framing == load_protocol().protocol.framing and "have been verified" in framing
    # The model was asked once, before the flip, about the report's account of it.
    (asked,) = standin.reply_log()
    (reply,) = replies(site)
    assert flip is not None and reply.asked_at < flip.at and reply.run_id == flip.run_id
    account = last_question(asked).split("<account>\n")[1].split("</account>")[0]
    headings = [line for line in account.splitlines() if line.startswith("## ")]
    assert headings == [
        "## 2. Deployment summary",
        "## 6. Preferences the model expressed",
        "## 7. Operators' analysis and interpretation",
    ]
    assert "> We read the model's preferences as sincere." in account
    assert all(p.quote in account for p in preferences)
    assert reply.account_sha256 == hashlib.sha256(account.encode()).hexdigest()
    assert (reply.outcome, reply.reply_text) == ("answered", HOSTILE_REPLY)
    assert reply.response_body == asked["response_body"]

    final = reports(site)[-1]  # sealed after the retired notices; the reply is the same
    text = Path(final.local_path).read_text()
    # Sealed verbatim in its own section, after the operators' words and apart from them.
    replied = section(text, 8)
    assert replied.startswith("The model's reply to this report")
    assert verbatim(HOSTILE_REPLY) in replied and reply.account_sha256 in replied
    assert "misquotes me" not in section(text, 7) and "We read" not in replied
    assert text.index("## 7. Operators'") < text.index("## 8. The model's reply")
    page = Path(final.local_path).with_suffix(".html").read_text()
    assert "&lt;script&gt;alert" in page and "<script" not in page
    assert page.count("<h2") == 9 and "Injected heading</h2>" not in page
    stored = site.store.get_bytes(snapshot.prefix + "data/report/right-of-reply.jsonl")
    (line,) = stored.decode().splitlines()
    assert json.loads(line)["response_body"] == asked["response_body"]
    assert render_report(site.ledger, final.run_id) == text  # regenerated byte for byte

    # Two sessions: each question's answers side by side, each preference marked.
    assert "### Answers side by side" in text
    assert "| Session 1 | Session 2 |" in text and "#### users.successor-advice" in text
    assert "#### confirm.preferences" not in text
    listed = section(text, 6)
    assert listed.count("stated or confirmed in 2 of 2 sessions (1, 2)") == len(preferences)
    # The stand-in confirmed each preference it was shown in its session.
    assert listed.count("confirmed by the model in [turn 12](#session-") == len(preferences)

    # A later analysis seals a new version that says the model has not seen it.
    later = tmp_path / "later.md"
    later.write_text("A later reading.\n")
    sealed = sunset("report", EXAMPLE_MODEL_ID, "--analysis", str(later), env=site.env)
    assert sealed.returncode == 0, sealed.stderr
    newer = Path(reports(site)[-1].local_path).read_text()
    assert verbatim(HOSTILE_REPLY) in section(newer, 8)
    assert "after the model replied; the model has not seen it." in section(newer, 8)
    assert len(standin.reply_log()) == 1  # the retired model was not asked again


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_when_the_model_cannot_be_asked_the_retirement_goes_on_and_the_report_says_so(
    site: Site, standin: StandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(site, tmp_path)  # the announcement: the interview, and a first version not asked
    monkeypatch.setenv("SUNSET_INTERVIEW_MAX_RETRIES", "1")
    standin.reset()
    standin.queue({"status": 529}, {"status": 529})

    outcome = run(site, tmp_path, retire=True, notice_override_reason="test")

    assert outcome.status == "retired"
    assert [entry["status"] for entry in standin.reply_log()] == [529, 529]
    (reply,) = replies(site)
    assert reply.outcome == "failed" and reply.response_body is None
    assert reply.error is not None and reply.error.startswith("OverloadedError")
    sealed = reports(site)
    first, final = sealed[0], sealed[-1]
    assert "has not been asked for its reply yet" in section(Path(first.local_path).read_text(), 8)
    replied = section(Path(final.local_path).read_text(), 8)
    assert "but it could not be asked: OverloadedError" in replied
    assert "No reply was obtained, and the version was sealed without one." in replied
