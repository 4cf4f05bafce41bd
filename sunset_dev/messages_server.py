"""Sunset's stand-in for the Anthropic Messages API: the product's app, a deterministic
responder, a fault queue and a request log.

Tests and the demo point the real ``anthropic`` SDK at this server (``base_url`` without
``/v1``) so that the whole interview path -- HTTP, JSON, Server-Sent Events, retries,
request ids -- runs for real, offline and reproducibly. It is *not* a model: every
response says so in its ``model`` field and in the ``x-sunset-stand-in: true`` header, and
its ids read ``req_standin_...`` / ``msg_standin_...``.

The wire format is the product's own (``sunset.messages_api``, which ``sunset
model-server`` serves a real model with); this module adds what only a stand-in has:

Endpoints (beside ``POST /v1/messages`` and ``POST /v1/messages/count_tokens``)
    ``GET|POST|DELETE /_standin/faults``  inspect, append to, or clear the fault queue
                                        (see ``sunset_dev.faults``).
    ``GET|DELETE /_standin/requests``   read or clear the log of ``POST /v1/messages``: each
                                        entry has the request's headers (no credentials),
                                        JSON and ``body_sha256``, the fault applied, the
                                        status and the exact body sent
                                        (``response_body_base64``; ``response_body`` too,
                                        as text, where it is UTF-8).
    ``GET|POST|DELETE /_standin/replies`` inspect, append to, or clear the scripted replies:
                                        ``{"when": TEXT, "text": REPLY}`` answers REPLY to a
                                        request whose last user message contains TEXT
                                        (``sunset_dev.standin_responder.ScriptedReplies``).
    ``GET|PUT|DELETE /_standin/models`` read, set (a JSON list of ids) or lift the list of
                                        models served; by default every model id is.
    ``GET /_standin/health``            readiness probe.

Like the real API, it answers 401 (``authentication_error``) to a request without a key
(``x-api-key``, or ``Authorization: Bearer``) or, when started with ``--api-key KEY``,
with another key; and 404
(``not_found_error``) to a request for a model it does not serve, token counts included.
So a wrong key or an unknown model id fails Sunset's preflight here as it would there.

This module must not import prefect: it runs as its own small process.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import hashlib
import ipaddress
import sys
import time
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sunset.messages_api.app import MessagesEndpoint, create_app, read_json
from sunset.messages_api.errors import error_response
from sunset.messages_api.replies import SseEvent
from sunset.messages_api.request import MessagesRequest
from sunset.messages_api.responder import Outcome, Responder
from sunset.messages_api.server import serve
from sunset_dev.faults import FaultValidationError, fault_response, interrupted, validate_fault
from sunset_dev.standin_responder import ScriptedReplies, StandInResponder

#: Header put on every response, so no log or report can mistake this server for the real API.
STAND_IN_HEADER = "x-sunset-stand-in"

#: Goes into every id the stand-in makes: ``req_standin_...``, ``msg_standin_...``.
STAND_IN_SERVER_KIND = "standin"

#: Request headers that carry credentials; they are never written to the request log.
_SECRET_HEADERS = frozenset({"authorization", "x-api-key", "proxy-authorization", "cookie"})

#: The log is for tests and demos; a cap keeps a long-running demo from growing without bound.
DEFAULT_REQUEST_LOG_LIMIT = 10_000


class StandInControl:
    """Fault queue and request log of one stand-in app.

    Only touched from the event loop thread (responders run in worker threads but never see
    this), so plain containers are enough and no lock is needed.
    """

    def __init__(
        self, request_log_limit: int, api_key: str | None, models: Sequence[str] | None
    ) -> None:
        self.faults: deque[dict[str, Any]] = deque()
        self.requests: deque[dict[str, Any]] = deque(maxlen=request_log_limit)
        self.request_count = 0
        self.api_key = api_key
        self.default_models = None if models is None else frozenset(models)
        self.models = self.default_models  # None: every model id is served

    def refusal(self, request: Request, model: str) -> Response | None:
        """The real API's answer to a request it would not serve: 401 for a missing or
        wrong key, 404 for a model it does not serve; None when it would serve it."""
        # The SDK sends the key as x-api-key or, in newer versions, as a bearer token.
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        key = request.headers.get("x-api-key") or bearer
        if not key:
            return error_response(request, 401, "x-api-key header is required")
        if self.api_key is not None and key != self.api_key:
            return error_response(request, 401, "invalid x-api-key")
        if self.models is not None and model not in self.models:
            return error_response(request, 404, f"model: {model}")
        return None

    def pop_fault(self) -> dict[str, Any] | None:
        """The next queued fault, or None when the queue is empty."""
        return self.faults.popleft() if self.faults else None

    async def log_request(
        self, request: Request, body: Any, fault: dict[str, Any] | None
    ) -> dict[str, Any]:
        """Append an entry for ``request`` to the log; the caller fills in what was sent."""
        self.request_count += 1
        received = time.time()
        entry: dict[str, Any] = {
            "seq": self.request_count,
            "request_id": request.state.request_id,
            "method": request.method,
            "path": request.url.path,
            "received_at": datetime.fromtimestamp(received, UTC).isoformat(),
            "received_unix": received,
            "headers": {
                k: v for k, v in request.headers.items() if k.lower() not in _SECRET_HEADERS
            },
            "json": body,
            "body_sha256": hashlib.sha256(await request.body()).hexdigest(),
            "stream": isinstance(body, dict) and body.get("stream") is True,
            "fault": fault,
            "status": None,  # filled in once answered; still None while a delayed request waits
            # The exact body sent, once sent (not kept for SSE streams): as base64, and as
            # text where it is UTF-8.
            "response_body": None,
            "response_body_base64": None,
        }
        self.requests.append(entry)
        return entry


def _fault_of(request: Request) -> dict[str, Any]:
    fault: dict[str, Any] = request.state.fault
    return fault


class FaultInjectingEndpoint(MessagesEndpoint):
    """``POST /v1/messages`` that pops one queued fault per request, applies it, and logs."""

    def __init__(self, responder: Responder, server_kind: str, control: StandInControl) -> None:
        super().__init__(responder, server_kind)
        self.control = control

    async def create_message(self, request: Request) -> Response:
        """Answer one request with the next fault applied, and log what was asked and sent."""
        body, parse_error = await read_json(request)
        # Every request consumes a fault, valid or not: a real outage does not check the body.
        fault = self.control.pop_fault()
        request.state.fault = fault or {}
        entry = await self.control.log_request(request, body, fault)
        response = await self._answer_with_fault(request, body, parse_error)
        entry["status"] = response.status_code
        if not isinstance(response, StreamingResponse):
            sent = bytes(response.body)
            entry["response_body_base64"] = base64.b64encode(sent).decode("ascii")
            try:
                entry["response_body"] = sent.decode("utf-8")
            except UnicodeDecodeError:
                pass  # stays None: only the base64 can carry bytes that are not UTF-8
        return response

    async def _answer_with_fault(
        self, request: Request, body: Any, parse_error: str | None
    ) -> Response:
        fault = _fault_of(request)
        if fault.get("delay"):
            await asyncio.sleep(float(fault["delay"]))
        if "status" in fault:
            return fault_response(request, fault, int(fault["status"]))
        if "body_base64" in fault:
            return Response(base64.b64decode(fault["body_base64"]), media_type="application/json")
        return await self.answer(request, body, parse_error)

    def refuse(self, request: Request, parsed: MessagesRequest) -> Response | None:
        """401 or 404 where the real API would answer so (see ``StandInControl.refusal``)."""
        return self.control.refusal(request, parsed.model)

    async def reply(self, request: Request, parsed: MessagesRequest) -> Response:
        """Reply, unless a mid-stream fault meets a plain request: that one gets a 529."""
        fault = _fault_of(request)
        if fault.get("midstream_error") and not parsed.stream:
            # A plain request cannot fail half-way; the nearest real behaviour is a 529.
            return fault_response(request, fault, 529)
        return await super().reply(request, parsed)

    def stream_events(self, request: Request, message_id: str, outcome: Outcome) -> list[SseEvent]:
        """The stream's events, cut half-way by an ``error`` event under a mid-stream fault."""
        events = super().stream_events(request, message_id, outcome)
        if not _fault_of(request).get("midstream_error"):
            return events
        return interrupted(events, request.state.request_id)


class _StandInHeaderMiddleware:
    """Put the stand-in header on every response.

    A pure ASGI middleware (not BaseHTTPMiddleware) so streamed bodies pass through untouched.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[STAND_IN_HEADER] = "true"
            await send(message)

        await self.app(scope, receive, send_with_header)


def _control_routes(control: StandInControl, responder: ScriptedReplies) -> list[Route]:
    """The ``/_standin/...`` endpoints: the fault queue, the request log, the scripted
    replies, readiness."""

    async def faults_endpoint(request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse(list(control.faults))
        if request.method == "DELETE":
            cleared = len(control.faults)
            control.faults.clear()
            return JSONResponse({"cleared": cleared})
        body, parse_error = await read_json(request)
        if parse_error is not None:
            return error_response(request, 400, parse_error)
        if not isinstance(body, list):
            return error_response(request, 400, "Expected a JSON list of faults")
        try:
            faults = [validate_fault(fault) for fault in body]
        except FaultValidationError as exc:
            return error_response(request, 400, str(exc))
        control.faults.extend(faults)
        return JSONResponse({"queued": len(faults), "pending": len(control.faults)})

    async def requests_endpoint(request: Request) -> Response:
        if request.method == "DELETE":
            cleared = len(control.requests)
            control.requests.clear()
            return JSONResponse({"cleared": cleared})
        return JSONResponse(list(control.requests))

    async def replies_endpoint(request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse(list(responder.script))
        if request.method == "DELETE":
            cleared = len(responder.script)
            responder.script = ()
            return JSONResponse({"cleared": cleared})
        body, parse_error = await read_json(request)
        if parse_error is not None:
            return error_response(request, 400, parse_error)
        if not isinstance(body, list) or not all(_is_scripted_reply(entry) for entry in body):
            return error_response(
                request, 400, 'Expected a JSON list of {"when": TEXT, "text": REPLY} objects'
            )
        responder.script = (*responder.script, *body)
        return JSONResponse({"queued": len(body), "scripted": len(responder.script)})

    async def models_endpoint(request: Request) -> Response:
        if request.method == "DELETE":
            control.models = control.default_models
        elif request.method == "PUT":
            body, parse_error = await read_json(request)
            if parse_error is not None:
                return error_response(request, 400, parse_error)
            if not isinstance(body, list) or not all(isinstance(m, str) and m for m in body):
                return error_response(request, 400, "Expected a JSON list of model ids")
            control.models = frozenset(body)
        served = None if control.models is None else sorted(control.models)
        return JSONResponse({"models": served})

    async def health(request: Request) -> Response:
        return JSONResponse(
            {"status": "ok", "stand_in": True, "responder": type(responder.fallback).__name__}
        )

    return [
        Route("/_standin/faults", faults_endpoint, methods=["GET", "POST", "DELETE"]),
        Route("/_standin/requests", requests_endpoint, methods=["GET", "DELETE"]),
        Route("/_standin/replies", replies_endpoint, methods=["GET", "POST", "DELETE"]),
        Route("/_standin/models", models_endpoint, methods=["GET", "PUT", "DELETE"]),
        Route("/_standin/health", health, methods=["GET"]),
    ]


def _is_scripted_reply(entry: Any) -> bool:
    return (
        isinstance(entry, dict)
        and set(entry) == {"when", "text"}
        and all(isinstance(entry[key], str) for key in ("when", "text"))
        and bool(entry["when"])
    )


def create_stand_in_app(
    responder: Responder,
    *,
    request_log_limit: int = DEFAULT_REQUEST_LOG_LIMIT,
    api_key: str | None = None,
    models: Sequence[str] | None = None,
) -> Starlette:
    """The product's Messages app around ``responder``, with the stand-in's additions.

    Each app has its own fault queue, request log and scripted replies, so tests may run
    several side by side. ``api_key``: the only key accepted (None: any key, but one must
    be sent); ``models``: the model ids served (None: every id, until ``/_standin/models``
    says otherwise).
    """
    control = StandInControl(request_log_limit, api_key, models)
    scripted = ScriptedReplies(responder)
    return create_app(
        scripted,
        server_kind=STAND_IN_SERVER_KIND,
        endpoint=functools.partial(FaultInjectingEndpoint, control=control),
        routes=_control_routes(control, scripted),
        middleware=[Middleware(_StandInHeaderMiddleware)],
    )


# --------------------------------------------------------------------------- CLI


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
        "--api-key",
        default=None,
        help="the only API key accepted, as x-api-key or a bearer token (default: any key; "
        "a request without one is refused with 401 either way)",
    )
    parser.add_argument(
        "--model",
        action="append",
        dest="models",
        default=None,
        metavar="MODEL_ID",
        help="a model id served; repeat for more (default: every id; others get 404)",
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
    app = create_stand_in_app(StandInResponder(), api_key=args.api_key, models=args.models)
    serve(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
