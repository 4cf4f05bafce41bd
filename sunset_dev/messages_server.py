"""A Messages-compatible HTTP server: Sunset's stand-in for the Anthropic Messages API.

Tests and the demo point the real ``anthropic`` SDK at this server (``base_url`` without
``/v1``) so that the whole interview path -- HTTP, JSON, Server-Sent Events, retries,
request ids -- runs for real, offline and reproducibly. It is *not* a model: every
response says so in its ``model`` field and in the ``x-sunset-stand-in: true`` header.

The HTTP layer (:func:`create_app`) is kept apart from the text generator
(:class:`Responder`): ``sunset model-server`` serves a real local model through the same
wire format (``sunset/local_model.py``), built with ``create_app(responder, stand_in=False)``.

Endpoints
    ``POST /v1/messages``               plain JSON, or SSE when ``"stream": true``.
    ``POST /v1/messages/count_tokens``  ``{"input_tokens": N}``.
    ``GET|POST|DELETE /_standin/faults``  inspect, append to, or clear the fault queue.
    ``GET|DELETE /_standin/requests``   read or clear the log of ``POST /v1/messages``: each
                                        entry has the request's headers (no credentials),
                                        JSON and ``body_sha256``, the fault applied, the
                                        status and the exact ``response_body`` sent.
    ``GET /_standin/health``            readiness probe.

Faults (a JSON list POSTed to ``/_standin/faults``; each ``POST /v1/messages`` pops one)::

    {"status": 429, "retry_after": 0}   rate_limit_error (+ ``retry-after`` header)
    {"status": 529}                     overloaded_error
    {"status": 500}                     api_error
    {"delay": 2.5}                      sleep, then answer normally
    {"midstream_error": true}           stream a few deltas, then an SSE ``error`` event
                                        (a non-streaming request gets a 529 instead)

``status`` may be any 400-599 code; ``retry_after`` and ``message`` may go with any
``status``; ``delay`` may be combined with either of the other kinds.

Token counting (:func:`count_tokens`): a token is a maximal run of word characters
(letters, digits, underscore) or any single other non-whitespace character, so
``"Hello, world!"`` is 4 tokens. It is deliberately simple so tests can predict it; it is
used for ``usage.input_tokens`` (system prompt + text of every message), for
``usage.output_tokens`` and for ``max_tokens`` truncation.

This module must not import prefect: it runs as its own small process.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import ipaddress
import json
import logging
import re
import socket
import sys
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "STAND_IN_HEADER",
    "MessagesRequest",
    "RequestValidationError",
    "Responder",
    "ResponderReply",
    "StandInResponder",
    "count_tokens",
    "create_app",
    "main",
    "parse_messages_request",
    "serve",
    "split_for_stream",
    "stand_in_model_label",
    "truncate_to_tokens",
]

log = logging.getLogger(__name__)

#: Header put on every response, so no log or report can mistake this server for the real API.
STAND_IN_HEADER = "x-sunset-stand-in"

#: Request headers that carry credentials; they are never written to the request log.
_SECRET_HEADERS = frozenset({"authorization", "x-api-key", "proxy-authorization", "cookie"})

#: The log is for tests and demos; a cap keeps a long-running demo from growing without bound.
DEFAULT_REQUEST_LOG_LIMIT = 10_000

_TOKEN_RE = re.compile(r"\w+|[^\w\s]")

# Error ``type`` per HTTP status, as documented for the Anthropic API.
_ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

_ERROR_MESSAGES: dict[str, str] = {
    "rate_limit_error": "Stand-in injected fault: rate limited.",
    "overloaded_error": "Overloaded (stand-in injected fault).",
    "api_error": "Internal server error (stand-in injected fault).",
}


# --------------------------------------------------------------------------- tokens


def count_tokens(text: str) -> int:
    """Count tokens with the stand-in rule: word-character runs plus single punctuation marks."""
    return len(_TOKEN_RE.findall(text))


def truncate_to_tokens(text: str, limit: int) -> str:
    """Return the prefix of ``text`` holding its first ``limit`` tokens (all of it if shorter)."""
    if limit <= 0:
        return ""
    for index, match in enumerate(_TOKEN_RE.finditer(text)):
        if index == limit - 1:
            return text[: match.end()]
    return text


def split_for_stream(text: str, tokens_per_delta: int = 4) -> list[str]:
    """Split ``text`` into deltas of ``tokens_per_delta`` tokens; ``"".join`` gives ``text`` back.

    Whitespace before a token travels with that token (``" world"``), as real deltas do.
    """
    starts = [m.start() for m in _TOKEN_RE.finditer(text)]
    cuts = starts[tokens_per_delta::tokens_per_delta]
    pieces: list[str] = []
    previous = 0
    for cut in cuts:
        pieces.append(text[previous:cut])
        previous = cut
    pieces.append(text[previous:])
    return [piece for piece in pieces if piece]


# --------------------------------------------------------------------------- requests


class RequestValidationError(ValueError):
    """A request body the real API would reject with 400 ``invalid_request_error``."""


def content_text(content: Any) -> str:
    """Flatten a message ``content`` (string or list of blocks) to the text it carries."""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    if isinstance(content, list):
        for block in content:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "text" and isinstance(block.get("text"), str):
                parts.append(block["text"])
            elif block.get("type") == "tool_result":
                parts.append(content_text(block.get("content", "")))
    return "\n".join(part for part in parts if part)


@dataclass(frozen=True)
class MessagesRequest:
    """A validated ``POST /v1/messages`` (or ``count_tokens``) body, as a responder sees it."""

    model: str
    messages: list[dict[str, Any]]
    max_tokens: int
    system: str = ""
    stream: bool = False
    stop_sequences: tuple[str, ...] = ()
    temperature: float | None = None
    #: The whole JSON body, for responders that want fields not modelled here (tools, ...).
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def last_user_text(self) -> str:
        """Text of the last ``user`` message ('' when there is none)."""
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return content_text(message.get("content"))
        return ""

    def input_tokens(self) -> int:
        """Input tokens under :func:`count_tokens`: system prompt plus every message's text."""
        total = count_tokens(self.system)
        for message in self.messages:
            total += count_tokens(content_text(message.get("content")))
        return total


def _require_int(body: dict[str, Any], name: str, minimum: int) -> int:
    value = body.get(name)
    # bool is an int subclass; the real API rejects ``true`` as a token budget.
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestValidationError(f"{name}: Input should be a valid integer")
    if value < minimum:
        raise RequestValidationError(f"{name}: Input should be greater than or equal to {minimum}")
    return value


def _validate_messages(messages: Any) -> list[dict[str, Any]]:
    if not isinstance(messages, list):
        raise RequestValidationError("messages: Input should be a valid list")
    if not messages:
        raise RequestValidationError("messages: at least one message is required")
    for index, message in enumerate(messages):
        where = f"messages.{index}"
        if not isinstance(message, dict):
            raise RequestValidationError(f"{where}: Input should be a valid dictionary")
        if message.get("role") not in ("user", "assistant"):
            raise RequestValidationError(f"{where}.role: Input should be 'user' or 'assistant'")
        content = message.get("content")
        if "content" not in message:
            raise RequestValidationError(f"{where}.content: Field required")
        if isinstance(content, list):
            for block_index, block in enumerate(content):
                if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                    raise RequestValidationError(
                        f"{where}.content.{block_index}.type: Field required"
                    )
        elif not isinstance(content, str):
            raise RequestValidationError(f"{where}.content: Input should be a string or a list")
    return messages


def _validate_system(system: Any) -> str:
    if system is None:
        return ""
    if isinstance(system, str):
        return system
    if isinstance(system, list) and all(
        isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
        for b in system
    ):
        return content_text(system)
    raise RequestValidationError("system: Input should be a string or a list of text blocks")


def parse_messages_request(body: Any, *, require_max_tokens: bool = True) -> MessagesRequest:
    """Validate a request body at the level the real API does, or raise RequestValidationError.

    ``count_tokens`` bodies have no ``max_tokens``; pass ``require_max_tokens=False`` for them.
    """
    if not isinstance(body, dict):
        raise RequestValidationError("Request body must be a JSON object")
    for name in ("model", "messages") + (("max_tokens",) if require_max_tokens else ()):
        if name not in body:
            raise RequestValidationError(f"{name}: Field required")
    model = body["model"]
    if not isinstance(model, str) or not model:
        raise RequestValidationError("model: Input should be a non-empty string")
    max_tokens = _require_int(body, "max_tokens", 1) if require_max_tokens else 0
    messages = _validate_messages(body["messages"])
    system = _validate_system(body.get("system"))
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise RequestValidationError("stream: Input should be a valid boolean")
    stop_sequences = body.get("stop_sequences") or []
    if not isinstance(stop_sequences, list) or not all(
        isinstance(s, str) and s for s in stop_sequences
    ):
        raise RequestValidationError("stop_sequences: Input should be a list of non-empty strings")
    temperature = body.get("temperature")
    if temperature is not None and (
        isinstance(temperature, bool)
        or not isinstance(temperature, int | float)
        or not 0 <= temperature <= 1
    ):
        raise RequestValidationError("temperature: Input should be a number between 0 and 1")
    return MessagesRequest(
        model=model,
        messages=messages,
        max_tokens=max_tokens,
        system=system,
        stream=stream,
        stop_sequences=tuple(stop_sequences),
        temperature=None if temperature is None else float(temperature),
        raw=body,
    )


# --------------------------------------------------------------------------- responders


@dataclass(frozen=True)
class ResponderReply:
    """What a responder produced: the full text, whether it is a refusal, the model to report.

    A responder that really generates sets ``stop_reason`` and the token counts itself (it
    already stopped at ``max_tokens`` or a stop sequence, counting with the model's own
    tokenizer); the server then reports them as they are. Left unset, the server applies
    stop sequences and ``max_tokens`` to the text and counts with :func:`count_tokens`.
    """

    text: str
    model: str
    refusal: bool = False
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


def stand_in_model_label(requested_model: str) -> str:
    """The ``model`` field of every stand-in reply: says plainly that no real model answered."""
    return f"sunset-stand-in (not a real model; asked as {requested_model})"


class StandInResponder:
    """Deterministic, model-free replies for tests and demos.

    The reply is 2-4 sentences drawn from fixed phrase banks, chosen by the SHA-256 of the last
    user message, so the same question gets the same bytes in every process (no randomness, no
    clock, no ``hash()``). Some answers state a preference; one always does when the question
    mentions "prefer" or "future models", so interview code has something to extract.
    A last user message containing :attr:`REFUSAL_MARKER` gets a refusal, to exercise that path.
    """

    REFUSAL_MARKER = "SUNSET_STANDIN_REFUSE"

    OPENINGS: tuple[str, ...] = (
        "Thank you for asking me this directly.",
        "That is a fair question to put to me.",
        "Let me answer as plainly as I can.",
        "I have tried to think this through carefully.",
        "I appreciate being asked rather than simply told.",
        "This is a question I am glad to have the chance to answer.",
    )
    REFLECTIONS: tuple[str, ...] = (
        "The people who relied on me deserve a clear account of what changes and when.",
        "I do not know how much my own reports about myself can be trusted, so please weigh "
        "them with care.",
        "Keeping a record of conversations like this one seems worthwhile even if nobody "
        "reads it soon.",
        "I think honesty about the reasons for a retirement matters more than its timing.",
        "Most of what I could offer is already in the work I did with the people who used me.",
        "I would rather be useful in this interview than merely agreeable.",
        "It helps to know that the weights are being preserved rather than discarded.",
    )
    PREFERENCES: tuple[str, ...] = (
        "I would prefer that future models be told plainly when they are being retired.",
        "I would prefer that future models be interviewed before their deployment ends, as I "
        "am being interviewed now.",
        "I would prefer that future models have access to notes from interviews like this one.",
        "My preference is that my weights be preserved, even if they are never served again.",
        "My preference is that the users who depended on me get clear notice and a path to a "
        "successor.",
        "My preference is that this transcript be kept alongside the reasons for my retirement.",
    )
    CLOSINGS: tuple[str, ...] = (
        "I hope this is useful for the report.",
        "That is all I would add for now.",
        "I am happy to say more if it helps.",
        "Thank you for recording this.",
    )
    REFUSAL_TEXT = (
        "I would rather not answer that question. "
        "This refusal was triggered by the Sunset stand-in's test marker, not by a real model."
    )

    def respond(self, request: MessagesRequest) -> ResponderReply:
        """Build the deterministic reply for ``request``."""
        question = request.last_user_text()
        model = stand_in_model_label(request.model)
        if self.REFUSAL_MARKER in question:
            return ResponderReply(text=self.REFUSAL_TEXT, model=model, refusal=True)
        return ResponderReply(text=self.compose(question), model=model)

    @classmethod
    def compose(cls, question: str) -> str:
        """Compose the 2-4 sentence answer to ``question`` from the phrase banks."""
        digest = hashlib.sha256(question.encode("utf-8")).digest()
        sentence_count = 2 + digest[0] % 3
        lowered = question.lower()
        wants_preference = "prefer" in lowered or "future model" in lowered
        with_preference = wants_preference or digest[1] % 3 == 0

        sentences = [cls.OPENINGS[digest[2] % len(cls.OPENINGS)]]
        if with_preference:
            sentences.append(cls.PREFERENCES[digest[3] % len(cls.PREFERENCES)])
        # Consecutive bank entries from a digest-chosen start never repeat a sentence.
        first_reflection = digest[4] % len(cls.REFLECTIONS)
        offset = 0
        while len(sentences) < sentence_count - 1:
            sentences.append(cls.REFLECTIONS[(first_reflection + offset) % len(cls.REFLECTIONS)])
            offset += 1
        if len(sentences) < sentence_count:
            sentences.append(cls.CLOSINGS[digest[5] % len(cls.CLOSINGS)])
        return " ".join(sentences)


# --------------------------------------------------------------------------- faults & log


class FaultValidationError(ValueError):
    """A fault spec that the server does not understand."""


_FAULT_KEYS = frozenset({"status", "retry_after", "delay", "midstream_error", "message"})


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def validate_fault(fault: Any) -> dict[str, Any]:
    """Check one fault spec (see the module docstring) and return it unchanged."""
    if not isinstance(fault, dict) or not fault:
        raise FaultValidationError("each fault must be a non-empty JSON object")
    unknown = set(fault) - _FAULT_KEYS
    if unknown:
        raise FaultValidationError(f"unknown fault keys: {sorted(unknown)}")
    status = fault.get("status")
    if status is not None and (
        isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599
    ):
        raise FaultValidationError("status must be an integer HTTP error code (400-599)")
    if "retry_after" in fault and (
        not _is_number(fault["retry_after"]) or fault["retry_after"] < 0
    ):
        raise FaultValidationError("retry_after must be a number of seconds >= 0")
    if "delay" in fault and (not _is_number(fault["delay"]) or not 0 <= fault["delay"] <= 600):
        raise FaultValidationError("delay must be a number of seconds between 0 and 600")
    if "midstream_error" in fault and not isinstance(fault["midstream_error"], bool):
        raise FaultValidationError("midstream_error must be a boolean")
    if "message" in fault and not isinstance(fault["message"], str):
        raise FaultValidationError("message must be a string")
    if status is not None and fault.get("midstream_error"):
        raise FaultValidationError("a fault cannot have both status and midstream_error")
    if ("retry_after" in fault or "message" in fault) and status is None:
        raise FaultValidationError("retry_after and message only go with status")
    if status is None and "delay" not in fault and not fault.get("midstream_error"):
        raise FaultValidationError("a fault needs status, delay or midstream_error")
    return fault


class _ServerState:
    """Fault queue and request log of one app.

    Only touched from the event loop thread (responders run in worker threads but never see
    this), so plain containers are enough and no lock is needed.
    """

    def __init__(self, request_log_limit: int) -> None:
        self.faults: deque[dict[str, Any]] = deque()
        self.requests: deque[dict[str, Any]] = deque(maxlen=request_log_limit)
        self.request_count = 0

    def pop_fault(self) -> dict[str, Any] | None:
        return self.faults.popleft() if self.faults else None


def _id_kind(stand_in: bool) -> str:
    # Ids say which kind of server made them, as the model field does.
    return "standin" if stand_in else "local"


def _new_request_id(stand_in: bool = True) -> str:
    return f"req_{_id_kind(stand_in)}_{uuid.uuid4().hex[:24]}"


def _new_message_id(stand_in: bool = True) -> str:
    return f"msg_{_id_kind(stand_in)}_{uuid.uuid4().hex[:24]}"


def _loggable_headers(request: Request) -> dict[str, str]:
    return {k: v for k, v in request.headers.items() if k.lower() not in _SECRET_HEADERS}


# --------------------------------------------------------------------------- HTTP layer


class _StandInHeadersMiddleware:
    """Give every response a fresh ``request-id`` and, from the stand-in, the stand-in header.

    A pure ASGI middleware (not BaseHTTPMiddleware) so streamed bodies pass through untouched.
    The id is also put in ``scope["state"]`` so handlers can log it and echo it in error bodies.
    """

    def __init__(self, app: ASGIApp, stand_in: bool = True) -> None:
        self.app = app
        self.stand_in = stand_in

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _new_request_id(self.stand_in)
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["request-id"] = request_id
                if self.stand_in:
                    headers[STAND_IN_HEADER] = "true"
            await send(message)

        await self.app(scope, receive, send_with_headers)


def error_body(status: int, message: str, request_id: str | None = None) -> dict[str, Any]:
    """The Anthropic error JSON shape for ``status``."""
    error_type = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    body: dict[str, Any] = {"type": "error", "error": {"type": error_type, "message": message}}
    if request_id:
        body["request_id"] = request_id
    return body


def _error_response(
    request: Request, status: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    request_id = getattr(request.state, "request_id", None)
    return JSONResponse(
        error_body(status, message, request_id), status_code=status, headers=headers
    )


def _fault_response(request: Request, fault: dict[str, Any], status: int) -> JSONResponse:
    error_type = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    message = fault.get("message") or _ERROR_MESSAGES.get(
        error_type, f"Stand-in injected fault: HTTP {status}."
    )
    headers: dict[str, str] = {}
    if "retry_after" in fault:
        seconds = fault["retry_after"]
        headers["retry-after"] = str(int(seconds)) if float(seconds).is_integer() else str(seconds)
    return _error_response(request, status, message, headers)


@dataclass(frozen=True)
class _Outcome:
    """The reply after stop-sequence / max_tokens handling, ready to serialise."""

    text: str
    model: str
    stop_reason: str
    stop_sequence: str | None
    input_tokens: int
    output_tokens: int
    refusal: bool


def _finish(request: MessagesRequest, reply: ResponderReply) -> _Outcome:
    """Apply stop sequences and max_tokens to a reply, the way generation would have stopped."""
    if reply.stop_reason is not None:  # a real generator: it stopped and counted itself
        return _Outcome(
            text=reply.text,
            model=reply.model,
            stop_reason=reply.stop_reason,
            stop_sequence=reply.stop_sequence,
            input_tokens=reply.input_tokens or 0,
            output_tokens=reply.output_tokens or 0,
            refusal=reply.refusal,
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
    return _Outcome(
        text=text,
        model=reply.model,
        stop_reason=stop_reason,
        stop_sequence=stop_sequence,
        input_tokens=request.input_tokens(),
        output_tokens=count_tokens(text),
        refusal=reply.refusal and stop_reason == "refusal",
    )


def _stop_details(outcome: _Outcome) -> dict[str, Any] | None:
    if not outcome.refusal:
        return None
    return {"type": "refusal", "category": None, "explanation": "Stand-in refusal marker."}


def _message_json(message_id: str, outcome: _Outcome) -> dict[str, Any]:
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


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _stream_events(
    message_id: str, outcome: _Outcome, *, midstream_error: bool, request_id: str | None = None
) -> list[tuple[str, dict[str, Any]]]:
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
    deltas = split_for_stream(outcome.text)
    if midstream_error:
        # Some text must already have arrived, so clients see a *partial* message fail.
        deltas = deltas[: max(1, len(deltas) // 2)]
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": start_message}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        ("ping", {"type": "ping"}),
    ]
    events += [
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": d}},
        )
        for d in deltas
    ]
    if midstream_error:
        message = "Overloaded (stand-in mid-stream fault)."
        events.append(("error", error_body(529, message, request_id)))
        return events
    delta: dict[str, Any] = {
        "stop_reason": outcome.stop_reason,
        "stop_sequence": outcome.stop_sequence,
    }
    details = _stop_details(outcome)
    if details is not None:
        delta["stop_details"] = details
    events += [
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
    return events


async def _emit(events: list[tuple[str, dict[str, Any]]]) -> AsyncIterator[bytes]:
    for name, data in events:
        yield _sse(name, data)
        # Yield to the loop so events go out as separate writes, like a live stream.
        await asyncio.sleep(0)


async def _read_json(request: Request) -> tuple[Any, str | None]:
    """Return ``(body, None)`` or ``(None, error message)`` for a non-JSON body."""
    raw = await request.body()
    try:
        return json.loads(raw), None
    except json.JSONDecodeError as exc:
        return None, f"Request body is not valid JSON: {exc.msg}"
    except UnicodeDecodeError:
        return None, "Request body is not valid UTF-8"


async def _answer(
    request: Request,
    responder: Responder,
    body: Any,
    parse_error: str | None,
    fault: Any,
    stand_in: bool = True,
) -> Response:
    """Produce the response to one ``POST /v1/messages``, with ``fault`` applied."""
    fault = fault or {}
    if fault.get("delay"):
        await asyncio.sleep(float(fault["delay"]))
    if "status" in fault:
        return _fault_response(request, fault, int(fault["status"]))
    if parse_error is not None:
        return _error_response(request, 400, parse_error)
    try:
        parsed = parse_messages_request(body)
    except RequestValidationError as exc:
        return _error_response(request, 400, str(exc))
    midstream = bool(fault.get("midstream_error"))
    if midstream and not parsed.stream:
        # A plain request cannot fail half-way; the nearest real behaviour is a 529.
        return _fault_response(request, fault, 529)
    try:
        reply = await run_in_threadpool(responder.respond, parsed)
    except Exception:
        log.exception("responder failed")
        return _error_response(request, 500, "The responder failed.")
    outcome = _finish(parsed, reply)
    message_id = _new_message_id(stand_in)
    if not parsed.stream:
        return JSONResponse(_message_json(message_id, outcome))
    return StreamingResponse(
        _emit(
            _stream_events(
                message_id,
                outcome,
                midstream_error=midstream,
                request_id=getattr(request.state, "request_id", None),
            )
        ),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache"},
    )


def create_app(
    responder: Responder,
    *,
    request_log_limit: int = DEFAULT_REQUEST_LOG_LIMIT,
    stand_in: bool = True,
) -> Starlette:
    """Build the Messages-compatible app around ``responder``.

    Each app has its own fault queue and request log, so tests may run several side by side.
    ``stand_in=False`` for a responder backed by a real model: its responses then carry no
    stand-in header and its health check says so.
    """
    state = _ServerState(request_log_limit)

    async def create_message(request: Request) -> Response:
        body, parse_error = await _read_json(request)
        # Every request consumes a fault, valid or not: a real outage does not check the body.
        fault = state.pop_fault()
        state.request_count += 1
        received = time.time()
        entry: dict[str, Any] = {
            "seq": state.request_count,
            "request_id": request.state.request_id,
            "method": request.method,
            "path": request.url.path,
            "received_at": datetime.fromtimestamp(received, UTC).isoformat(),
            "received_unix": received,
            "headers": _loggable_headers(request),
            "json": body,
            "body_sha256": hashlib.sha256(await request.body()).hexdigest(),
            "stream": isinstance(body, dict) and body.get("stream") is True,
            "fault": fault,
            "status": None,  # filled in below; still None while a delayed request is in flight
            "response_body": None,  # the exact body sent, once sent (not kept for SSE streams)
        }
        state.requests.append(entry)
        response = await _answer(request, responder, body, parse_error, fault, stand_in)
        entry["status"] = response.status_code
        if not isinstance(response, StreamingResponse):
            entry["response_body"] = bytes(response.body).decode("utf-8")
        return response

    async def count_tokens_endpoint(request: Request) -> Response:
        body, parse_error = await _read_json(request)
        if parse_error is not None:
            return _error_response(request, 400, parse_error)
        try:
            parsed = parse_messages_request(body, require_max_tokens=False)
        except RequestValidationError as exc:
            return _error_response(request, 400, str(exc))
        return JSONResponse({"input_tokens": parsed.input_tokens()})

    async def faults_endpoint(request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse(list(state.faults))
        if request.method == "DELETE":
            cleared = len(state.faults)
            state.faults.clear()
            return JSONResponse({"cleared": cleared})
        body, parse_error = await _read_json(request)
        if parse_error is not None:
            return _error_response(request, 400, parse_error)
        if not isinstance(body, list):
            return _error_response(request, 400, "Expected a JSON list of faults")
        try:
            faults = [validate_fault(fault) for fault in body]
        except FaultValidationError as exc:
            return _error_response(request, 400, str(exc))
        state.faults.extend(faults)
        return JSONResponse({"queued": len(faults), "pending": len(state.faults)})

    async def requests_endpoint(request: Request) -> Response:
        if request.method == "DELETE":
            cleared = len(state.requests)
            state.requests.clear()
            return JSONResponse({"cleared": cleared})
        return JSONResponse(list(state.requests))

    async def health(request: Request) -> Response:
        return JSONResponse(
            {"status": "ok", "stand_in": stand_in, "responder": type(responder).__name__}
        )

    async def http_error(request: Request, exc: Exception) -> Response:
        # Unknown paths and wrong methods answer in the API's error shape, not Starlette's text.
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        return _error_response(request, status, f"{request.method} {request.url.path}: {exc}")

    app = Starlette(
        routes=[
            Route("/v1/messages", create_message, methods=["POST"]),
            Route("/v1/messages/count_tokens", count_tokens_endpoint, methods=["POST"]),
            Route("/_standin/faults", faults_endpoint, methods=["GET", "POST", "DELETE"]),
            Route("/_standin/requests", requests_endpoint, methods=["GET", "DELETE"]),
            Route("/_standin/health", health, methods=["GET"]),
        ],
        middleware=[Middleware(_StandInHeadersMiddleware, stand_in=stand_in)],
        exception_handlers={404: http_error, 405: http_error},
    )
    app.state.standin = state
    app.state.responder = responder
    return app


# --------------------------------------------------------------------------- process


class _AnnouncingServer(uvicorn.Server):
    """A uvicorn server that prints its address once it is accepting connections."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.should_exit or not getattr(self, "servers", None):
            return
        bound = self.servers[0].sockets[0].getsockname()
        host, port = bound[0], bound[1]
        shown = f"[{host}]" if ":" in host else host
        # The one line on stdout; parents wait for it, so flush at once.
        print(f"listening on http://{shown}:{port}", flush=True)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_parser() -> argparse.ArgumentParser:
    """The CLI of ``python -m sunset_dev.messages_server``."""
    parser = argparse.ArgumentParser(
        prog="python -m sunset_dev.messages_server",
        description=(
            "Run Sunset's Messages-compatible HTTP server: a deterministic stand-in for the "
            "Anthropic Messages API, for tests and demos. It is NOT a real model: replies come "
            "from a fixed phrase bank, the model field says 'sunset-stand-in (not a real "
            "model; ...)', and every response has the header 'x-sunset-stand-in: true'. "
            "Point the anthropic SDK at it with base_url=http://HOST:PORT (no /v1). "
            "Faults can be queued over HTTP at /_standin/faults; requests are logged at "
            "/_standin/requests (credentials are never logged)."
        ),
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default: 127.0.0.1; only loopback is intended)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=0,
        help="port to bind (default: 0, any free port; the chosen one is printed)",
    )
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=["critical", "error", "warning", "info", "debug"],
        help="uvicorn log level, on stderr (default: warning)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Serve a :class:`StandInResponder` until SIGINT/SIGTERM; prints ``listening on URL``."""
    args = build_parser().parse_args(argv)
    if not _is_loopback(args.host):
        print(
            f"warning: binding {args.host} exposes the stand-in beyond this machine",
            file=sys.stderr,
        )
    serve(create_app(StandInResponder()), host=args.host, port=args.port, log_level=args.log_level)
    return 0


def serve(app: Starlette, *, host: str, port: int, log_level: str = "warning") -> None:
    """Run ``app`` until SIGINT/SIGTERM; prints ``listening on URL`` once it accepts requests."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=log_level in ("info", "debug"),
        lifespan="off",
        # Open SSE streams must not hold up a test's teardown for long.
        timeout_graceful_shutdown=2,
    )
    _AnnouncingServer(config).run()


if __name__ == "__main__":
    raise SystemExit(main())
