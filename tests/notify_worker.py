"""One notify attempt, runnable in a process of its own so a test can SIGKILL it.

    python -m tests.notify_worker CONFIG.json

CONFIG holds the ledger URL, the run and its deprecation, the SMTP port, the webhook
secret and the recipients CSV. The same ``notify`` runs in the test process for the rerun.
"""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from sunset.ledger import CatalogModel, Ledger
from sunset.notify.channels import EmailChannel, WebhookChannel
from sunset.notify.email import SmtpMailer, SmtpRelay
from sunset.notify.message import Notice, NoticeKind, NoticeTemplates
from sunset.notify.notices import NoticeSummary, notify_recipients
from sunset.notify.recipients import load_recipients
from sunset.notify.webhook import WebhookSender


def notify(config: dict[str, Any]) -> NoticeSummary:
    ledger = Ledger(config["ledger_url"])
    try:
        with ledger.session() as db:
            model = db.get(CatalogModel, config["model_id"])
            assert model is not None
            replacement = (
                db.get(CatalogModel, model.replacement_id) if model.replacement_id else None
            )
        notice = Notice(
            NoticeKind.ANNOUNCEMENT,
            config["deprecation_id"],
            model,
            replacement,
            date.fromisoformat(config["announced_on"]),
            date.fromisoformat(config["retirement_on"]),
            "help@example.org",
        )
        templates = NoticeTemplates(Path(config["templates"]) if config.get("templates") else None)
        mailer = SmtpMailer(SmtpRelay("127.0.0.1", config["smtp_port"], timeout_s=120))
        sender = WebhookSender(SecretStr(config["webhook_secret"]), timeout_s=5)
        channels = [
            EmailChannel(mailer, templates, "Sunset <sunset@example.org>"),
            WebhookChannel(sender, templates),
        ]
        return notify_recipients(
            ledger,
            channels,
            run_id=config["run_id"],
            notice=notice,
            recipients=load_recipients(Path(config["recipients"])),
        )
    finally:
        ledger.dispose()


if __name__ == "__main__":
    notify(json.loads(Path(sys.argv[1]).read_text()))
