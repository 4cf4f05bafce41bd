"""Real HTTP servers on 127.0.0.1 for the tests: a webhook receiver and a serving gateway.

Each runs ``http.server.ThreadingHTTPServer`` on a real socket in a background thread of
the test process, so it outlives any subprocess a test kills.
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
import json
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sunset.notify import webhook


def copied_verify_function() -> Callable[..., bool]:
    """``verify_signature`` as a receiver would copy it: its source alone, run with nothing
    but the three standard-library modules it names (proves it is self-contained)."""
    namespace: dict[str, Any] = {}
    source = textwrap.dedent(inspect.getsource(webhook.verify_signature))
    exec(source, {"hashlib": hashlib, "hmac": hmac, "time": time}, namespace)
    return namespace["verify_signature"]  # type: ignore[no-any-return]


@dataclass
class ReceivedHook:
    path: str
    delivery: str
    verified: bool
    status: int
    payload: dict[str, Any]


@dataclass
class WebhookReceiver:
    """Verifies every POST's signature; answers 401 if it fails, else by plan, else 200.

    ``plan`` maps a path to the statuses its next requests get, in order.
    """

    secret: bytes
    plan: dict[str, list[int]] = field(default_factory=dict)
    log: list[ReceivedHook] = field(default_factory=list)
    url: str = ""

    def accepted(self) -> list[ReceivedHook]:
        return [hook for hook in self.log if hook.status == 200]


@dataclass
class GatewayServer:
    """A serving gateway: ``PUT``/``GET``/``DELETE /models/{id}`` with a bearer token.

    With ``lagging=True`` a GET answers the route as it was before the latest PUT, like
    a gateway whose change has not reached the replica that answers.
    """

    token: str
    routes: dict[str, list[dict[str, Any] | None]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    lagging: bool = False
    url: str = ""

    def current(self, model_id: str) -> dict[str, Any] | None:
        return (self.routes.get(model_id) or [None])[-1]


@contextmanager
def webhook_receiver(
    secret: bytes, plan: dict[str, list[int]] | None = None
) -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(secret, plan or {})
    verify = copied_verify_function()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            verified = verify(
                receiver.secret,
                self.headers.get("Sunset-Timestamp", ""),
                body,
                self.headers.get("Sunset-Signature", ""),
            )
            with lock:
                planned = receiver.plan.get(self.path, [])
                status = 401 if not verified else (planned.pop(0) if planned else 200)
                receiver.log.append(
                    ReceivedHook(
                        self.path,
                        self.headers.get("Sunset-Delivery", ""),
                        verified,
                        status,
                        json.loads(body),
                    )
                )
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    with _serving(Handler) as url:
        receiver.url = url
        yield receiver


@contextmanager
def gateway_server(token: str, *, lagging: bool = False) -> Iterator[GatewayServer]:
    gateway = GatewayServer(token, lagging=lagging)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def _model(self) -> str | None:
            if self.headers.get("Authorization") != f"Bearer {gateway.token}":
                self._answer(401)
                return None
            return self.path.removeprefix("/models/")

        def do_GET(self) -> None:  # noqa: N802
            model_id = self._model()
            if model_id is None:
                return
            with lock:
                gateway.requests.append(("GET", model_id))
                history = gateway.routes.get(model_id, [])
                shown = (
                    history[-2]
                    if gateway.lagging and len(history) > 1
                    else gateway.current(model_id)
                )
            if shown is None:
                self._answer(404)
            else:
                self._answer(200, shown)

        def do_PUT(self) -> None:  # noqa: N802
            model_id = self._model()
            if model_id is None:
                return
            route = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            with lock:
                gateway.requests.append(("PUT", model_id))
                gateway.routes.setdefault(model_id, []).append(route)
            self._answer(200, route)

        def do_DELETE(self) -> None:  # noqa: N802
            model_id = self._model()
            if model_id is None:
                return
            with lock:
                gateway.requests.append(("DELETE", model_id))
                gateway.routes.setdefault(model_id, []).append(None)
            self._answer(204)

        def _answer(self, status: int, body: dict[str, Any] | None = None) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    with _serving(Handler) as url:
        gateway.url = url
        yield gateway


@contextmanager
def _serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="http-receiver", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
