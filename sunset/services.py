"""The clients a run needs, built once from settings at the edge of a run."""

from __future__ import annotations

from dataclasses import dataclass

from sunset.config import Settings
from sunset.errors import InputError
from sunset.interview.client import AnthropicMessages, MessagesClient
from sunset.ledger import Ledger, open_ledger
from sunset.notify.channels import Channel, EmailChannel, Mailer, WebhookChannel
from sunset.notify.email import SmtpMailer, SmtpRelay
from sunset.notify.message import NoticeTemplates
from sunset.notify.webhook import WebhookSender
from sunset.preservation.replicas import ReplicatedStore, connect_store, weights_reader
from sunset.preservation.weights import WeightsReader
from sunset.serving.gateway import HttpGateway, RoutingFile, ServingGateway


@dataclass
class Services:
    """Everything a step talks to; tasks receive it instead of loading secrets themselves."""

    settings: Settings
    ledger: Ledger
    store: ReplicatedStore
    mailer: Mailer
    messages: MessagesClient
    weights: WeightsReader
    gateway: ServingGateway
    webhooks: WebhookSender | None  # None when no signing secret is set

    def notice_channels(self) -> list[Channel]:
        """Email for everyone; webhooks too, when a signing secret is set."""
        templates = NoticeTemplates(self.settings.notice_templates_dir)
        channels: list[Channel] = [EmailChannel(self.mailer, templates, self.settings.mail_from)]
        if self.webhooks is not None:
            channels.append(WebhookChannel(self.webhooks, templates))
        return channels


def connect(settings: Settings) -> Services:
    """Open the ledger (migrating it) and build the store, mail, webhook, Messages and
    gateway clients."""
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
        gateway=serving_gateway(settings),
        webhooks=(
            WebhookSender(settings.webhook_secret, timeout_s=settings.webhook_timeout_s)
            if settings.webhook_secret
            else None
        ),
    )


def serving_gateway(settings: Settings) -> ServingGateway:
    """The gateway adapter the settings choose."""
    if settings.gateway == "http":
        if not settings.gateway_url:
            raise InputError("SUNSET_GATEWAY is 'http' but SUNSET_GATEWAY_URL is not set.")
        return HttpGateway(settings.gateway_url, settings.gateway_token)
    return RoutingFile(settings.routing_file)
