"""The Python servers of the dev stack, each started as its own process and probed:

* ``python -m sunset_dev.smtp_server``: an SMTP server that stores every message in a Maildir.
* ``python -m sunset_dev.messages_server``: the local stand-in of the Messages API.
* ``sunset model-server``: the Messages API backed by a real model loaded from a directory
  (the ``local-model`` extra), for the real-model demo.

This module is plain Python: it does not import Prefect.
"""

from __future__ import annotations

import json
import socket
import sys
import urllib.request
from pathlib import Path

from sunset_dev.processes import (
    HOST,
    ServiceHandle,
    free_port,
    probe_http,
    python_env,
    start_process,
)

MESSAGES_SERVER_MODULE = "sunset_dev.messages_server"
SMTP_SERVER_MODULE = "sunset_dev.smtp_server"

#: The API key the dev stack's stand-in accepts, and the only one: a local stand-in needs
#: no secret, but it refuses any other key as the real API would, so a wrong
#: SUNSET_ANTHROPIC_API_KEY fails preflight here too.
STAND_IN_API_KEY = "sunset-stand-in-key"


def start_smtp(
    maildir: Path,
    *,
    log_path: Path | None = None,
    require_auth: tuple[str, str] | None = None,
    fail_first: int = 0,
    drop_first: int = 0,
    stall_rcpt_at: int = 0,
    stall_reply_at: int = 0,
    port: int | None = None,
    timeout: float = 20.0,
) -> ServiceHandle:
    """Start ``python -m sunset_dev.smtp_server`` storing into ``maildir``; wait for its banner.

    ``require_auth=(user, password)`` demands AUTH before MAIL; ``fail_first=N`` answers
    the first N messages with ``451 4.3.0``; ``drop_first=N`` closes the connection after
    the DATA of the next N messages without replying or storing them; ``stall_rcpt_at=N`` /
    ``stall_reply_at=N`` hold the N-th message before it is handed over / after it is stored
    (see ``sunset_dev.smtp_server``). The log defaults to ``maildir/../smtp.log``.
    """
    maildir = Path(maildir).resolve()
    maildir.parent.mkdir(parents=True, exist_ok=True)
    log_path = Path(log_path) if log_path is not None else maildir.parent / "smtp.log"
    port = port or free_port()
    argv = [sys.executable, "-m", SMTP_SERVER_MODULE, "--host", HOST, "--port", str(port)]
    argv += ["--maildir", str(maildir)]
    if require_auth is not None:
        argv += ["--require-auth", f"{require_auth[0]}:{require_auth[1]}"]
    if fail_first:
        argv += ["--fail-first", str(fail_first)]
    if drop_first:
        argv += ["--drop-first", str(drop_first)]
    if stall_rcpt_at:
        argv += ["--stall-rcpt-at", str(stall_rcpt_at)]
    if stall_reply_at:
        argv += ["--stall-reply-at", str(stall_reply_at)]
    return start_process(
        "smtp",
        argv,
        endpoint=f"smtp://{HOST}:{port}",
        port=port,
        ports={"smtp": port},
        probe=lambda: _probe_smtp(port),
        log_path=log_path,
        env=python_env(),
        cwd=maildir.parent,
        timeout=timeout,
    )


def _probe_smtp(port: int) -> None:
    with socket.create_connection((HOST, port), timeout=2) as sock:
        banner = sock.recv(512)
        if not banner.startswith(b"220"):
            raise ConnectionError(f"unexpected SMTP banner {banner!r}")
        sock.sendall(b"QUIT\r\n")


def start_messages_server(
    *,
    log_path: Path,
    api_key: str | None = None,
    port: int | None = None,
    cwd: Path | None = None,
    timeout: float = 30.0,
) -> ServiceHandle:
    """Start ``python -m sunset_dev.messages_server``; ready when it lists its requests.

    ``api_key``: the only key it accepts (None: any key).
    """
    port = port or free_port()
    argv = [sys.executable, "-m", MESSAGES_SERVER_MODULE, "--host", HOST, "--port", str(port)]
    if api_key is not None:
        argv += ["--api-key", api_key]
    base_url = f"http://{HOST}:{port}"
    return start_process(
        "messages",
        argv,
        endpoint=base_url,
        port=port,
        probe=lambda: probe_http(base_url + "/_standin/requests"),
        log_path=log_path,
        env=python_env(),
        cwd=cwd or log_path.parent,
        timeout=timeout,
    )


def start_model_server(
    weights: Path, *, log_path: Path, port: int | None = None, timeout: float = 300.0
) -> ServiceHandle:
    """Start ``sunset model-server --weights DIR``; ready once the model is loaded and it
    counts tokens (loading takes 15-30 s on 2 cores)."""
    port = port or free_port()
    argv = [sys.executable, "-m", "sunset.cli", "model-server", "--weights", str(weights)]
    argv += ["--port", str(port)]
    base_url = f"http://{HOST}:{port}"
    return start_process(
        "model-server",
        argv,
        endpoint=base_url,
        port=port,
        probe=lambda: _probe_count_tokens(base_url),
        log_path=log_path,
        env=python_env(),
        cwd=log_path.parent,
        timeout=timeout,
        probe_interval=1.0,
    )


def _probe_count_tokens(base_url: str) -> None:
    # The server listens only once the model is loaded, and counting asks nothing of it.
    body = {"model": "readiness-probe", "messages": [{"role": "user", "content": "ready?"}]}
    request = urllib.request.Request(
        base_url + "/v1/messages/count_tokens",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=2):
        pass  # urlopen raises on any status but 2xx
