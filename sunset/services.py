"""The clients a run needs, built once from settings at the edge of a run."""

from __future__ import annotations

from dataclasses import dataclass

from sunset.config import Settings
from sunset.interview.client import AnthropicMessages, MessagesClient
from sunset.ledger import Ledger, open_ledger
from sunset.notify.email import SmtpMailer, SmtpRelay
from sunset.notify.notices import Mailer
from sunset.replicas import ReplicatedStore, connect_store, weights_reader
from sunset.weights import WeightsReader


@dataclass
class Services:
    """Everything a step talks to; tasks receive it instead of loading secrets themselves."""

    settings: Settings
    ledger: Ledger
    store: ReplicatedStore
    mailer: Mailer
    messages: MessagesClient
    weights: WeightsReader


def connect(settings: Settings) -> Services:
    """Open the ledger (migrating it) and build the store, mail and Messages clients."""
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
        store=connect_store(settings),
        mailer=SmtpMailer(relay),
        messages=AnthropicMessages(
            base_url=settings.messages_base_url,
            api_key=settings.anthropic_api_key,
            max_retries=settings.interview_max_retries,
            timeout_s=settings.interview_request_timeout_seconds,
        ),
        weights=weights_reader(settings),
    )
