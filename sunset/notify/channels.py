"""The channels a notice travels by: email to every recipient, a webhook to those with one.

A channel knows a recipient's address on it (or that there is none) and delivers one
notice, calling ``handover`` at the moment the receiving side may start to hold it: the
notices module records that moment, so a crash right after it is never followed by a
second copy.
"""

from __future__ import annotations

from collections.abc import Callable
from email.message import EmailMessage
from typing import Protocol

from sunset.notify.email import compose_notice
from sunset.notify.message import Notice, NoticeTemplates
from sunset.notify.recipients import Recipient
from sunset.notify.webhook import WebhookSender

EMAIL = "email"
WEBHOOK = "webhook"

Handover = Callable[[], None]


class Mailer(Protocol):
    def send(self, message: EmailMessage, handover: Handover = ...) -> None: ...

    def check(self) -> None: ...


class Channel(Protocol):
    name: str
    # Whether a notice that may have arrived can be sent again without anyone getting
    # two: the receiver recognises the delivery id it already has.
    resend_is_safe: bool

    def address(self, recipient: Recipient) -> str | None: ...

    def deliver(
        self, notice: Notice, recipient: Recipient, *, delivery: str, handover: Handover
    ) -> None: ...


class EmailChannel:
    """A text + HTML email through the SMTP relay; ``delivery`` is its Message-ID."""

    name = EMAIL
    # An SMTP relay cannot be asked whether it kept a message, and a mailbox shows a
    # second copy: a hand-over cut short stays unconfirmed until someone decides.
    resend_is_safe = False

    def __init__(self, mailer: Mailer, templates: NoticeTemplates, mail_from: str) -> None:
        self.mailer, self.templates, self.mail_from = mailer, templates, mail_from

    def address(self, recipient: Recipient) -> str | None:
        return recipient.email

    def deliver(
        self, notice: Notice, recipient: Recipient, *, delivery: str, handover: Handover
    ) -> None:
        message = compose_notice(
            self.templates, notice, recipient, mail_from=self.mail_from, message_id=delivery
        )
        self.mailer.send(message, handover)


class WebhookChannel:
    """A signed JSON POST to the recipient's webhook URL; ``delivery`` is its id header."""

    name = WEBHOOK
    resend_is_safe = True  # receivers keep each Sunset-Delivery id once (webhook.py)

    def __init__(self, sender: WebhookSender, templates: NoticeTemplates) -> None:
        self.sender, self.templates = sender, templates

    def address(self, recipient: Recipient) -> str | None:
        return recipient.webhook_url

    def deliver(
        self, notice: Notice, recipient: Recipient, *, delivery: str, handover: Handover
    ) -> None:
        assert recipient.webhook_url is not None
        payload = self.templates.webhook_payload(notice, recipient, delivery)
        self.sender.post(recipient.webhook_url, payload, delivery=delivery, handover=handover)
