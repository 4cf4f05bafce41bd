"""Reading the Maildir that ``sunset_dev.smtp_server`` stores every message in."""

from __future__ import annotations

import email.parser
import email.policy
from email.message import EmailMessage
from pathlib import Path


def read_mailbox(maildir: Path) -> list[EmailMessage]:
    """Every message stored by ``sunset_dev.smtp_server`` in ``maildir``, oldest first.

    Each message keeps the envelope headers the server added (``X-Sunset-Envelope-From``,
    one ``X-Sunset-Envelope-To`` per recipient). A missing Maildir reads as empty.
    """
    maildir = Path(maildir)
    files: list[tuple[int, str, Path]] = []
    for sub in ("new", "cur"):
        folder = maildir / sub
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            if not path.name.startswith("."):
                files.append((path.stat().st_mtime_ns, path.name, path))
    parser = email.parser.BytesParser(policy=email.policy.default)
    messages: list[EmailMessage] = []
    for _, _, path in sorted(files):
        with open(path, "rb") as fp:
            message = parser.parse(fp)
        assert isinstance(message, EmailMessage)
        messages.append(message)
    return messages
