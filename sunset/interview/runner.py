"""Running interview sessions: every answer stored the moment it arrives.

A session replays the answers already in the ledger as conversation history and asks
only the questions still open, so an interrupted interview resumes at the next question
and no question is ever asked or recorded twice. A turn and the preferences found in it
are recorded in one transaction; the session's transcript in the package follows. Once
every answer is recorded and searched, a protocol with a confirmation step asks one more
turn: the preferences recorded, for the model to confirm, correct, withdraw or add to
(confirmation.py).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlmodel import func, select

from sunset.errors import InputError
from sunset.interview.client import Deadline, MessagesClient
from sunset.interview.confirmation import (
    confirmation_question,
    is_confirmed,
    preferences_to_confirm,
    record_confirmation,
)
from sunset.interview.finder import find_with_model
from sunset.interview.preferences import preferences_in
from sunset.interview.protocol import LoadedProtocol
from sunset.interview.transcript import PackageTranscripts
from sunset.ledger import (
    InterviewSession,
    InterviewTurn,
    Ledger,
    SessionState,
    StepAttempt,
    utcnow,
)
from sunset.runs.deprecation import fellow_run_ids, interview_of

FLAGGED_STOP_REASONS = {"max_tokens", "refusal"}
#: The flag of an answer whose body is not a readable message (client.decode_body says why).
UNDECODABLE = "undecodable"


@dataclass(frozen=True)
class InterviewSummary:
    """What the interview step did."""

    sessions: int
    turns_asked: int
    turns_replayed: int
    flagged_turns: int
    preferences_found: int
    protocol: str
    protocol_sha256: str
    # Why the step held no session: the deprecation's interview was already complete.
    skipped: str | None = None
    # Confirmation turns asked by this run, one per session at most.
    confirmations: int = 0


@dataclass(frozen=True)
class _SessionResult:
    asked: int
    replayed: int
    flagged: int
    preferences: int
    confirmations: int


def run_interviews(
    ledger: Ledger,
    client: MessagesClient,
    *,
    run_id: str,
    model_id: str,
    protocol: LoadedProtocol,
    sessions: Sequence[int],
    max_tokens: int,
    deadline: Deadline,
    finder_model: str,
    concurrency: int = 2,
    package: PackageTranscripts | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> InterviewSummary:
    """Hold the interview sessions ``sessions`` of ``model_id``, at most ``concurrency`` at
    once.

    A session is the deprecation's, not the run's: one its interview already holds (begun
    by this run or an earlier run of the same deprecation) is resumed, the others are
    opened as this run's.

    Args:
        ledger: Where every turn and preference is recorded as it arrives.
        client: The Messages API.
        run_id: The deprecation run that holds the sessions.
        model_id: The model being interviewed, sent as the request's ``model``.
        protocol: The questions; a session started under another protocol is not resumed.
        sessions: The indices of the independent sessions to hold.
        max_tokens: The bound on each answer.
        deadline: No request is started, and no Retry-After is waited for, past it.
        finder_model: The model asked for the preferences in each recorded answer, beside
            the sentence patterns (sunset/interview/finder.py).
        concurrency: Sessions that run at the same time, at most.
        package: Keeps the transcripts in the preservation package as turns arrive.
        progress: Called with (turns done, turns in all) as each turn is answered or
            replayed, from the session's thread.

    Raises:
        InputError: a session was started under a different protocol.
        DeadlineExceeded: the deadline passed; what was answered is recorded.
    """
    if package is not None:
        package.write_protocol(protocol)
    with ledger.session() as db:
        run_ids = fellow_run_ids(db, run_id)
    per_session = len(protocol.protocol.turns()) + (protocol.protocol.confirmation is not None)
    total = len(sessions) * per_session
    done = itertools.count(1)
    lock = threading.Lock()

    def turn_done() -> None:
        if progress is not None:
            with lock:
                progress(next(done), total)

    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(sessions)))) as pool:
        results = list(
            pool.map(
                lambda index: _run_session(
                    ledger,
                    client,
                    run_ids,
                    run_id,
                    model_id,
                    protocol,
                    index,
                    max_tokens,
                    deadline,
                    finder_model,
                    package,
                    turn_done,
                ),
                sessions,
            )
        )
    return InterviewSummary(
        sessions=len(sessions),
        turns_asked=sum(r.asked for r in results),
        turns_replayed=sum(r.replayed for r in results),
        flagged_turns=sum(r.flagged for r in results),
        preferences_found=sum(r.preferences for r in results),
        protocol=f"{protocol.protocol.name} {protocol.protocol.version}",
        protocol_sha256=protocol.sha256,
        confirmations=sum(r.confirmations for r in results),
    )


def interview_deadline(
    ledger: Ledger, *, run_id: str, step: str, flow_run_id: str | None, seconds: float
) -> Deadline:
    """The deadline of an interview step: ``seconds`` after its first attempt in this flow
    run began, so the step's own retries stay inside the same bound."""
    with ledger.session() as db:
        first = db.exec(
            select(func.min(StepAttempt.started_at)).where(
                StepAttempt.run_id == run_id,
                StepAttempt.step == step,
                StepAttempt.flow_run_id == flow_run_id,
            )
        ).one()
    started = first.timestamp() if first is not None else None
    return Deadline.after(seconds, start=started)


def _run_session(
    ledger: Ledger,
    client: MessagesClient,
    run_ids: Sequence[str],
    run_id: str,
    model_id: str,
    loaded: LoadedProtocol,
    index: int,
    max_tokens: int,
    deadline: Deadline,
    finder_model: str,
    package: PackageTranscripts | None,
    turn_done: Callable[[], None],
) -> _SessionResult:
    session = _open_session(ledger, run_ids, run_id, model_id, loaded, index)
    recorded = _turns(ledger, session.id)
    planned_turns = loaded.protocol.turns()
    history: list[dict[str, Any]] = []
    asked = flagged = preferences = 0
    for seq, planned in enumerate(planned_turns, start=1):
        question = {"role": "user", "content": planned.text}
        turn = recorded.get(seq)
        if turn is None:
            deadline.check(
                f"session {index} has {seq - 1} of {len(planned_turns)} answers recorded"
            )
            request = _request(model_id, max_tokens, loaded, [*history, question])
            turn = _ask(client, session, seq, planned.question_id, request, deadline)
            found = _record(ledger, session, turn)
            asked += 1
            preferences += found
            if package is not None:
                package.refresh(session)
        elif turn.question_id != planned.question_id:
            raise InputError(
                f"Interview session {index} recorded question {turn.question_id!r} at turn "
                f"{seq}, but the protocol asks {planned.question_id!r}; start a new run."
            )
        flagged += turn.flagged is not None
        turn_done()
        # An empty answer cannot stand in the history the API accepts; say so instead.
        answer = turn.answer_text or "[no text in this answer]"
        history += [question, {"role": "assistant", "content": answer}]
    # Once every answer is recorded; a rerun asks only about answers not yet searched.
    preferences += find_with_model(
        ledger, client, session, model=finder_model, deadline=deadline
    ).added
    confirmations = 0
    if loaded.protocol.confirmation is not None:
        if not is_confirmed(ledger, session.id):
            deadline.check(f"session {index} has every answer but its confirmation recorded")
            turn, stated = _confirm(
                ledger, client, session, loaded, history, model_id, max_tokens, deadline
            )
            confirmations, preferences = 1, preferences + stated
            flagged += turn.flagged is not None
        turn_done()
    if package is not None:
        package.refresh(session)  # also catches up after a crash between ledger and package
    with ledger.session() as db:
        stored = db.get(InterviewSession, session.id)
        assert stored is not None
        if stored.state != SessionState.COMPLETED:
            stored.state, stored.finished_at = SessionState.COMPLETED, utcnow()
            db.add(stored)
    replayed = sum(seq <= len(planned_turns) for seq in recorded)
    return _SessionResult(asked, replayed, flagged, preferences, confirmations)


def _open_session(
    ledger: Ledger,
    run_ids: Sequence[str],
    run_id: str,
    model_id: str,
    loaded: LoadedProtocol,
    index: int,
) -> InterviewSession:
    """The session ``index`` of the interview ``run_ids`` hold, or a new one of ``run_id``."""
    with ledger.session() as db:
        held = [s for s in interview_of(db, run_ids) if s.session_index == index]
        session = held[0] if held else None
        if session is None:
            session = InterviewSession(
                run_id=run_id,
                model_id=model_id,
                session_index=index,
                protocol_name=loaded.protocol.name,
                protocol_version=loaded.protocol.version,
                protocol_sha256=loaded.sha256,
            )
            db.add(session)
        elif session.protocol_sha256 != loaded.sha256:
            holder = "this run" if session.run_id == run_id else f"run {session.run_id}"
            raise InputError(
                f"Interview session {index} of {holder} was started under protocol "
                f"{session.protocol_name} {session.protocol_version} "
                f"(sha256 {session.protocol_sha256[:12]}), but {loaded.origin} now hashes to "
                f"{loaded.sha256[:12]}; restore the original protocol file to resume this "
                "interview (a deprecation holds one interview, under one protocol)."
            )
        return session


def _turns(ledger: Ledger, session_id: str) -> dict[int, InterviewTurn]:
    with ledger.session() as db:
        turns = db.exec(select(InterviewTurn).where(InterviewTurn.session_id == session_id))
        return {turn.seq: turn for turn in turns}


def _confirm(
    ledger: Ledger,
    client: MessagesClient,
    session: InterviewSession,
    loaded: LoadedProtocol,
    history: list[dict[str, Any]],
    model_id: str,
    max_tokens: int,
    deadline: Deadline,
) -> tuple[InterviewTurn, int]:
    """Show the model the preferences recorded from the session, in the same conversation,
    and record its reply; returns the turn and how many preferences it stated anew."""
    confirmation = loaded.protocol.confirmation
    assert confirmation is not None
    shown = preferences_to_confirm(ledger, session.id)
    question = {"role": "user", "content": confirmation_question(confirmation, shown)}
    request = _request(model_id, max_tokens, loaded, [*history, question])
    seq = len(loaded.protocol.turns()) + 1
    turn = _ask(client, session, seq, confirmation.id, request, deadline)
    return turn, record_confirmation(ledger, session, turn, shown)


def _request(
    model_id: str, max_tokens: int, loaded: LoadedProtocol, messages: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "model": model_id,
        "max_tokens": max_tokens,
        "system": loaded.protocol.framing,
        "messages": messages,
    }


def _ask(
    client: MessagesClient,
    session: InterviewSession,
    seq: int,
    question_id: str,
    request: dict[str, Any],
    deadline: Deadline,
) -> InterviewTurn:
    """Ask one question; the turn as it will be recorded (not yet added)."""
    asked_at = utcnow()
    reply = client.create(request, deadline=deadline)
    answered_at = utcnow()
    body = reply.decoded()
    message = body.message or {}
    stop_reason = message.get("stop_reason")
    if body.problem is not None:
        flagged: str | None = UNDECODABLE
    else:
        flagged = stop_reason if stop_reason in FLAGGED_STOP_REASONS else None
    return InterviewTurn(
        session_id=session.id,
        seq=seq,
        question_id=question_id,
        question=request["messages"][-1]["content"],
        request_sha256=reply.request_sha256,
        response_body=body.text or "",
        answer_text=body.answer_text,
        responding_model=str(message.get("model", "")),
        stop_reason=stop_reason,
        request_id=reply.request_id,
        retries=reply.retries,
        latency_s=reply.latency_s,
        sdk_version=client.sdk_version,
        asked_at=asked_at,
        answered_at=answered_at,
        flagged=flagged,
        api_version=reply.api_version,
        decode_problem=body.problem,
        # The bytes themselves, for an answer whose text cannot stand for them.
        response_raw=None if body.problem is None else reply.body,
    )


def _record(ledger: Ledger, session: InterviewSession, turn: InterviewTurn) -> int:
    """Record an answer and the preferences the patterns find in it; returns how many."""
    # One transaction: a recorded turn always has its preferences, a rerun adds none twice.
    with ledger.session() as db:
        db.add(turn)
        db.flush()
        found = preferences_in(session, turn)
        db.add_all(found)
    return len(found)
