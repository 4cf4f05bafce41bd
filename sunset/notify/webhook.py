"""The webhook channel: a JSON POST signed with HMAC-SHA256, that receivers can verify.

Every request carries three headers:

    Sunset-Timestamp: 1767225600                 seconds since the epoch, when it was signed
    Sunset-Signature: v1=<hex>                   HMAC-SHA256(secret, timestamp + "." + body)
    Sunset-Delivery:  <id>                       the same id however often it is attempted

A receiver recomputes the signature over the raw body bytes exactly as received, compares
it in constant time, and refuses timestamps too far from its own clock (replays).
``verify_signature`` below needs only the standard library: copy it into a receiver.

The receiver's contract: ``Sunset-Delivery`` is an idempotency key. A receiver acts on
each id once, and answers a request whose id it already accepted with a 2xx again,
doing nothing more. Sunset relies on it: a notice whose request was cut short after it
began to leave (the link broke, or Sunset was killed) may have arrived, and is sent
again, with the same id and body (a new timestamp and signature), until a 2xx settles it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

from sunset.errors import DeliveryInDoubt, DeliveryRejected, TransientError

TIMESTAMP_HEADER = "Sunset-Timestamp"
SIGNATURE_HEADER = "Sunset-Signature"
DELIVERY_HEADER = "Sunset-Delivery"


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The ``Sunset-Signature`` header value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify_signature(
    secret: bytes,
    timestamp: str,
    body: bytes,
    signature: str,
    *,
    tolerance_s: int = 300,
    now: float | None = None,
) -> bool:
    """True when ``signature`` (a ``Sunset-Signature`` header) signs ``timestamp.body``.

    Self-contained (hashlib, hmac, time), so a receiver can copy it. ``signature`` may
    hold several comma-separated ``v1=`` values, as during a change of secret.
    """
    try:
        signed_at = int(timestamp)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - signed_at) > tolerance_s:
        return False
    expected = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    for part in signature.split(","):
        scheme, _, value = part.strip().partition("=")
        if scheme == "v1" and hmac.compare_digest(value, expected.hexdigest()):
            return True
    return False


class WebhookSender:
    """POSTs signed JSON notices; one connection pool for the whole run."""

    def __init__(self, secret: SecretStr, *, timeout_s: float = 10.0) -> None:
        self._secret = secret
        self._client = httpx.Client(timeout=timeout_s, follow_redirects=False)

    def post(
        self,
        url: str,
        payload: dict[str, Any],
        *,
        delivery: str,
        handover: Callable[[], None] = lambda: None,
    ) -> None:
        """Send ``payload`` to ``url``; ``handover`` runs when the request starts to leave.

        Raises:
            TransientError: the receiver could not be reached, or answered 408, 429 or 5xx.
            DeliveryRejected: it answered with any other status outside 2xx.
            DeliveryInDoubt: the link broke after the request had started to leave.
        """
        body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8")
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "sunset-notify/1",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self._secret.get_secret_value().encode(), timestamp, body),
            DELIVERY_HEADER: delivery,
        }
        sent = False

        def trace(event: str, info: dict[str, Any]) -> None:
            nonlocal sent
            if event.endswith("send_request_headers.started") and not sent:
                sent = True
                handover()

        where = _origin(url)  # the path of a webhook URL often holds a token: never shown
        try:
            response = self._client.post(
                url, content=body, headers=headers, extensions={"trace": trace}
            )
        except httpx.TransportError as exc:
            if sent:
                raise DeliveryInDoubt(
                    f"the link to {where} broke after the request was sent ({type(exc).__name__})"
                ) from None
            raise TransientError(f"{where} could not be reached ({type(exc).__name__})") from None
        status = response.status_code
        if 200 <= status < 300:
            return
        if status in (408, 429) or status >= 500:
            raise TransientError(f"{where} answered {status}; it will be tried again")
        raise DeliveryRejected(f"{where} answered {status}")

    def close(self) -> None:
        self._client.close()


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"
