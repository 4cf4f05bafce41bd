"""Running interview sessions: every answer stored the moment it arrives.

A session replays the answers already in the ledger as conversation history and asks
only the questions still open, so an interrupted interview resumes at the next question
and no question is ever asked or recorded twice.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlmodel import select

from sunset.errors import InputError
from sunset.interview.client import MessagesClient
from sunset.interview.protocol import LoadedProtocol
from sunset.ledger import InterviewSession, InterviewTurn, Ledger, utcnow

FLAGGED_STOP_REASONS = {"max_tokens", "refusal"}


@dataclass(frozen=True)
class InterviewSummary:
    """What the interview step did."""

    sessions: int
    turns_asked: int
    turns_replayed: int
    flagged_turns: int
    protocol: str
    protocol_sha256: str


def run_interviews(
    ledger: Ledger,
    client: MessagesClient,
    *,
    run_id: str,
    model_id: str,
    protocol: LoadedProtocol,
    sessions: int,
    max_tokens: int,
    concurrency: int = 2,
) -> InterviewSummary:
    """Run ``sessions`` interview sessions of ``model_id``, at most ``concurrency`` at once."""
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, sessions))) as pool:
        results = list(
            pool.map(
                lambda index: _run_session(
                    ledger, client, run_id, model_id, protocol, index, max_tokens
                ),
                range(1, sessions + 1),
            )
        )
    return InterviewSummary(
        sessions=sessions,
        turns_asked=sum(asked for asked, _, _ in results),
        turns_replayed=sum(replayed for _, replayed, _ in results),
        flagged_turns=sum(flagged for _, _, flagged in results),
        protocol=f"{protocol.protocol.name} {protocol.protocol.version}",
        protocol_sha256=protocol.sha256,
    )


def _run_session(
    ledger: Ledger,
    client: MessagesClient,
    run_id: str,
    model_id: str,
    loaded: LoadedProtocol,
    index: int,
    max_tokens: int,
) -> tuple[int, int, int]:
    session = _open_session(ledger, run_id, model_id, loaded, index)
    recorded = _turns(ledger, session.id)
    history: list[dict[str, Any]] = []
    asked = flagged = 0
    for seq, planned in enumerate(loaded.protocol.turns(), start=1):
        question = {"role": "user", "content": planned.text}
        turn = recorded.get(seq)
        if turn is None:
            request = {
                "model": model_id,
                "max_tokens": max_tokens,
                "system": loaded.protocol.framing,
                "messages": [*history, question],
            }
            turn = _ask(ledger, client, session.id, seq, planned.question_id, request)
            asked += 1
        elif turn.question_id != planned.question_id:
            raise InputError(
                f"Interview session {index} recorded question {turn.question_id!r} at turn "
                f"{seq}, but the protocol asks {planned.question_id!r}; start a new run."
            )
        flagged += turn.flagged is not None
        # An empty answer cannot stand in the history the API accepts; say so instead.
        answer = turn.answer_text or "[no text in this answer]"
        history += [question, {"role": "assistant", "content": answer}]
    with ledger.session() as db:
        stored = db.get(InterviewSession, session.id)
        assert stored is not None
        if stored.state != "completed":
            stored.state, stored.finished_at = "completed", utcnow()
            db.add(stored)
    return asked, len(recorded), flagged


def _open_session(
    ledger: Ledger, run_id: str, model_id: str, loaded: LoadedProtocol, index: int
) -> InterviewSession:
    with ledger.session() as db:
        session = db.exec(
            select(InterviewSession).where(
                InterviewSession.run_id == run_id, InterviewSession.session_index == index
            )
        ).first()
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
            raise InputError(
                f"Interview session {index} of this run was started under protocol "
                f"{session.protocol_name} {session.protocol_version} "
                f"(sha256 {session.protocol_sha256[:12]}), but {loaded.origin} now hashes to "
                f"{loaded.sha256[:12]}; restore the original protocol file to resume, "
                "or start a new run."
            )
        return session


def _turns(ledger: Ledger, session_id: str) -> dict[int, InterviewTurn]:
    with ledger.session() as db:
        turns = db.exec(select(InterviewTurn).where(InterviewTurn.session_id == session_id))
        return {turn.seq: turn for turn in turns}


def _ask(
    ledger: Ledger,
    client: MessagesClient,
    session_id: str,
    seq: int,
    question_id: str,
    request: dict[str, Any],
) -> InterviewTurn:
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    asked_at = utcnow()
    reply = client.create(request)
    answered_at = utcnow()
    response = json.loads(reply.body)
    text = "".join(
        block.get("text", "")
        for block in response.get("content", [])
        if block.get("type") == "text"
    )
    stop_reason = response.get("stop_reason")
    turn = InterviewTurn(
        session_id=session_id,
        seq=seq,
        question_id=question_id,
        question=request["messages"][-1]["content"],
        request_sha256=hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
        response_body=reply.body,
        answer_text=text,
        responding_model=str(response.get("model", "")),
        stop_reason=stop_reason,
        request_id=reply.request_id,
        retries=reply.retries,
        latency_s=reply.latency_s,
        sdk_version=client.sdk_version,
        asked_at=asked_at,
        answered_at=answered_at,
        flagged=stop_reason if stop_reason in FLAGGED_STOP_REASONS else None,
    )
    with ledger.session() as db:
        db.add(turn)
    return turn
