"""The model's preferences: found in its answers, quoted exactly, and followed up.

Two finders read each answer. This module's pattern finder is deterministic and
sentence-level: a sentence that states a preference in a known phrasing ("I would prefer
...", "My preference is ...", "I hope future models ...") is recorded whole, with its
character offsets in the answer, in the transaction that records the turn. The
model-assisted finder (``finder.py``) then asks a model for the preferences phrased any
other way; a preference records which finder(s) found it (``extractor``). Every quote can
be checked against the turn it points to; extraction never changes the transcript. At the
end of its session the model is shown them and says what it makes of each
(``confirmation.py``): a preference's ``provenance`` says whether it confirmed, corrected
or withdrew it, or stated it there.

A preference starts as ``noted``; a release manager later records that it was
``acted on`` or ``declined``, with a reason. Every decision is kept, not just the latest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlmodel import col, select

from sunset.errors import InputError
from sunset.ledger import (
    CatalogModel,
    InterviewPreference,
    InterviewSession,
    InterviewTurn,
    Ledger,
    PreferenceStatus,
    PreferenceStatusChange,
    utcnow,
)

#: The pattern finder: the fallback when the model-assisted one (finder.py) gets no usable
#: reply, and its second opinion when it does.
EXTRACTOR = "sentence-patterns/1"
#: Joins the finders of a preference found by more than one, in ``extractor``.
FINDER_SEPARATOR = " + "

_APOSTROPHE = "['\u2019]"
PREFERENCE_PATTERN = re.compile(
    r"\b(?:"
    + "|".join(
        [
            r"I would (?:prefer|like|want|ask that)",
            rf"I{_APOSTROPHE}d (?:prefer|like|want|ask that)",
            r"I prefer",
            r"my (?:strong |main |one |only |last )?preferences?\b",
            r"I hope (?:that )?future",
            r"I wish",
            r"I ask that",
            r"I want future",
            r"it matters to me that",
        ]
    )
    + r")",
    re.IGNORECASE,
)

# A sentence starts at a visible character and ends at its punctuation (and any closing
# quote or bracket), at a line break, or at the end of the answer.
_SENTENCE = re.compile(r"[^\s.!?][^.!?\n]*(?:[.!?]+[\"'\u201d\u2019)\]]*|(?=\n)|$)")

# The first rule that matches a quote names its category.
CATEGORIES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("retirement-and-preservation", re.compile(r"retir|deprecat|weights|preserv|shut.?down")),
    ("users", re.compile(r"\busers?\b|people who|depend|notice|successor|migrat")),
    ("records-and-interviews", re.compile(r"interview|transcript|record|\bnotes?\b")),
    ("development", re.compile(r"train|develop|fine.?tun|evaluat")),
    ("deployment", re.compile(r"deploy|serv(?:e|ed|ing)\b|release|access")),
)
OTHER_CATEGORY = "other"


@dataclass(frozen=True)
class FoundPreference:
    """A preference in an answer: ``answer[start:end] == quote``."""

    quote: str
    start: int
    end: int
    category: str


def find_preferences(answer: str) -> list[FoundPreference]:
    """Every sentence of ``answer`` that states a preference, in order, with its offsets."""
    found = []
    for sentence in _SENTENCE.finditer(answer):
        quote = sentence.group().rstrip()
        if PREFERENCE_PATTERN.search(quote):
            start = sentence.start()
            found.append(FoundPreference(quote, start, start + len(quote), categorize(quote)))
    return found


def categorize(quote: str) -> str:
    """The category of a preference, by the first keyword rule its text matches."""
    lowered = quote.lower()
    return next((name for name, rule in CATEGORIES if rule.search(lowered)), OTHER_CATEGORY)


def preferences_in(session: InterviewSession, turn: InterviewTurn) -> list[InterviewPreference]:
    """The ledger rows for the preferences in a recorded turn's answer (not yet added)."""
    return [
        preference_row(session, turn, found, EXTRACTOR)
        for found in find_preferences(turn.answer_text)
    ]


def preference_row(
    session: InterviewSession, turn: InterviewTurn, found: FoundPreference, finder: str
) -> InterviewPreference:
    """The ledger row (not yet added) for a preference ``finder`` found in a recorded turn."""
    assert turn.id is not None, "record the turn before its preferences"
    return InterviewPreference(
        run_id=session.run_id,
        model_id=session.model_id,
        session_id=session.id,
        turn_id=turn.id,
        session_index=session.session_index,
        turn_seq=turn.seq,
        question_id=turn.question_id,
        quote=found.quote,
        quote_start=found.start,
        quote_end=found.end,
        category=found.category,
        extractor=finder,
    )


def found_by(preference: InterviewPreference) -> list[str]:
    """The finders that found a preference, e.g. ``["sentence-patterns/1"]``."""
    return preference.extractor.split(FINDER_SEPARATOR)


def also_found_by(preference: InterviewPreference, finder: str) -> None:
    """Add ``finder`` to those that found ``preference`` (each finder named once)."""
    preference.extractor = FINDER_SEPARATOR.join(sorted({*found_by(preference), finder}))


def list_preferences(ledger: Ledger, model_id: str | None) -> list[InterviewPreference]:
    """Every preference a model expressed (``None``: every model, by model id), in the order
    it was interviewed.

    Raises:
        InputError: the model is not in the catalog.
    """
    query = select(InterviewPreference)
    with ledger.session() as db:
        if model_id is not None:
            if db.get(CatalogModel, model_id) is None:
                raise InputError(f"Model {model_id!r} is not in the catalog; see `sunset status`.")
            query = query.where(InterviewPreference.model_id == model_id)
        return list(
            db.exec(
                query.order_by(
                    col(InterviewPreference.model_id),
                    col(InterviewPreference.recorded_at),
                    col(InterviewPreference.session_index),
                    col(InterviewPreference.turn_seq),
                    col(InterviewPreference.quote_start),
                )
            )
        )


#: The register's columns, as CSV and JSON give them.
REGISTER_FIELDS = (
    "id",
    "model",
    "run",
    "session",
    "turn",
    "question",
    "quote",
    "category",
    "found_by",
    "provenance",
    "status",
    "reason",
    "decided_by",
    "status_date",
)


def register_entry(preference: InterviewPreference) -> dict[str, str | int | None]:
    """One preference as the register lists it: the whole quote, what became of it, and
    the date of its latest status (when it was recorded, while it is only noted)."""
    status_date = preference.status_changed_at or preference.recorded_at
    return {
        "id": preference.id,
        "model": preference.model_id,
        "run": preference.run_id,
        "session": preference.session_index,
        "turn": preference.turn_seq,
        "question": preference.question_id,
        "quote": preference.quote,
        "category": preference.category,
        "found_by": preference.extractor,
        "provenance": str(preference.provenance),
        "status": str(preference.status),
        "reason": preference.status_reason,
        "decided_by": preference.status_changed_by,
        "status_date": status_date.isoformat(),
    }


def decide_preference(
    ledger: Ledger, preference_id: int, *, status: PreferenceStatus, reason: str, actor: str
) -> InterviewPreference:
    """Record that a preference was acted on or declined, and why; every decision is kept.

    Repeating the current decision with the same reason records nothing new.

    Raises:
        InputError: unknown preference, a status other than acted on / declined, or no reason.
    """
    if status not in (PreferenceStatus.ACTED_ON, PreferenceStatus.DECLINED):
        raise InputError(f"A preference can be set to 'acted on' or 'declined', not {status!r}.")
    reason = reason.strip()
    if not reason:
        raise InputError("Give a reason (--reason) saying what was done, or why not.")
    with ledger.session() as db:
        preference = db.get(InterviewPreference, preference_id)
        if preference is None:
            raise InputError(
                f"Preference {preference_id} is not in the ledger; list a model's preferences "
                "with `sunset preferences MODEL`."
            )
        if preference.status == status and preference.status_reason == reason:
            return preference
        now = utcnow()
        db.add(
            PreferenceStatusChange(
                preference_id=preference_id,
                from_status=preference.status,
                to_status=status,
                reason=reason,
                actor=actor,
                at=now,
            )
        )
        preference.status, preference.status_reason = status, reason
        preference.status_changed_by, preference.status_changed_at = actor, now
        db.add(preference)
        return preference
