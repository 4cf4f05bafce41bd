"""Deprecation notices: each recipient told once per channel, whatever retries happen."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from email.message import EmailMessage
from typing import Protocol

from sqlmodel import select

from sunset.errors import TransientError, is_transient
from sunset.ledger import CatalogModel, Delivery, Ledger, utcnow
from sunset.notify.email import compose_notice
from sunset.notify.recipients import Recipient

EMAIL = "email"


class Mailer(Protocol):
    def send(self, message: EmailMessage) -> None: ...


@dataclass(frozen=True)
class NoticeSummary:
    """What the notify step did, per recipient."""

    recipients: int
    sent: int = 0
    skipped: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)


def notice_key(retirement_on: date) -> str:
    """Identifies one notice: the same retirement announced again is the same notice."""
    return f"deprecation:{retirement_on.isoformat()}"


def notify_recipients(
    ledger: Ledger,
    mailer: Mailer,
    *,
    run_id: str,
    model: CatalogModel,
    replacement: CatalogModel | None,
    recipients: Sequence[Recipient],
    announced_on: date,
    retirement_on: date,
    mail_from: str,
    support_contact: str,
) -> NoticeSummary:
    """Email the deprecation notice to every recipient not already told.

    Each delivery is claimed in the ledger before sending and marked sent right after,
    so a retried or resumed run skips everyone already told. A transient failure for one
    recipient does not hold up the others; it is raised at the end so the step retries
    just those.
    """
    key = notice_key(retirement_on)
    sent = skipped = 0
    failures: list[str] = []
    transient: list[str] = []
    for recipient in recipients:
        delivery = _claim(ledger, run_id, model.id, key, recipient.email)
        if delivery.state == "sent":
            skipped += 1
            continue
        message = compose_notice(
            mail_from=mail_from,
            to_name=recipient.name,
            to_email=recipient.email,
            message_id=delivery.message_id,
            subject=f"{model.display_name} will be retired on {retirement_on.isoformat()}",
            context={
                "recipient": recipient,
                "model": model,
                "replacement": replacement,
                "announced": announced_on.isoformat(),
                "retirement": retirement_on.isoformat(),
                "support_contact": support_contact,
            },
        )
        try:
            mailer.send(message)
        except Exception as exc:
            _finish(ledger, delivery.id, "failed", f"{type(exc).__name__}: {exc}")
            if not is_transient(exc):
                raise
            transient.append(recipient.email)
            failures.append(f"{recipient.email}: {exc}")
            continue
        _finish(ledger, delivery.id, "sent", None)
        sent += 1
    if transient:
        raise TransientError(
            f"{len(transient)} of {len(recipients)} notices could not be delivered yet "
            f"({', '.join(transient[:5])}); the others went out. First error: {failures[0]}"
        )
    return NoticeSummary(len(recipients), sent, skipped, len(failures), failures)


def _claim(ledger: Ledger, run_id: str, model_id: str, key: str, email: str) -> Delivery:
    with ledger.session() as session:
        delivery = session.exec(
            select(Delivery).where(
                Delivery.model_id == model_id,
                Delivery.notice_key == key,
                Delivery.recipient == email,
                Delivery.channel == EMAIL,
            )
        ).first()
        if delivery is None:
            digest = hashlib.sha256(f"{model_id}|{key}|{email}".encode()).hexdigest()[:32]
            delivery = Delivery(
                model_id=model_id,
                notice_key=key,
                run_id=run_id,
                recipient=email,
                channel=EMAIL,
                # Stable across resends, so a receiver can drop a duplicate after a crash
                # between the relay's acceptance and our record of it.
                message_id=f"<{digest}@sunset.notice>",
                state="pending",
            )
        elif delivery.state == "sent":
            return delivery
        delivery.attempts += 1
        delivery.updated_at = utcnow()
        session.add(delivery)
        session.flush()
        session.refresh(delivery)
        return delivery


def _finish(ledger: Ledger, delivery_id: int | None, state: str, error: str | None) -> None:
    with ledger.session() as session:
        delivery = session.get(Delivery, delivery_id)
        assert delivery is not None
        delivery.state = state
        delivery.error = error
        delivery.updated_at = utcnow()
        session.add(delivery)
