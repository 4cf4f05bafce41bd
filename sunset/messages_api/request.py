"""A ``POST /v1/messages`` (or ``count_tokens``) body: validated at the level the real API
does, and turned into the :class:`MessagesRequest` a responder sees."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sunset.messages_api.tokens import count_tokens


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
