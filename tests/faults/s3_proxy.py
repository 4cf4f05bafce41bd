"""A fault-injecting HTTP proxy in front of an S3 endpoint.

Clients talk to the proxy as if it were the store (``endpoint_url=proxy.url``); the proxy
reads each request off the socket, forwards its raw bytes (SigV4 signatures stay valid:
the Host header and every signed header pass through unchanged) and relays the raw reply.
A seeded generator decides, request by request, whether to misbehave instead:

    internal_error  500 with an S3 ``InternalError`` XML body; the store never sees it
    slow_down       503 with an S3 ``SlowDown`` XML body; the store never sees it
    reset           the connection is reset (RST) before the request is forwarded
    stall           the request IS forwarded and applied, then the reply is held past the
                    client's read timeout and the connection closed: the client cannot
                    know that its write happened

``latency`` (seconds) delays every request before it is forwarded, to hold a client at a
known point; ``received`` lists every request's method and path, as the client sent them.
Each client connection carries one request (the reply says ``Connection: close``), so a
fault never leaks into the next request.
"""

from __future__ import annotations

import contextlib
import random
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from types import TracebackType
from urllib.parse import urlsplit

MODES = ("internal_error", "slow_down", "reset", "stall")
HEAD_LIMIT = 64 * 1024

_ERRORS = {
    "internal_error": (
        "500 Internal Server Error",
        "InternalError",
        "We encountered an internal error. Please try again.",
    ),
    "slow_down": ("503 Slow Down", "SlowDown", "Please reduce your request rate."),
}

Scope = Callable[[str, str], bool]


class S3FaultProxy:
    """An HTTP proxy on 127.0.0.1 that injects S3 faults at a seeded rate."""

    def __init__(
        self,
        upstream: str,
        *,
        rate: float = 0.0,
        seed: int = 0,
        modes: Sequence[str] = MODES,
        stall_seconds: float = 3.0,
        scope: Scope | None = None,
    ) -> None:
        parts = urlsplit(upstream)
        assert parts.hostname and parts.port, upstream
        assert set(modes) <= set(MODES), modes
        self.upstream = (parts.hostname, parts.port)
        self.rate = rate
        self.modes = tuple(modes)
        self.stall_seconds = stall_seconds
        self.scope = scope
        self.latency = 0.0
        self.injected: Counter[str] = Counter()
        self.forwarded = 0
        self.delayed = 0
        self.received: list[tuple[str, str]] = []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def start(self) -> S3FaultProxy:
        thread = threading.Thread(target=self._accept, name="s3-fault-proxy", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stopping.set()
        _close_listener(self._listener)
        for thread in self._threads:
            thread.join(timeout=self.stall_seconds + 5)

    def __enter__(self) -> S3FaultProxy:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(client,), daemon=True)
            thread.start()
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]

    def _draw(self, method: str, path: str) -> str | None:
        if self.scope is not None and not self.scope(method, path):
            return None
        with self._lock:
            if self._rng.random() >= self.rate:
                return None
            mode = self._rng.choice(self.modes)
            self.injected[mode] += 1
            return mode

    def _serve(self, client: socket.socket) -> None:
        with client:
            try:
                request = _read_request(client)
            except (ConnectionError, TimeoutError, ValueError):
                return
            if request is None:
                return
            method, path, raw = request
            with self._lock:
                self.received.append((method, path))
            mode = self._draw(method, path)
            if self.latency:
                with self._lock:
                    self.delayed += 1
                time.sleep(self.latency)
            if mode == "reset":
                _reset(client)
                return
            if mode in _ERRORS:
                client.sendall(_error_reply(mode, method, path))
                return
            try:
                reply = self._forward(raw)
            except OSError:
                _reset(client)
                return
            if mode == "stall":
                self._stopping.wait(self.stall_seconds)
                return
            try:
                client.sendall(reply)
            except OSError:
                pass

    def _forward(self, raw: bytes) -> bytes:
        with socket.create_connection(self.upstream, timeout=60) as upstream:
            upstream.sendall(raw)
            chunks = []
            while chunk := upstream.recv(1 << 20):
                chunks.append(chunk)
        with self._lock:
            self.forwarded += 1
        return _close_after(b"".join(chunks))


def _read_request(client: socket.socket) -> tuple[str, str, bytes] | None:
    """Read one request; return its method, path and the raw bytes to forward."""
    client.settimeout(30)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = client.recv(65536)
        if not chunk:
            return None
        head += chunk
        if len(head) > HEAD_LIMIT:
            raise ValueError("request head too large")
    head, _, body = head.partition(b"\r\n\r\n")
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    method, path, _version = request_line.split(" ", 2)
    headers = [line.split(":", 1) for line in header_lines]
    names = {name.strip().lower(): value.strip() for name, value in headers}
    if names.get("expect", "").lower() == "100-continue":
        # Answer the client at once (it would wait a second otherwise) and let the store
        # see a plain request.
        client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        headers = [h for h in headers if h[0].strip().lower() != "expect"]
    if "chunked" in names.get("transfer-encoding", "").lower():
        body = _read_chunked(client, body)
    else:
        length = int(names.get("content-length", "0"))
        while len(body) < length:
            chunk = client.recv(min(1 << 20, length - len(body)))
            if not chunk:
                raise ConnectionError("client closed mid-body")
            body += chunk
    # One request per connection: the store closes after replying, and so does the proxy.
    headers = [h for h in headers if h[0].strip().lower() != "connection"]
    lines = [request_line, *(f"{name}:{value}" for name, value in headers), "Connection: close"]
    return method, path, "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body


def _read_chunked(client: socket.socket, buffered: bytes) -> bytes:
    data = buffered
    while not data.endswith(b"0\r\n\r\n"):
        chunk = client.recv(1 << 20)
        if not chunk:
            raise ConnectionError("client closed mid-body")
        data += chunk
    return data


def _close_after(reply: bytes) -> bytes:
    """The reply with ``Connection: close``, so the client opens a new connection next time."""
    head, sep, body = reply.partition(b"\r\n\r\n")
    lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"connection:")]
    return b"\r\n".join([*lines, b"Connection: close"]) + sep + body


def _error_reply(mode: str, method: str, path: str) -> bytes:
    status, code, message = _ERRORS[mode]
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<Resource>{path.split('?')[0]}</Resource><RequestId>sunset-fault</RequestId></Error>"
    ).encode()
    if method == "HEAD":
        body = b""
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/xml\r\n"
        f"Content-Length: {len(body)}\r\nx-amz-request-id: sunset-fault\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


def _close_listener(listener: socket.socket) -> None:
    # close() alone does not wake a thread blocked in accept(); shutdown() does.
    with contextlib.suppress(OSError):
        listener.shutdown(socket.SHUT_RDWR)
    listener.close()


def _reset(client: socket.socket) -> None:
    # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
