"""Running a Messages app: uvicorn, and one line on stdout once it accepts requests."""

from __future__ import annotations

import socket

import uvicorn
from starlette.applications import Starlette


class _AnnouncingServer(uvicorn.Server):
    """A uvicorn server that prints its address once it is accepting connections."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.should_exit or not getattr(self, "servers", None):
            return
        bound = self.servers[0].sockets[0].getsockname()
        host, port = bound[0], bound[1]
        shown = f"[{host}]" if ":" in host else host
        # The one line on stdout; parents wait for it, so flush at once.
        print(f"listening on http://{shown}:{port}", flush=True)


def serve(app: Starlette, *, host: str, port: int, log_level: str = "warning") -> None:
    """Run ``app`` until SIGINT/SIGTERM; prints ``listening on URL`` once it accepts requests."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=log_level in ("info", "debug"),
        lifespan="off",
        # Open SSE streams must not hold up a test's teardown for long.
        timeout_graceful_shutdown=2,
    )
    _AnnouncingServer(config).run()
