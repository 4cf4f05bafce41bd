"""The Messages API as the interview needs it: one request in, the raw reply out."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

import anthropic
from pydantic import SecretStr


@dataclass(frozen=True)
class RawReply:
    """A Messages API response exactly as it came over the wire."""

    body: str
    request_id: str | None
    retries: int
    latency_s: float


class MessagesClient(Protocol):
    sdk_version: str

    def create(self, request: dict[str, Any]) -> RawReply: ...


class AnthropicMessages:
    """The anthropic SDK; it retries 408/409/429/5xx itself, a few times."""

    sdk_version = f"anthropic-python {anthropic.__version__}"

    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: SecretStr | None,
        max_retries: int = 2,
        timeout_s: float = 120.0,
    ) -> None:
        self._client = anthropic.Anthropic(
            base_url=base_url,
            api_key=api_key.get_secret_value() if api_key else None,
            max_retries=max_retries,
            timeout=timeout_s,
        )

    def create(self, request: dict[str, Any]) -> RawReply:
        started = time.monotonic()
        response = self._client.messages.with_raw_response.create(**request)
        body = response.text()
        return RawReply(
            body=body,
            request_id=response.request_id,
            retries=response.retries_taken,
            latency_s=time.monotonic() - started,
        )
