"""A local SMTP server that keeps every message it receives in a Maildir.

Run it as::

    python -m sunset_dev.smtp_server --host 127.0.0.1 --port 2525 --maildir DIR
        [--require-auth USER:PASSWORD] [--fail-first N] [--drop-first N]
        [--stall-rcpt-at N | --stall-reply-at N] [--stall-seconds S]

It prints ``listening on HOST:PORT`` once the socket is bound, and stops cleanly on
SIGTERM or SIGINT.

Storage format: each accepted message becomes one file in the ``mailbox.Maildir`` at DIR
(``DIR/new``). The file holds the raw message exactly as the client sent it (after SMTP
dot-unstuffing), preceded by envelope headers added by this server:

    X-Sunset-Envelope-From: <the MAIL FROM address, empty for a bounce>
    X-Sunset-Envelope-To: <one header per RCPT TO address, in order>

so Bcc recipients, which appear in no header of the message itself, can be checked.
``sunset_dev.devstack.read_mailbox`` reads them back as ``email.message.EmailMessage``.

``--require-auth`` demands AUTH LOGIN or AUTH PLAIN before MAIL FROM (over the plain
connection: this is a local test server, not a relay). ``--fail-first N`` answers the
first N messages, after their DATA, with ``451 4.3.0 temporary failure`` and stores
nothing, to exercise the client's retries. ``--drop-first N`` reads the first N messages
whole, then closes the connection without a reply and stores nothing, like a relay that
crashed before queueing them (counted after any ``--fail-first`` ones).

``--stall-rcpt-at N`` holds the answer to the RCPT of the N-th message (counted from
its MAIL command) for ``--stall-seconds``: nothing has been handed over yet.
``--stall-reply-at N`` stores the N-th message, then holds the answer to its DATA: the
message has arrived, the client does not know it. Each prints ``stalling message N``
first, so a test can kill the client at that exact point.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import logging
import mailbox
import signal
import sys
import warnings
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

TEMPORARY_FAILURE = "451 4.3.0 temporary failure"
ENVELOPE_FROM_HEADER = "X-Sunset-Envelope-From"
ENVELOPE_TO_HEADER = "X-Sunset-Envelope-To"

log = logging.getLogger("sunset_dev.smtp_server")


class MaildirHandler:
    """aiosmtpd handler: store each message in a Maildir, or fail the first few on purpose."""

    def __init__(
        self,
        maildir: Path,
        *,
        fail_first: int = 0,
        drop_first: int = 0,
        stall_rcpt_at: int = 0,
        stall_reply_at: int = 0,
        stall_seconds: float = 60.0,
    ) -> None:
        self.maildir = mailbox.Maildir(maildir, create=True)
        self.fail_remaining = fail_first
        self.drop_remaining = drop_first
        self.stall_rcpt_at, self.stall_reply_at = stall_rcpt_at, stall_reply_at
        self.stall_seconds = stall_seconds
        self.messages_begun = 0

    async def handle_MAIL(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        self.messages_begun += 1
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.messages_begun == self.stall_rcpt_at:
            await self._stall("at RCPT, before anything was handed over")
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def _stall(self, where: str) -> None:
        print(f"stalling message {self.messages_begun} {where}", flush=True)
        await asyncio.sleep(self.stall_seconds)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        if self.fail_remaining > 0:
            self.fail_remaining -= 1
            log.info("refused a message on purpose (%d more to refuse)", self.fail_remaining)
            return TEMPORARY_FAILURE
        if self.drop_remaining > 0:
            self.drop_remaining -= 1
            log.info("dropped a connection on purpose (%d more to drop)", self.drop_remaining)
            assert isinstance(server.transport, asyncio.Transport)
            server.transport.abort()  # no reply: the client cannot tell what happened
            return TEMPORARY_FAILURE  # written to a closed connection, never seen
        raw = envelope.original_content or b""
        key = self.maildir.add(_with_envelope(raw, envelope.mail_from, envelope.rcpt_tos))
        print(f"stored {key} from={envelope.mail_from!r} to={envelope.rcpt_tos!r}", flush=True)
        if self.messages_begun == self.stall_reply_at:
            await self._stall("after storing it, before answering DATA")
        return "250 2.0.0 OK: queued as " + key


def _with_envelope(raw: bytes, mail_from: str | None, rcpt_tos: list[str]) -> bytes:
    """Prefix the raw message with the envelope headers, in its own line-ending style."""
    eol = b"\r\n" if b"\r\n" in raw[:4096] or not raw else b"\n"
    lines = [f"{ENVELOPE_FROM_HEADER}: {mail_from or ''}".encode()]
    lines += [f"{ENVELOPE_TO_HEADER}: {rcpt}".encode() for rcpt in rcpt_tos]
    return eol.join(lines) + eol + raw


def _authenticator(user: str, password: str) -> Any:
    expected_user, expected_password = user.encode(), password.encode()

    def authenticate(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and hmac.compare_digest(auth_data.login, expected_user)
            and hmac.compare_digest(auth_data.password, expected_password)
        )
        return AuthResult(success=bool(ok), handled=False)

    return authenticate


async def serve(
    host: str,
    port: int,
    maildir: Path,
    *,
    require_auth: tuple[str, str] | None = None,
    fail_first: int = 0,
    drop_first: int = 0,
    stall_rcpt_at: int = 0,
    stall_reply_at: int = 0,
    stall_seconds: float = 60.0,
) -> None:
    """Serve until SIGTERM or SIGINT."""
    handler = MaildirHandler(
        maildir,
        fail_first=fail_first,
        drop_first=drop_first,
        stall_rcpt_at=stall_rcpt_at,
        stall_reply_at=stall_reply_at,
        stall_seconds=stall_seconds,
    )
    loop = asyncio.get_running_loop()
    options: dict[str, Any] = {"hostname": "localhost", "enable_SMTPUTF8": True}
    if require_auth is not None:
        options |= {
            "auth_required": True,
            "auth_require_tls": False,
            "authenticator": _authenticator(*require_auth),
        }
    server = await loop.create_server(lambda: SMTP(handler, loop=loop, **options), host, port)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    bound_port = server.sockets[0].getsockname()[1]
    print(f"listening on {host}:{bound_port}", flush=True)
    try:
        await stop.wait()
    finally:
        server.close()
        await server.wait_closed()
        print("stopped", flush=True)


def _parse_credentials(value: str) -> tuple[str, str]:
    user, sep, password = value.partition(":")
    if not sep or not user:
        raise argparse.ArgumentTypeError("expected USER:PASSWORD")
    return user, password


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sunset_dev.smtp_server", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--maildir", type=Path, required=True)
    parser.add_argument(
        "--require-auth", type=_parse_credentials, metavar="USER:PASSWORD", default=None
    )
    parser.add_argument("--fail-first", type=int, default=0, metavar="N")
    parser.add_argument("--drop-first", type=int, default=0, metavar="N")
    parser.add_argument("--stall-rcpt-at", type=int, default=0, metavar="N")
    parser.add_argument("--stall-reply-at", type=int, default=0, metavar="N")
    parser.add_argument("--stall-seconds", type=float, default=60.0, metavar="S")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    # Plain-text AUTH is the point of this local server; aiosmtpd warns about it per session.
    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
    asyncio.run(
        serve(
            args.host,
            args.port,
            args.maildir,
            require_auth=args.require_auth,
            fail_first=args.fail_first,
            drop_first=args.drop_first,
            stall_rcpt_at=args.stall_rcpt_at,
            stall_reply_at=args.stall_reply_at,
            stall_seconds=args.stall_seconds,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
