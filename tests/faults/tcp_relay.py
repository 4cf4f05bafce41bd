"""A TCP relay on 127.0.0.1 that can slow a service down or drop connections to it.

It forwards bytes both ways between each client and the upstream service, protocol
unaware (SMTP, HTTP, WebSocket alike). Two faults, switchable while it runs:

    connect_delay   seconds before a new connection reaches the service: the client waits
                    for the service's first word (an SMTP banner) and sends nothing
    latency         seconds added before forwarding each chunk the client sends: a slow
                    network, holding the client inside a request
    drop_next       the next N connections are reset at once, before the service sees them
    hold()          new connections wait, unanswered, until ``release()`` (at most a minute)
    spare_next      the next N connections are neither dropped nor held: a run's preflight
                    logs in to the SMTP relay before any notice (`sunset deprecate` twice: its
                    quick check, then the flow's), and a fault meant for a notice spares it
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from types import TracebackType


class TcpRelay:
    """Forward 127.0.0.1:<port> to ``upstream``, with switchable latency and drops."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.connect_delay = 0.0
        self.latency = 0.0
        self.drop_next = 0
        self.spare_next = 0
        self.dropped = 0
        self.delayed = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._stopping = threading.Event()
        self._open = threading.Event()
        self._open.set()
        self._sockets: set[socket.socket] = set()

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def start(self) -> TcpRelay:
        threading.Thread(target=self._accept, name="tcp-relay", daemon=True).start()
        return self

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def stop(self) -> None:
        self._stopping.set()
        self._open.set()
        with contextlib.suppress(OSError):  # wakes the thread blocked in accept()
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            for sock in list(self._sockets):
                with contextlib.suppress(OSError):
                    sock.close()

    def __enter__(self) -> TcpRelay:
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
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        with self._lock:
            spared = self.spare_next > 0
            if spared:
                self.spare_next -= 1
            drop = not spared and self.drop_next > 0
            if drop:
                self.drop_next -= 1
                self.dropped += 1
        if drop:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()
            return
        if not spared and not self._open.is_set():
            with self._lock:
                self.delayed += 1
            self._open.wait(timeout=60)
        self._pause(self.connect_delay)
        try:
            upstream = socket.create_connection(self.upstream, timeout=30)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        with self._lock:
            self._sockets |= {client, upstream}
        threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()
        self._pump(client, upstream, True)

    def _pause(self, seconds: float) -> None:
        if seconds:
            with self._lock:
                self.delayed += 1
            time.sleep(seconds)

    def _pump(self, source: socket.socket, target: socket.socket, slowed: bool) -> None:
        try:
            while chunk := source.recv(65536):
                if slowed:
                    self._pause(self.latency)
                target.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()
            with self._lock:
                self._sockets -= {source, target}
