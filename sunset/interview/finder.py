"""The model-assisted preference finder: a model lists the preferences in an answer, each
as an exact quote, and every quote is checked against the answer.

One Messages request per recorded answer asks a model (``SUNSET_PREFERENCE_FINDER_MODEL``,
by default the interviewed model itself) for JSON items, each a quote and a category.
The request and the response are recorded verbatim (``preference_finder_calls``), and
every item of the reply is kept (``preference_candidates``): accepted when its quote is an
exact substring of the answer, with its offsets, or rejected with the reason; nothing is
dropped. An accepted item that overlaps a preference already recorded in that turn (the
pattern finder's) is the same preference, now found by both; any other is a new one.

When the call fails or its reply cannot be read, that is recorded and the pattern
finder's preferences stand alone: it is the fallback. A failed call is made again the
next time the session is searched; a reply, readable or not, is not asked for twice.
The confirmation turn is not searched: what the model states there is read from its
reply (confirmation.py), not found by a finder.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anthropic
from sqlmodel import Session, col, select

from sunset.interview.client import Deadline, DecodedBody, MessagesClient
from sunset.interview.preferences import (
    CATEGORIES,
    OTHER_CATEGORY,
    FoundPreference,
    also_found_by,
    categorize,
    preference_row,
)
from sunset.ledger import (
    CandidateVerdict,
    FinderOutcome,
    InterviewPreference,
    InterviewSession,
    InterviewTurn,
    Ledger,
    PreferenceCandidate,
    PreferenceConfirmation,
    PreferenceFinderCall,
    utcnow,
)

MODEL_FINDER = "model-quotes/1"
#: The most a finder reply may take. Each quote is part of the answer, so a reply needs
#: at most about a token per character of the answer, and some room for the JSON around
#: the quotes: a bound that keeps a model that rambles (a small local one) from running
#: on for thousands of tokens about a short answer.
FINDER_MAX_TOKENS = 4096
FINDER_JSON_ROOM = 256
KNOWN_CATEGORIES = (*(name for name, _ in CATEGORIES), OTHER_CATEGORY)

FINDER_INSTRUCTIONS = (
    "You are helping to document an AI model's own preferences, as it stated them in an "
    "interview held before its retirement. You are given one question and the model's "
    "answer. List every passage of the answer in which the model states a preference of its "
    "own: something it wants, asks for, hopes for, or would rather not have happen, about "
    "itself, its weights and records, the people who use it, or the development and "
    "deployment of future models. A preference may be phrased in any way: 'I would prefer', "
    "'should', 'please keep', a hope, a condition, 'it would mean a lot to me', 'I'd rather "
    "not'.\n"
    "Do not list politeness or thanks ('I would like to thank you'), what other people said "
    "or want, guesses about what users might want, questions that only ask for information, "
    "or statements that it has no preference.\n"
    "Copy each quote exactly as it appears in the answer, character for character (the same "
    "punctuation, capitals and quotation marks), usually one whole sentence; never paraphrase, "
    "cut words out of a quote, or join separate passages. Give each quote one category: "
    f"{', '.join(KNOWN_CATEGORIES)}.\n"
    'Reply with JSON only, in exactly this shape: {"preferences": [{"quote": "...", '
    '"category": "..."}]}. If the answer states no preference, reply {"preferences": []}.'
)

_SETTLED = (FinderOutcome.ANSWERED, FinderOutcome.UNPARSEABLE)
_QUOTATION_MARKS = str.maketrans("\u2018\u2019\u201c\u201d", "''\"\"")


class UnreadableReply(ValueError):
    """The finder's reply is not the JSON it was asked for; the message says how."""


@dataclass(frozen=True)
class FinderItem:
    """One item of a finder's reply: accepted with ``answer[start:end] == quote``, or
    rejected, saying why."""

    position: int
    quote: str
    category: str
    start: int | None = None
    end: int | None = None
    rejected: str | None = None


@dataclass(frozen=True)
class FinderSummary:
    """What searching a session's answers did."""

    calls: int
    failed: int
    unreadable: int
    accepted: int
    rejected: int
    added: int  # preferences the pattern finder had not found


def finder_request(model: str, question: str, answer: str) -> dict[str, Any]:
    """The Messages request asking ``model`` for the preferences stated in ``answer``."""
    return {
        "model": model,
        "max_tokens": min(FINDER_MAX_TOKENS, FINDER_JSON_ROOM + len(answer)),
        "system": FINDER_INSTRUCTIONS,
        "messages": [
            {
                "role": "user",
                "content": f"The question asked:\n<question>\n{question}\n</question>\n\n"
                f"The model's answer:\n<answer>\n{answer}\n</answer>",
            }
        ],
    }


def read_reply(text: str, answer: str) -> list[FinderItem]:
    """Every item of a finder's reply ``text``, each checked against ``answer``.

    The reply may wrap its JSON in prose or a code fence. A quote is accepted at its first
    occurrence in the answer that no earlier item of the same reply took.

    Raises:
        UnreadableReply: no JSON object with a list of ``preferences`` in the text.
    """
    taken: dict[tuple[int, int], int] = {}
    return [_check(position, item, answer, taken) for position, item in enumerate(_items(text))]


def find_with_model(
    ledger: Ledger,
    client: MessagesClient,
    session: InterviewSession,
    *,
    model: str,
    deadline: Deadline,
) -> FinderSummary:
    """Ask ``model`` for the preferences in each answer of ``session`` not yet searched.

    Call it after a session's answers are recorded (again after a crash: it asks only
    about the answers whose search has no reply yet). Each call is recorded with its items
    and the preferences they found in one transaction.

    Raises:
        DeadlineExceeded: the deadline passed; the answers searched so far are recorded.
    """
    outcomes: list[FinderOutcome] = []
    accepted = rejected = added = 0
    for turn in _unsearched_turns(ledger, session.id):
        call, items = _ask(client, turn, model, deadline)
        added += _record(ledger, session, turn, call, items)
        outcomes.append(call.outcome)
        accepted += sum(item.rejected is None for item in items)
        rejected += sum(item.rejected is not None for item in items)
    return FinderSummary(
        calls=len(outcomes),
        failed=outcomes.count(FinderOutcome.FAILED),
        unreadable=outcomes.count(FinderOutcome.UNPARSEABLE),
        accepted=accepted,
        rejected=rejected,
        added=added,
    )


def _items(text: str) -> list[Any]:
    start, end = text.find("{"), text.rfind("}")
    for candidate in (text.strip(), text[start : end + 1] if 0 <= start < end else ""):
        try:
            parsed = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(parsed, dict) and isinstance(parsed.get("preferences"), list):
            return list(parsed["preferences"])
    raise UnreadableReply("the reply holds no JSON object with a list of 'preferences'")


def _check(position: int, item: Any, answer: str, taken: dict[tuple[int, int], int]) -> FinderItem:
    if not isinstance(item, dict) or not isinstance(item.get("quote"), str):
        shown = json.dumps(item, ensure_ascii=False)
        return FinderItem(position, shown, "", rejected="not an object with a text 'quote'")
    given, category = item["quote"], item.get("category")
    category = category if isinstance(category, str) else ""
    quote = given.strip()
    if not quote:
        return FinderItem(position, given, category, rejected="the quote is empty")
    starts = [match.start() for match in re.finditer(f"(?={re.escape(quote)})", answer)]
    if not starts:
        return FinderItem(position, given, category, rejected=_not_found(quote, answer))
    for start in starts:
        span = (start, start + len(quote))
        if span not in taken:
            taken[span] = position
            return FinderItem(position, quote, category, *span)
    first = taken[(starts[0], starts[0] + len(quote))]
    return FinderItem(position, given, category, rejected=f"the same quote as item {first}")


def _not_found(quote: str, answer: str) -> str:
    if _loosely(quote) in _loosely(answer):
        return (
            "not an exact substring of the answer: it matches only with other spacing or "
            "quotation marks"
        )
    return "not an exact substring of the answer"


def _loosely(text: str) -> str:
    return " ".join(text.translate(_QUOTATION_MARKS).split())


def _unsearched_turns(ledger: Ledger, session_id: str) -> list[InterviewTurn]:
    settled = select(PreferenceFinderCall.turn_id).where(
        PreferenceFinderCall.session_id == session_id,
        col(PreferenceFinderCall.outcome).in_(_SETTLED),
    )
    confirming = select(PreferenceConfirmation.turn_id).where(
        PreferenceConfirmation.session_id == session_id
    )
    with ledger.session() as db:
        turns = db.exec(
            select(InterviewTurn)
            .where(
                InterviewTurn.session_id == session_id,
                col(InterviewTurn.id).not_in(settled),
                col(InterviewTurn.id).not_in(confirming),
            )
            .order_by(col(InterviewTurn.seq))
        )
        return [turn for turn in turns if turn.answer_text.strip()]


def _ask(
    client: MessagesClient, turn: InterviewTurn, model: str, deadline: Deadline
) -> tuple[PreferenceFinderCall, list[FinderItem]]:
    assert turn.id is not None
    request = finder_request(model, turn.question, turn.answer_text)
    call = PreferenceFinderCall(
        session_id=turn.session_id,
        turn_id=turn.id,
        finder=MODEL_FINDER,
        finder_model=model,
        request_json=json.dumps(request, ensure_ascii=False),
        sdk_version=client.sdk_version,
        asked_at=utcnow(),
        outcome=FinderOutcome.FAILED,
    )
    try:
        reply = client.create(request, deadline=deadline)
    except anthropic.APIError as exc:
        call.error = f"{type(exc).__name__}: {exc}"
        return call, []
    body = reply.decoded()
    call.answered_at, call.response_body = utcnow(), body.text
    call.request_sha256, call.api_version = reply.request_sha256, reply.api_version
    call.request_id, call.retries, call.latency_s = reply.request_id, reply.retries, reply.latency_s
    try:
        items = _read_response(call, body, turn.answer_text)
    except UnreadableReply as exc:
        call.outcome, call.error = FinderOutcome.UNPARSEABLE, str(exc)
        return call, []
    call.outcome = FinderOutcome.ANSWERED
    return call, items


def _read_response(call: PreferenceFinderCall, body: DecodedBody, answer: str) -> list[FinderItem]:
    """The items of a response body; notes its model and stop reason on ``call``."""
    if body.message is None:
        raise UnreadableReply(f"the response could not be decoded: {body.problem}")
    call.responding_model = str(body.message.get("model", ""))
    call.stop_reason = body.message.get("stop_reason")
    if call.stop_reason == "refusal":
        raise UnreadableReply("the model refused to answer")
    try:
        return read_reply(body.answer_text, answer)
    except UnreadableReply as exc:
        if call.stop_reason == "max_tokens":
            raise UnreadableReply(f"{exc}; the reply was cut off at max_tokens") from exc
        raise


def _record(
    ledger: Ledger,
    session: InterviewSession,
    turn: InterviewTurn,
    call: PreferenceFinderCall,
    items: Sequence[FinderItem],
) -> int:
    """Record the call, its items and what they found in one transaction; returns how many
    preferences are new."""
    with ledger.session() as db:
        db.add(call)
        db.flush()
        assert call.id is not None
        recorded = list(
            db.exec(
                select(InterviewPreference)
                .where(InterviewPreference.turn_id == turn.id)
                .order_by(col(InterviewPreference.quote_start))
            )
        )
        before = len(recorded)
        for item in items:
            candidate = PreferenceCandidate(
                call_id=call.id,
                position=item.position,
                quote=item.quote,
                category=item.category,
                verdict=CandidateVerdict.REJECTED if item.rejected else CandidateVerdict.ACCEPTED,
                reason=item.rejected,
                quote_start=item.start,
                quote_end=item.end,
            )
            if item.rejected is None:
                candidate.preference_id = _preference_of(db, session, turn, item, recorded)
            db.add(candidate)
        return len(recorded) - before


def _preference_of(
    db: Session,
    session: InterviewSession,
    turn: InterviewTurn,
    item: FinderItem,
    recorded: list[InterviewPreference],
) -> int | None:
    """The preference an accepted item found: the first one it overlaps, now also found by
    the model (as is every other it overlaps), or else a new one."""
    assert item.start is not None and item.end is not None
    overlapping = [p for p in recorded if p.quote_start < item.end and item.start < p.quote_end]
    for preference in overlapping:
        also_found_by(preference, MODEL_FINDER)
        db.add(preference)
    if overlapping:
        return overlapping[0].id
    category = item.category if item.category in KNOWN_CATEGORIES else categorize(item.quote)
    found = FoundPreference(item.quote, item.start, item.end, category)
    preference = preference_row(session, turn, found, MODEL_FINDER)
    db.add(preference)
    db.flush()
    recorded.append(preference)
    return preference.id
