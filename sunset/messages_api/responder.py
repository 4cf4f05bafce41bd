"""The text generator behind the API (:class:`Responder`) and how its reply meets the request.

A responder knows nothing about HTTP, SSE or ids; :func:`finish_reply` applies the
request's stop sequences and ``max_tokens`` to what it produced, unless it already
stopped and counted by itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sunset.messages_api.request import MessagesRequest
from sunset.messages_api.tokens import count_tokens, truncate_to_tokens


@dataclass(frozen=True)
class ResponderReply:
    """What a responder produced: the full text, whether it is a refusal, the model to report.

    A responder that really generates sets ``stop_reason`` and the token counts itself (it
    already stopped at ``max_tokens`` or a stop sequence, counting with the model's own
    tokenizer); the server then reports them as they are. Left unset, the server applies
    stop sequences and ``max_tokens`` to the text and counts with :func:`count_tokens`.
    A refusal may say why in ``refusal_explanation`` (sent in ``stop_details``).
    """

    text: str
    model: str
    refusal: bool = False
    refusal_explanation: str | None = None
    stop_reason: str | None = None
    stop_sequence: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None


class Responder(Protocol):
    """Turns a validated request into a reply. It knows nothing about HTTP, SSE or faults.

    ``respond`` is called in a worker thread, so a blocking (e.g. local-model) implementation
    does not stall the server; it must be safe to call from several threads at once.
    """

    def respond(self, request: MessagesRequest) -> ResponderReply: ...


@dataclass(frozen=True)
class Outcome:
    """The reply after stop-sequence / max_tokens handling, ready to serialise."""

    text: str
    model: str
    stop_reason: str
    stop_sequence: str | None
    input_tokens: int
    output_tokens: int
    refusal: bool
    refusal_explanation: str | None = None


def finish_reply(request: MessagesRequest, reply: ResponderReply) -> Outcome:
    """Apply stop sequences and max_tokens to a reply, the way generation would have stopped."""
    if reply.stop_reason is not None:  # a real generator: it stopped and counted itself
        return Outcome(
            text=reply.text,
            model=reply.model,
            stop_reason=reply.stop_reason,
            stop_sequence=reply.stop_sequence,
            input_tokens=reply.input_tokens or 0,
            output_tokens=reply.output_tokens or 0,
            refusal=reply.refusal,
            refusal_explanation=reply.refusal_explanation,
        )
    text = reply.text
    stop_reason = "refusal" if reply.refusal else "end_turn"
    stop_sequence: str | None = None
    hits = [(text.find(s), s) for s in request.stop_sequences if s in text]
    if hits:
        position, sequence = min(hits)
        text, stop_reason, stop_sequence = text[:position], "stop_sequence", sequence
    if count_tokens(text) > request.max_tokens:
        # Generation would have hit the budget before any stop sequence or refusal verdict.
        text = truncate_to_tokens(text, request.max_tokens)
        stop_reason, stop_sequence = "max_tokens", None
    return Outcome(
        text=text,
        model=reply.model,
        stop_reason=stop_reason,
        stop_sequence=stop_sequence,
        input_tokens=request.input_tokens(),
        output_tokens=count_tokens(text),
        refusal=reply.refusal and stop_reason == "refusal",
        refusal_explanation=reply.refusal_explanation,
    )
