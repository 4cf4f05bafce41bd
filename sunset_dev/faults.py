"""The stand-in's faults: what a queued fault may say, and what it does to a response.

Faults (a JSON list POSTed to ``/_standin/faults``; each ``POST /v1/messages`` pops one)::

    {"status": 429, "retry_after": 0}   rate_limit_error (+ ``retry-after`` header)
    {"status": 529}                     overloaded_error
    {"status": 500}                     api_error
    {"delay": 2.5}                      sleep, then answer normally
    {"midstream_error": true}           stream a few deltas, then an SSE ``error`` event
                                        (a non-streaming request gets a 529 instead)
    {"body_base64": B64}                answer 200 with exactly these bytes as the body
                                        (``application/json``): a reply that is not valid
                                        UTF-8, or JSON that is not valid Unicode

``status`` may be any 400-599 code; ``retry_after`` and ``message`` may go with any
``status``; ``delay`` may be combined with any of the other kinds.
"""

from __future__ import annotations

import base64
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from sunset.messages_api.errors import error_body, error_response, error_type
from sunset.messages_api.replies import SseEvent

_ERROR_MESSAGES: dict[str, str] = {
    "rate_limit_error": "Stand-in injected fault: rate limited.",
    "overloaded_error": "Overloaded (stand-in injected fault).",
    "api_error": "Internal server error (stand-in injected fault).",
}
_MIDSTREAM_MESSAGE = "Overloaded (stand-in mid-stream fault)."


class FaultValidationError(ValueError):
    """A fault spec that the server does not understand."""


_FAULT_KEYS = frozenset(
    {"status", "retry_after", "delay", "midstream_error", "message", "body_base64"}
)
#: The fault keys that decide what the response is; a fault has at most one.
_ANSWER_KEYS = ("status", "midstream_error", "body_base64")


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
    if "body_base64" in fault:
        try:
            base64.b64decode(fault["body_base64"], validate=True)
        except (TypeError, ValueError) as exc:
            raise FaultValidationError("body_base64 must be a base64 string") from exc
    answers = [key for key in _ANSWER_KEYS if fault.get(key) not in (None, False)]
    if len(answers) > 1:
        raise FaultValidationError(f"a fault cannot have both {answers[0]} and {answers[1]}")
    if ("retry_after" in fault or "message" in fault) and status is None:
        raise FaultValidationError("retry_after and message only go with status")
    if not answers and "delay" not in fault:
        raise FaultValidationError("a fault needs status, delay, midstream_error or body_base64")
    return fault


def fault_response(request: Request, fault: dict[str, Any], status: int) -> JSONResponse:
    """The error response a fault gives with HTTP ``status``, ``retry-after`` if it asks."""
    message = fault.get("message") or _ERROR_MESSAGES.get(
        error_type(status), f"Stand-in injected fault: HTTP {status}."
    )
    headers: dict[str, str] = {}
    if "retry_after" in fault:
        seconds = fault["retry_after"]
        headers["retry-after"] = str(int(seconds)) if float(seconds).is_integer() else str(seconds)
    return error_response(request, status, message, headers)


def interrupted(events: list[SseEvent], request_id: str | None) -> list[SseEvent]:
    """A stream that fails half-way: its opening, the first half of its text deltas (at
    least one, so clients see a *partial* message fail), then an ``error`` event."""
    opening = [e for e in events if e[0] in ("message_start", "content_block_start", "ping")]
    deltas = [e for e in events if e[0] == "content_block_delta"]
    failure = ("error", error_body(529, _MIDSTREAM_MESSAGE, request_id))
    return [*opening, *deltas[: max(1, len(deltas) // 2)], failure]
