"""The clients a run needs, built once from settings at the edge of a run."""

from __future__ import annotations

from dataclasses import dataclass

from sunset.config import Settings
from sunset.interview.client import AnthropicMessages, MessagesClient
from sunset.ledger import Ledger, open_ledger
from sunset.notify.email import SmtpMailer, SmtpRelay
from sunset.notify.notices import Mailer
from sunset.store import ObjectStore, make_s3_client


@dataclass
class Services:
    """Everything a step talks to; tasks receive it instead of loading secrets themselves."""

    settings: Settings
    ledger: Ledger
    store: ObjectStore
    mailer: Mailer
    messages: MessagesClient


def connect(settings: Settings) -> Services:
    """Open the ledger (migrating it) and build the store, mail and Messages clients."""
    client = make_s3_client(
        settings.s3_endpoint_url,
        settings.s3_region,
        settings.s3_access_key_id,
        settings.s3_secret_access_key,
        settings.s3_read_timeout_seconds,
    )
    relay = SmtpRelay(
        host=settings.smtp_host,
        port=settings.smtp_port,
        starttls=settings.smtp_starttls,
        username=settings.smtp_username,
        password=settings.smtp_password,
    )
    return Services(
        settings=settings,
        ledger=open_ledger(settings.ledger_url),
        store=ObjectStore(client, settings.bucket),
        mailer=SmtpMailer(relay),
        messages=AnthropicMessages(
            base_url=settings.messages_base_url, api_key=settings.anthropic_api_key
        ),
    )
