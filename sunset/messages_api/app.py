"""The HTTP app that serves a :class:`Responder` in the Messages wire format.

Endpoints
    ``POST /v1/messages``               plain JSON, or SSE when ``"stream": true``.
    ``POST /v1/messages/count_tokens``  ``{"input_tokens": N}``.

Every response carries a fresh ``request-id`` header; unknown paths and wrong methods
answer in the API's error shape. A server built on this app (the development stand-in)
adds its own routes and middleware and may replace the ``POST /v1/messages`` endpoint with
a subclass of :class:`MessagesEndpoint`; this module knows nothing of what they do.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sunset.messages_api.errors import error_response
from sunset.messages_api.replies import SseEvent, message_json, sse_response, stream_events
from sunset.messages_api.request import (
    MessagesRequest,
    RequestValidationError,
    parse_messages_request,
)
from sunset.messages_api.responder import Outcome, Responder, finish_reply

log = logging.getLogger(__name__)

#: What goes into the ids of a server that serves a real model: ``req_local_...``.
LOCAL_SERVER_KIND = "local"


def new_id(prefix: str, server_kind: str) -> str:
    """A fresh id such as ``msg_local_<24 hex>``: ids say which kind of server made them."""
    return f"{prefix}_{server_kind}_{uuid.uuid4().hex[:24]}"


async def read_json(request: Request) -> tuple[Any, str | None]:
    """Return ``(body, None)`` or ``(None, error message)`` for a non-JSON body."""
    raw = await request.body()
    try:
        return json.loads(raw), None
    except json.JSONDecodeError as exc:
        return None, f"Request body is not valid JSON: {exc.msg}"
    except UnicodeDecodeError:
        return None, "Request body is not valid UTF-8"


class _RequestIdMiddleware:
    """Give every response a fresh ``request-id`` header.

    A pure ASGI middleware (not BaseHTTPMiddleware) so streamed bodies pass through untouched.
    The id is also put in ``scope["state"]`` so handlers can log it and echo it in error bodies.
    """

    def __init__(self, app: ASGIApp, server_kind: str) -> None:
        self.app = app
        self.server_kind = server_kind

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_id("req", self.server_kind)
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_request_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["request-id"] = request_id
            await send(message)

        await self.app(scope, receive, send_with_request_id)


class MessagesEndpoint:
    """``POST /v1/messages``: validate the body, ask the responder, answer as JSON or SSE.

    Each step is a method, so a server built on this app can change one step by
    overriding it: :meth:`create_message` is the whole exchange, :meth:`answer` starts
    from the read body, :meth:`reply` from a valid request, :meth:`stream_events` gives
    the events of a streamed reply.
    """

    def __init__(self, responder: Responder, server_kind: str) -> None:
        self.responder = responder
        self.server_kind = server_kind

    async def create_message(self, request: Request) -> Response:
        """Answer one ``POST /v1/messages``."""
        body, parse_error = await read_json(request)
        return await self.answer(request, body, parse_error)

    async def answer(self, request: Request, body: Any, parse_error: str | None) -> Response:
        """Answer a read body: 400 when it is not a valid request, else the reply."""
        if parse_error is not None:
            return error_response(request, 400, parse_error)
        try:
            parsed = parse_messages_request(body)
        except RequestValidationError as exc:
            return error_response(request, 400, str(exc))
        refused = self.refuse(request, parsed)
        return refused if refused is not None else await self.reply(request, parsed)

    async def count_tokens(self, request: Request) -> Response:
        """Answer one ``POST /v1/messages/count_tokens``: ``{"input_tokens": N}``."""
        body, parse_error = await read_json(request)
        if parse_error is not None:
            return error_response(request, 400, parse_error)
        try:
            parsed = parse_messages_request(body, require_max_tokens=False)
        except RequestValidationError as exc:
            return error_response(request, 400, str(exc))
        refused = self.refuse(request, parsed)
        if refused is not None:
            return refused
        return JSONResponse({"input_tokens": parsed.input_tokens()})

    def refuse(self, request: Request, parsed: MessagesRequest) -> Response | None:
        """The error answer to a valid request this server will not serve, or None: this
        app serves every model it is asked for."""
        return None

    async def reply(self, request: Request, parsed: MessagesRequest) -> Response:
        """Ask the responder (in a worker thread) and send its reply; 500 if it fails."""
        try:
            reply = await run_in_threadpool(self.responder.respond, parsed)
        except Exception:
            log.exception("responder failed")
            return error_response(request, 500, "The responder failed.")
        outcome = finish_reply(parsed, reply)
        message_id = new_id("msg", self.server_kind)
        if not parsed.stream:
            return JSONResponse(message_json(message_id, outcome))
        return sse_response(self.stream_events(request, message_id, outcome))

    def stream_events(self, request: Request, message_id: str, outcome: Outcome) -> list[SseEvent]:
        """The events of a streamed reply."""
        return stream_events(message_id, outcome)


async def _http_error(request: Request, exc: Exception) -> Response:
    # Unknown paths and wrong methods answer in the API's error shape, not Starlette's text.
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    return error_response(request, status, f"{request.method} {request.url.path}: {exc}")


def create_app(
    responder: Responder,
    *,
    server_kind: str = LOCAL_SERVER_KIND,
    endpoint: Callable[[Responder, str], MessagesEndpoint] = MessagesEndpoint,
    routes: Sequence[BaseRoute] = (),
    middleware: Sequence[Middleware] = (),
) -> Starlette:
    """Build the Messages-compatible app around ``responder``.

    Args:
        responder: generates the text of every reply.
        server_kind: goes into every request and message id (``req_<kind>_...``).
        endpoint: builds the ``POST /v1/messages`` endpoint from the responder and the kind.
        routes: more routes, served beside the API's own.
        middleware: more middleware, outside the one that adds ``request-id``.
    """
    messages = endpoint(responder, server_kind)
    return Starlette(
        routes=[
            Route("/v1/messages", messages.create_message, methods=["POST"]),
            Route("/v1/messages/count_tokens", messages.count_tokens, methods=["POST"]),
            *routes,
        ],
        middleware=[*middleware, Middleware(_RequestIdMiddleware, server_kind=server_kind)],
        exception_handlers={404: _http_error, 405: _http_error},
    )
