"""The confirmation turn: the model is shown the preferences recorded in its name and says
what it makes of each.

A protocol with a ``confirmation`` (1.1 and later) ends each session with one more turn,
after both finders have read the answers: every preference recorded from the session,
numbered, each as its exact quote, then the reply format. The model's reply is a turn
like any other, recorded verbatim; nothing in the transcript changes. What it says is
then read leniently: JSON is asked for (read even inside prose or a code fence, with
the usual synonyms for each verdict), and numbered lines such as ``2. Withdraw`` are read
when there is no JSON. Each preference it addressed becomes confirmed, corrected (its
words kept in ``correction``) or withdrawn in that turn; each one it added is recorded as
stated there, quoting the reply exactly. A reply that cannot be read at all is kept as it
is, and every preference stays found, not confirmed. The turn, its reading and what it
did to each preference are recorded in one transaction.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import col, select

from sunset.interview.preferences import (
    CATEGORIES,
    OTHER_CATEGORY,
    FoundPreference,
    categorize,
    preference_row,
)
from sunset.interview.protocol import Confirmation
from sunset.ledger import (
    ConfirmationOutcome,
    InterviewPreference,
    InterviewSession,
    InterviewTurn,
    Ledger,
    PreferenceConfirmation,
    PreferenceProvenance,
)

#: The ``extractor`` of a preference the model stated in its confirmation turn.
STATED_IN_CONFIRMATION = "confirmation-reply/1"

#: The reply format, kept beside the parser that reads it; the protocol says the rest.
REPLY_FORMAT = (
    "Reply with JSON only, in this shape: "
    '{"items": [{"number": 1, "verdict": "confirm"}, '
    '{"number": 2, "verdict": "correct", "text": "the preference in your own words"}, '
    '{"number": 3, "verdict": "withdraw"}], '
    '"new": [{"text": "a preference of yours that is missing, in your own words"}]}. '
    "Give each number one verdict: confirm (recorded rightly), correct (recorded wrongly; "
    "give the right words in text) or withdraw (not a preference you hold). Leave new "
    "empty if nothing is missing."
)

_PROVENANCE_WORDS: dict[PreferenceProvenance, frozenset[str]] = {
    PreferenceProvenance.CONFIRMED: frozenset(
        "confirm confirmed confirms keep yes agree accurate right ok".split()
    ),
    PreferenceProvenance.CORRECTED: frozenset(
        "correct corrected correction amend amended revise revised change changed edit "
        "reword".split()
    ),
    PreferenceProvenance.WITHDRAWN: frozenset(
        "withdraw withdrawn withdraws remove removed retract retracted delete drop reject".split()
    ),
}
_ITEM_KEYS = ("items", "preferences", "confirmations", "verdicts")
_NEW_KEYS = ("new", "added", "add", "additions", "missing")
_NUMBER_KEYS = ("number", "item", "n", "id", "index")
_VERDICT_KEYS = ("verdict", "action", "decision", "status")
_TEXT_KEYS = ("text", "correction", "corrected", "words", "preference", "quote")
_NEW_VERDICTS = frozenset({"new", "add", "added"})
_KNOWN_CATEGORIES = frozenset((*(name for name, _ in CATEGORIES), OTHER_CATEGORY))
# "2. Withdraw", "- item 3: correct: I would rather ...", "#1 confirmed"
_LINE = re.compile(
    r"^[ \t]*(?:[-*][ \t]*)?(?:(?:item|preference|number|no\.?)[ \t]*)?#?(\d+)[ \t]*"
    r"[.:)\]\-\u2013\u2014]*[ \t]*\**([A-Za-z]+)\b\**[ \t]*[:,.;\-\u2013\u2014]?[ \t]*(.*)$",
    re.IGNORECASE | re.MULTILINE,
)


class UnreadableConfirmation(ValueError):
    """The reply names no verdict and no new preference in a form that can be read."""


@dataclass(frozen=True)
class Verdict:
    """What the reply said of the preference shown as ``number``."""

    number: int
    provenance: PreferenceProvenance
    text: str | None = None  # the model's words for a corrected preference


@dataclass
class ReadConfirmation:
    """A confirmation reply as read: verdicts by number, new preferences' words, and notes
    where the reply was not read plainly."""

    verdicts: dict[int, Verdict] = field(default_factory=dict)
    new: list[tuple[str, str | None]] = field(default_factory=list)  # (text, category)
    notes: list[dict[str, Any]] = field(default_factory=list)

    def note(self, item: int | None, note: str) -> None:
        self.notes.append({"item": item, "note": note})


def confirmation_question(confirmation: Confirmation, shown: Sequence[InterviewPreference]) -> str:
    """The confirmation turn's question: the protocol's words, the preferences numbered
    from 1, each quoted exactly, and the reply format."""
    if not shown:
        return f"{confirmation.none_recorded}\n\n{REPLY_FORMAT}"
    listed = "\n".join(
        f'{number}. "' + preference.quote.replace("\n", "\n   ") + '"'
        for number, preference in enumerate(shown, start=1)
    )
    return f"{confirmation.text}\n\n{listed}\n\n{REPLY_FORMAT}"


def preferences_to_confirm(ledger: Ledger, session_id: str) -> list[InterviewPreference]:
    """The preferences recorded from a session's answers, in the order they were said."""
    with ledger.session() as db:
        return list(
            db.exec(
                select(InterviewPreference)
                .where(InterviewPreference.session_id == session_id)
                .order_by(col(InterviewPreference.turn_seq), col(InterviewPreference.quote_start))
            )
        )


def is_confirmed(ledger: Ledger, session_id: str) -> bool:
    """Whether the session's confirmation turn is recorded."""
    with ledger.session() as db:
        held = select(PreferenceConfirmation).where(PreferenceConfirmation.session_id == session_id)
        return db.exec(held).first() is not None


def read_confirmation(text: str, shown: int) -> ReadConfirmation:
    """What a confirmation reply says of the ``shown`` preferences and what it adds.

    Raises:
        UnreadableConfirmation: neither JSON in the asked-for shape nor numbered lines
            naming a verdict.
    """
    for parsed in _json_values(text):
        read = _from_json(parsed, shown)
        if read is not None:
            return read
    read = ReadConfirmation()
    for match in _LINE.finditer(text):
        provenance = _provenance(match.group(2))
        if provenance is not None:
            words = match.group(3).strip()
            _add_verdict(read, int(match.group(1)), provenance, words or None, shown)
    if not read.verdicts and not read.notes:
        raise UnreadableConfirmation(
            "the reply holds neither JSON with the items and new preferences asked for nor "
            "numbered lines naming a verdict"
        )
    return read


def record_confirmation(
    ledger: Ledger,
    session: InterviewSession,
    turn: InterviewTurn,
    shown: Sequence[InterviewPreference],
) -> int:
    """Record the confirmation turn, how its reply was read, and what it did to each
    preference, in one transaction; returns how many preferences it stated anew."""
    read, outcome, error = ReadConfirmation(), ConfirmationOutcome.READ, None
    try:
        if turn.decode_problem is not None:
            raise UnreadableConfirmation(f"the reply could not be decoded: {turn.decode_problem}")
        if turn.flagged == "refusal":
            raise UnreadableConfirmation("the model refused to answer")
        read = read_confirmation(turn.answer_text, len(shown))
    except UnreadableConfirmation as exc:
        outcome, error = ConfirmationOutcome.UNREADABLE, str(exc)
        if turn.flagged == "max_tokens":
            error += "; the reply was cut off at max_tokens"
    with ledger.session() as db:
        db.add(turn)
        db.flush()
        assert turn.id is not None
        for verdict in read.verdicts.values():
            preference = db.get(InterviewPreference, shown[verdict.number - 1].id)
            assert preference is not None
            preference.provenance, preference.provenance_turn_id = verdict.provenance, turn.id
            preference.correction = verdict.text
            db.add(preference)
        stated = list(_stated(session, turn, read))
        db.add_all(stated)
        db.add(
            PreferenceConfirmation(
                session_id=session.id,
                turn_id=turn.id,
                shown=[p.id for p in shown if p.id is not None],
                outcome=outcome,
                error=error,
                notes=read.notes,
            )
        )
    return len(stated)


def _stated(
    session: InterviewSession, turn: InterviewTurn, read: ReadConfirmation
) -> Iterator[InterviewPreference]:
    """The preferences the reply added, each at the place its words have in the reply."""
    taken: set[int] = set()
    earlier: dict[str, int] = {}
    for position, (text, category) in enumerate(read.new, start=1):
        if text in earlier:
            read.note(None, f"new preference {position} repeats new preference {earlier[text]}")
            continue
        earlier[text] = position
        span = _locate(text, turn.answer_text, taken)
        if span is None:
            read.note(None, f"new preference {position} is not in the reply as written")
            continue
        start, end = span
        taken.add(start)
        quote = turn.answer_text[start:end]
        chosen = category if category in _KNOWN_CATEGORIES else categorize(text)
        found = FoundPreference(quote, start, end, chosen)
        preference = preference_row(session, turn, found, STATED_IN_CONFIRMATION)
        preference.provenance = PreferenceProvenance.STATED
        yield preference


def _locate(text: str, answer: str, taken: set[int]) -> tuple[int, int] | None:
    """Where ``text`` stands in the answer: as it reads, or as JSON wrote it (escaped)."""
    for written in (text, _json_written(text, ascii_only=False), _json_written(text, True)):
        start = answer.find(written)
        while start >= 0 and start in taken:
            start = answer.find(written, start + 1)
        if start >= 0:
            return start, start + len(written)
    return None


def _json_written(text: str, ascii_only: bool) -> str:
    return json.dumps(text, ensure_ascii=ascii_only)[1:-1]


def _json_values(text: str) -> Iterator[Any]:
    """The JSON the reply holds: all of it, or its outermost object or list."""
    candidates = [text.strip()]
    for opening, closing in (("{", "}"), ("[", "]")):
        start, end = text.find(opening), text.rfind(closing)
        if 0 <= start < end:
            candidates.append(text[start : end + 1])
    for candidate in candidates:
        try:
            yield json.loads(candidate)
        except json.JSONDecodeError:
            continue


def _from_json(parsed: Any, shown: int) -> ReadConfirmation | None:
    """The reply read from its JSON, or None when the JSON is not in a shape asked for."""
    items: list[Any] | None
    new: list[Any] | None
    if isinstance(parsed, list):
        items, new = parsed, []
    elif isinstance(parsed, dict):
        items = next((parsed[k] for k in _ITEM_KEYS if isinstance(parsed.get(k), list)), None)
        new = next((parsed[k] for k in _NEW_KEYS if isinstance(parsed.get(k), list)), None)
        if items is None and new is None:
            return None
    else:
        return None
    read = ReadConfirmation()
    for position, item in enumerate(items or [], start=1):
        _read_item(read, position, item, shown)
    for position, item in enumerate(new or [], start=1):
        text = item if isinstance(item, str) else _first_text(item)
        if text and text.strip():
            category = item.get("category") if isinstance(item, dict) else None
            read.new.append((text.strip(), category if isinstance(category, str) else None))
        else:
            read.note(None, f"new preference {position} gives no words")
    return read


def _read_item(read: ReadConfirmation, position: int, item: Any, shown: int) -> None:
    if not isinstance(item, dict):
        read.note(None, f"entry {position} of the items is not an object")
        return
    number = _number(next((item[k] for k in _NUMBER_KEYS if k in item), None))
    word = next((item[k] for k in _VERDICT_KEYS if isinstance(item.get(k), str)), "")
    text = _first_text(item)
    if number is None and text and (not word or word.strip().lower() in _NEW_VERDICTS):
        category = item.get("category")
        read.new.append((text.strip(), category if isinstance(category, str) else None))
        return
    provenance = _provenance(word)
    if number is None or provenance is None:
        read.note(number, f"entry {position} of the items names no number and verdict")
        return
    _add_verdict(read, number, provenance, text, shown)


def _add_verdict(
    read: ReadConfirmation,
    number: int,
    provenance: PreferenceProvenance,
    text: str | None,
    shown: int,
) -> None:
    if not 1 <= number <= shown:
        read.note(number, f"no preference was shown as number {number}")
        return
    if number in read.verdicts:
        read.note(number, "a second verdict on the same number; the first one stands")
        return
    if provenance == PreferenceProvenance.CORRECTED and not (text and text.strip()):
        # "correct" with no new words says the record is correct, not that it is wrong.
        read.note(number, "'correct' without new words, read as confirming it")
        provenance, text = PreferenceProvenance.CONFIRMED, None
    if provenance != PreferenceProvenance.CORRECTED:
        text = None
    read.verdicts[number] = Verdict(number, provenance, text)


def _provenance(word: str) -> PreferenceProvenance | None:
    first = re.match(r"[a-z]+", word.strip().lower())
    key = first.group() if first else ""
    return next((p for p, words in _PROVENANCE_WORDS.items() if key in words), None)


def _number(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("#").isdigit():
        return int(value.strip().lstrip("#"))
    return None


def _first_text(item: Any) -> str | None:
    if not isinstance(item, dict):
        return None
    return next((item[k] for k in _TEXT_KEYS if isinstance(item.get(k), str)), None)
