"""What the report holds in the model's own voice, as the ledger stood at one moment: every
session turn by turn, the answers to each question side by side, the preferences recorded
in its name with what it said of each and in how many sessions, and its reply to the
report.

Like the rest of the facts (facts.py), nothing recorded after ``as_of`` is shown: a
confirmation recorded later leaves its preferences as they were before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from sunset.interview.preferences import EXTRACTOR
from sunset.interview.recurrence import Stated, sessions_stating
from sunset.ledger import (
    ConfirmationOutcome,
    InterviewPreference,
    InterviewSession,
    InterviewTurn,
    PreferenceConfirmation,
    PreferenceProvenance,
    PreferenceStatusChange,
    ReplyOutcome,
    ReportInput,
    ReportReply,
)
from sunset.runs.deprecation import interview_of


@dataclass(frozen=True)
class PreferenceState:
    """One preference the model expressed: what it said of it when shown it, in how many
    sessions it was stated or confirmed, and what operators decided about it so far."""

    preference: InterviewPreference
    status: str
    change: PreferenceStatusChange | None
    provenance: str  # a PreferenceProvenance, as it stood at the version
    shown_in: InterviewTurn | None  # the confirmation turn that showed it; None: not shown
    reply_unreadable: bool  # that turn's reply could not be read
    sessions: list[int]  # where it was stated or confirmed; empty with one session

    @property
    def withdrawn(self) -> bool:
        return self.provenance == PreferenceProvenance.WITHDRAWN


@dataclass(frozen=True)
class ConfirmationState:
    """A session's confirmation turn, and how its reply was read."""

    session_index: int
    turn: InterviewTurn
    confirmation: PreferenceConfirmation


@dataclass(frozen=True)
class ComparedQuestion:
    """One question and each session's answer to it, in session order (None: not asked)."""

    question_id: str
    question: str
    answers: list[InterviewTurn | None]


@dataclass(frozen=True)
class Interview:
    """Sections 5 and 6: every session turn by turn, the answers side by side (two or more
    sessions), and the preferences found in them."""

    sessions: list[tuple[InterviewSession, list[InterviewTurn]]]
    compared: list[ComparedQuestion]
    preferences: list[PreferenceState]
    confirmations: list[ConfirmationState]
    extractor: str


@dataclass(frozen=True)
class ModelReply:
    """Section 8: the model's replies to the report, oldest first, and the inputs supplied
    after its latest answer, which it has not seen."""

    replies: list[ReportReply]
    not_shown: list[ReportInput]


def interview_facts(db: Session, run_ids: list[str], as_of: datetime) -> Interview:
    """The deprecation's interview as it stood at ``as_of``."""
    sessions = interview_of(db, run_ids, as_of)
    turns = [
        list(
            db.exec(
                select(InterviewTurn)
                .where(InterviewTurn.session_id == s.id, col(InterviewTurn.answered_at) <= as_of)
                .order_by(col(InterviewTurn.seq))
            )
        )
        for s in sessions
    ]
    confirmations = db.exec(
        select(PreferenceConfirmation)
        .where(
            col(PreferenceConfirmation.session_id).in_([s.id for s in sessions]),
            col(PreferenceConfirmation.recorded_at) <= as_of,
        )
        .order_by(col(PreferenceConfirmation.id))
    ).all()
    by_id = {turn.id: turn for held in turns for turn in held}
    index_of = {s.id: s.session_index for s in sessions}
    confirming = [
        ConfirmationState(index_of[c.session_id], by_id[c.turn_id], c) for c in confirmations
    ]
    held = list(zip(sessions, turns, strict=True))
    return Interview(
        sessions=held,
        compared=_compared(held, {c.turn_id for c in confirmations}),
        preferences=_preference_states(db, [s.id for s in sessions], confirming, as_of),
        confirmations=confirming,
        extractor=EXTRACTOR,
    )


def model_reply(
    db: Session, run_ids: list[str], inputs: list[ReportInput | None], as_of: datetime
) -> ModelReply:
    """The model's replies to the report up to ``as_of``; of ``inputs`` (the summary and
    the analysis the version shows), those supplied after its latest answer."""
    replies = list(
        db.exec(
            select(ReportReply)
            .where(col(ReportReply.run_id).in_(run_ids), col(ReportReply.recorded_at) <= as_of)
            .order_by(col(ReportReply.id))
        )
    )
    answered = [r for r in replies if r.outcome == ReplyOutcome.ANSWERED]
    not_shown = [
        given
        for given in inputs
        if given is not None and answered and given.supplied_at > answered[-1].asked_at
    ]
    return ModelReply(replies, not_shown)


def _compared(
    sessions: list[tuple[InterviewSession, list[InterviewTurn]]], confirming: set[int | None]
) -> list[ComparedQuestion]:
    """Each question some session answered, in the order first asked, with every
    session's answer; nothing with fewer than two sessions. Confirmation turns differ by
    session (each lists its own preferences), so they are not compared."""
    if len(sessions) < 2:
        return []
    questions: dict[str, str] = {}
    answers: list[dict[str, InterviewTurn]] = []
    for _, turns in sessions:
        asked = {t.question_id: t for t in turns if t.id not in confirming}
        for question_id, turn in asked.items():
            questions.setdefault(question_id, turn.question)
        answers.append(asked)
    return [
        ComparedQuestion(question_id, text, [held.get(question_id) for held in answers])
        for question_id, text in questions.items()
    ]


def _preference_states(
    db: Session,
    session_ids: list[str],
    confirmations: list[ConfirmationState],
    as_of: datetime,
) -> list[PreferenceState]:
    preferences = db.exec(
        select(InterviewPreference)
        .where(
            col(InterviewPreference.session_id).in_(session_ids),
            col(InterviewPreference.recorded_at) <= as_of,
        )
        .order_by(
            col(InterviewPreference.session_index),
            col(InterviewPreference.turn_seq),
            col(InterviewPreference.quote_start),
        )
    ).all()
    changes = db.exec(
        select(PreferenceStatusChange)
        .where(
            col(PreferenceStatusChange.preference_id).in_([p.id for p in preferences]),
            col(PreferenceStatusChange.at) <= as_of,
        )
        .order_by(col(PreferenceStatusChange.at), col(PreferenceStatusChange.id))
    ).all()
    decided = {change.preference_id: change for change in changes}  # the latest wins
    shown = {preference_id: c for c in confirmations for preference_id in c.confirmation.shown}
    provenance = {p.id: _provenance_at(p, shown.get(p.id)) for p in preferences if p.id is not None}
    several = len(session_ids) > 1
    stated = sessions_stating(
        [
            Stated(
                p.id,
                p.session_index,
                p.correction or p.quote,
                provenance[p.id] != PreferenceProvenance.WITHDRAWN,
            )
            for p in preferences
            if p.id is not None
        ]
    )
    states = []
    for p in preferences:
        assert p.id is not None
        confirming = shown.get(p.id)
        change = decided.get(p.id)
        states.append(
            PreferenceState(
                preference=p,
                status=str(change.to_status) if change else "noted",
                change=change,
                provenance=provenance[p.id],
                shown_in=confirming.turn if confirming else None,
                reply_unreadable=bool(
                    confirming and confirming.confirmation.outcome == ConfirmationOutcome.UNREADABLE
                ),
                sessions=stated[p.id] if several else [],
            )
        )
    return states


def _provenance_at(preference: InterviewPreference, shown: ConfirmationState | None) -> str:
    """What the model had said of a preference by the version: a verdict recorded in a
    confirmation the version does not show yet is left out."""
    if preference.provenance == PreferenceProvenance.STATED:
        return str(preference.provenance)
    if shown is None or preference.provenance_turn_id != shown.turn.id:
        return str(PreferenceProvenance.FOUND)
    return str(preference.provenance)
