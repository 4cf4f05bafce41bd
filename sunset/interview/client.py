"""The Messages API as the interview needs it: one request in, the raw reply out.

The reply's body is kept as the bytes that came over the wire; :func:`decode_body` reads
it as far as it goes (text, then the JSON message) and says what stopped it, so an answer
that is not valid UTF-8 or not valid Unicode is still recorded instead of failing its step.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import anthropic
from anthropic import APIRequest, APIResponse, CallNext, Middleware
from anthropic.types import MessageParam
from pydantic import SecretStr

from sunset.errors import DeadlineExceeded, InputError, TransientError, is_transient

_RETRIED_STATUSES = frozenset({408, 409, 429})

#: How long the token count that proves the key and the model may take: it generates nothing.
CHECK_TIMEOUT_S = 30.0
#: What the token count counts; any text would do.
_CHECK_MESSAGES: list[MessageParam] = [
    {"role": "user", "content": "Sunset preflight: is this model served here?"}
]


@dataclass(frozen=True)
class RawReply:
    """A Messages API response exactly as it came over the wire, and the request behind it."""

    #: The response body's bytes, exactly as received.
    body: bytes
    request_id: str | None
    retries: int
    latency_s: float
    #: SHA-256 of the exact request body bytes the SDK sent.
    request_sha256: str
    #: The ``anthropic-version`` header the SDK sent.
    api_version: str | None

    def decoded(self) -> DecodedBody:
        """The body read as far as it goes (:func:`decode_body`)."""
        return decode_body(self.body)


@dataclass(frozen=True)
class DecodedBody:
    """A response body read as far as it goes: as text, then as a message."""

    #: The body as text, exactly its bytes, when they are UTF-8 text without a NUL.
    text: str | None
    #: The JSON message, when the text is a JSON object whose strings are all Unicode.
    message: dict[str, Any] | None
    #: Why there is no message: one sentence, saying where in the body it went wrong.
    problem: str | None

    @property
    def answer_text(self) -> str:
        """The text blocks of the message joined; empty when there is no message."""
        return message_text(self.message or {})


def decode_body(raw: bytes) -> DecodedBody:
    """Read a response body as UTF-8 text, then as a JSON message of Unicode strings."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = raw[exc.start : exc.end].hex(" ")
        return DecodedBody(
            None,
            None,
            f"the body is not valid UTF-8: {exc.reason} (byte {bad} at offset {exc.start})",
        )
    if "\x00" in text:
        # Valid UTF-8, but no text column (PostgreSQL's) can hold it.
        offset = len(text[: text.index("\x00")].encode("utf-8"))
        return DecodedBody(None, None, f"the body holds a NUL byte at offset {offset}")
    try:
        message = json.loads(text)
    except json.JSONDecodeError as exc:
        return DecodedBody(
            text, None, f"the body is not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        )
    for string in _strings(message):
        # An escape such as "\ud800" is valid JSON but names no Unicode character.
        try:
            string.encode("utf-8")
        except UnicodeEncodeError as exc:
            escape = f"\\u{ord(string[exc.start]):04x}"
            problem = f"the JSON escapes a lone surrogate ({escape}), which is no Unicode character"
            return DecodedBody(text, None, problem)
        if "\x00" in string:
            return DecodedBody(text, None, "the JSON escapes a NUL character (\\u0000)")
    if not isinstance(message, dict):
        return DecodedBody(text, None, "the body is JSON but not a message object")
    return DecodedBody(text, message, None)


def _strings(value: Any) -> Iterator[str]:
    """Every string in a parsed JSON value, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def message_text(message: dict[str, Any]) -> str:
    """The text blocks of a Messages API message, joined."""
    content = message.get("content")
    blocks = content if isinstance(content, list) else []
    return "".join(
        str(block.get("text", ""))
        for block in blocks
        if isinstance(block, dict) and block.get("type") == "text"
    )


@dataclass(frozen=True)
class Deadline:
    """A wall-clock moment (``time.time()`` seconds) that the interview must not run past."""

    at: float
    seconds: float
    setting: str = "SUNSET_INTERVIEW_DEADLINE_SECONDS"

    @classmethod
    def after(cls, seconds: float, *, start: float | None = None) -> Deadline:
        """The deadline ``seconds`` after ``start`` (default: now)."""
        return cls(at=(time.time() if start is None else start) + seconds, seconds=seconds)

    def remaining(self) -> float:
        return self.at - time.time()

    def check(self, progress: str) -> None:
        """Raise DeadlineExceeded, saying what is done (``progress``), once the time is up."""
        if self.remaining() <= 0:
            raise self.exceeded(progress)

    def exceeded(self, progress: str) -> DeadlineExceeded:
        return DeadlineExceeded(
            f"The interview did not finish within its deadline of {self.seconds:g} s "
            f"({self.setting}); {progress}. Every answer received is recorded: run the same "
            "command again to resume with the next question, or raise the deadline."
        )


class MessagesClient(Protocol):
    sdk_version: str

    def create(self, request: dict[str, Any], *, deadline: Deadline) -> RawReply: ...

    def check_model(self, model: str, *, role: str, fix: str) -> None: ...


class AnthropicMessages:
    """The anthropic SDK; it retries 408/409/429/5xx itself, ``max_retries`` times."""

    sdk_version = f"anthropic-python {anthropic.__version__}"

    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: SecretStr | None,
        max_retries: int = 2,
        timeout_s: float = 300.0,
    ) -> None:
        self._max_retries = max_retries
        self._timeout_s = timeout_s
        self._has_key = api_key is not None and bool(api_key.get_secret_value())
        self._client = anthropic.Anthropic(
            base_url=base_url,
            api_key=api_key.get_secret_value() if api_key else None,
            max_retries=max_retries,
            timeout=timeout_s,
        )

    def create(self, request: dict[str, Any], *, deadline: Deadline) -> RawReply:
        """Send one Messages request, with the SDK's retries, and return the reply verbatim.

        Raises:
            DeadlineExceeded: the deadline passed, or a Retry-After would wait past it.
            anthropic.APIError: the API refused, or the SDK used up its retries.
        """
        guard = _DeadlineGuard(deadline, self._timeout_s, self._max_retries)
        started = time.monotonic()
        response = self._client.with_middleware(guard).messages.with_raw_response.create(**request)
        sent = response.http_request
        return RawReply(
            body=response.http_response.content,
            request_id=response.request_id,
            retries=response.retries_taken,
            latency_s=time.monotonic() - started,
            request_sha256=hashlib.sha256(sent.content).hexdigest(),
            api_version=sent.headers.get("anthropic-version"),
        )

    def check_model(self, model: str, *, role: str, fix: str) -> None:
        """Prove that the API takes the key and serves ``model``, with one token count
        (nothing generated, nothing billed), before a run tells anyone anything.

        Args:
            model: The model id the run will send.
            role: What the model is to the run, for the sentence: "the model being deprecated".
            fix: What to do when the API does not serve it, for the sentence.

        Raises:
            InputError: no key, a key refused (401, 403), a model not served (404), or any
                other refusal; retrying cannot help.
            TransientError: no answer, a 5xx, a 408/409/429; a later attempt may pass.
        """
        where = f"The Messages API at {str(self._client.base_url).rstrip('/')}"
        if not self._has_key:
            raise InputError(
                f"No API key is set for the Messages API, which {role} {model!r} is asked "
                "through; set SUNSET_ANTHROPIC_API_KEY (or ANTHROPIC_API_KEY) to your key, "
                "or, against `sunset ops up`'s stand-in, to the key it prints."
            )
        # The caller retries a failure that may pass, like a step; the SDK does not as well.
        once = self._client.with_options(max_retries=0, timeout=CHECK_TIMEOUT_S)
        try:
            once.messages.count_tokens(model=model, messages=_CHECK_MESSAGES)
        except anthropic.APIStatusError as exc:
            said = f"{exc.status_code} {_api_message(exc)}"
            if is_transient(exc):
                raise TransientError(
                    f"{where} answered {said}, which may pass; run again later, or check "
                    "SUNSET_MESSAGES_BASE_URL."
                ) from None
            if exc.status_code in (401, 403):
                raise InputError(
                    f"{where} refused the API key ({said}); set SUNSET_ANTHROPIC_API_KEY to a "
                    "key it accepts for this model."
                ) from None
            if exc.status_code == 404:
                raise InputError(
                    f"{where} does not serve {role} {model!r} ({said}); {fix}."
                ) from None
            raise InputError(
                f"{where} refused a token count for {model!r} ({said}); check "
                "SUNSET_MESSAGES_BASE_URL."
            ) from None
        except anthropic.APIConnectionError as exc:  # timeouts included
            raise TransientError(
                f"{where} could not be reached ({type(exc).__name__}); check "
                "SUNSET_MESSAGES_BASE_URL and that the API is up."
            ) from None


def _api_message(exc: anthropic.APIStatusError) -> str:
    """The API's own words for an error: its JSON error message, else the SDK's."""
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("message", exc.message))
    return exc.message


class _DeadlineGuard(Middleware):
    """Keeps every SDK attempt, and every wait between attempts, inside the deadline.

    The SDK obeys Retry-After with no cap, and its timeout bounds one attempt only; so each
    attempt gets at most the time that is left, and a retryable answer that asks to wait
    past the deadline ends the call at once instead of sleeping. The SDK's own backoff
    (at most 8 s) can still pass the deadline; the next attempt is then refused.
    """

    def __init__(self, deadline: Deadline, timeout_s: float, max_retries: int) -> None:
        self._deadline = deadline
        self._timeout_s = timeout_s
        self._max_retries = max_retries

    def handle(self, request: APIRequest, call_next: CallNext) -> APIResponse[Any]:
        remaining = self._deadline.remaining()
        if remaining <= 0:
            raise self._deadline.exceeded(
                f"it passed after {request.retries_taken} failed attempt(s) at one answer"
            )
        response = call_next(request.copy(timeout=min(self._timeout_s, remaining)))
        status = response.status_code
        will_retry = request.retries_taken < self._max_retries and (
            status in _RETRIED_STATUSES or status >= 500
        )
        wait = _retry_after_seconds(response.headers)
        if will_retry and wait is not None and wait >= self._deadline.remaining():
            raise self._deadline.exceeded(
                f"the API answered {status} and asked to wait {wait:g} s before retrying"
            )
        return response


def _retry_after_seconds(headers: Any) -> float | None:
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            return float(headers.get(name)) * scale
        except (TypeError, ValueError):
            continue
    return None
