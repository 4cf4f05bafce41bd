"""The email channel: composing a notice and handing it to an SMTP relay."""

from __future__ import annotations

import smtplib
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

import jinja2
from pydantic import SecretStr

_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("sunset.notify", "templates"),
    autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",)),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)


@dataclass(frozen=True)
class SmtpRelay:
    """Where and how to hand over mail."""

    host: str
    port: int
    starttls: bool = False
    username: str | None = None
    password: SecretStr | None = None
    timeout_s: float = 30.0


class SmtpMailer:
    """Sends one message per connection, so a dropped link costs one message at most."""

    def __init__(self, relay: SmtpRelay) -> None:
        self.relay = relay

    def send(self, message: EmailMessage) -> None:
        relay = self.relay
        with smtplib.SMTP(relay.host, relay.port, timeout=relay.timeout_s) as smtp:
            if relay.starttls:
                smtp.starttls()
            if relay.username:
                password = relay.password.get_secret_value() if relay.password else ""
                smtp.login(relay.username, password)
            smtp.send_message(message)


def compose_notice(
    *,
    mail_from: str,
    to_name: str,
    to_email: str,
    message_id: str,
    subject: str,
    context: dict[str, Any],
) -> EmailMessage:
    """A notice with a plain-text part and an HTML alternative."""
    message = EmailMessage()
    message["From"] = mail_from
    local, _, domain = to_email.partition("@")
    message["To"] = Address(display_name=to_name, username=local, domain=domain)
    message["Subject"] = subject
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = message_id
    message.set_content(_TEMPLATES.get_template("notice.txt.j2").render(context))
    message.add_alternative(
        _TEMPLATES.get_template("notice.html.j2").render(context), subtype="html"
    )
    return message
