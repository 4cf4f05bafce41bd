"""A finished reply on the wire: one ``message`` JSON, or the Server-Sent Events of a stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import StreamingResponse

from sunset.messages_api.responder import Outcome
from sunset.messages_api.tokens import split_for_stream

#: One Server-Sent Event: its name and its JSON data.
SseEvent = tuple[str, dict[str, Any]]


def _stop_details(outcome: Outcome) -> dict[str, Any] | None:
    if not outcome.refusal:
        return None
    return {"type": "refusal", "category": None, "explanation": outcome.refusal_explanation}


def message_json(message_id: str, outcome: Outcome) -> dict[str, Any]:
    """The body of a non-streamed reply."""
    body: dict[str, Any] = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": outcome.model,
        "content": [{"type": "text", "text": outcome.text}],
        "stop_reason": outcome.stop_reason,
        "stop_sequence": outcome.stop_sequence,
        "usage": {"input_tokens": outcome.input_tokens, "output_tokens": outcome.output_tokens},
    }
    details = _stop_details(outcome)
    if details is not None:
        body["stop_details"] = details
    return body


def stream_events(message_id: str, outcome: Outcome) -> list[SseEvent]:
    """The SSE events of one streamed message, in the order the real API sends them."""
    start_message: dict[str, Any] = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": outcome.model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": outcome.input_tokens, "output_tokens": 0},
    }
    delta: dict[str, Any] = {
        "stop_reason": outcome.stop_reason,
        "stop_sequence": outcome.stop_sequence,
    }
    details = _stop_details(outcome)
    if details is not None:
        delta["stop_details"] = details
    text_block = {"type": "text", "text": ""}
    return [
        ("message_start", {"type": "message_start", "message": start_message}),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": text_block},
        ),
        ("ping", {"type": "ping"}),
        *(
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": d},
                },
            )
            for d in split_for_stream(outcome.text)
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": delta,
                "usage": {"output_tokens": outcome.output_tokens},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def _emit(events: list[SseEvent]) -> AsyncIterator[bytes]:
    for name, data in events:
        yield _sse(name, data)
        # Yield to the loop so events go out as separate writes, like a live stream.
        await asyncio.sleep(0)


def sse_response(events: list[SseEvent]) -> StreamingResponse:
    """A ``text/event-stream`` response sending ``events`` one write each."""
    return StreamingResponse(
        _emit(events), media_type="text/event-stream", headers={"cache-control": "no-cache"}
    )
