"""`sunset deliveries decide`: a person's decision about notices nobody can know arrived
(``sunset.runs.deliveries`` finds them): send each once more, or count it as delivered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import col

from sunset.config import Settings
from sunset.errors import InputError
from sunset.ledger import (
    Delivery,
    DeliveryDecision,
    DeliveryDecisionKind,
    DeliveryState,
    Ledger,
    utcnow,
)
from sunset.notify.channels import Channel
from sunset.notify.message import Notice
from sunset.notify.notices import send
from sunset.notify.recipients import Recipient
from sunset.runs.deliveries import UnknownDelivery, unknown_deliveries
from sunset.runs.deprecation import latest_deprecation
from sunset.runs.notice_record import recipients_of
from sunset.runs.notices import notice_of_delivery


@dataclass(frozen=True)
class DecisionMade:
    """One recorded decision, and what a resend did (None: counted as delivered)."""

    delivery: UnknownDelivery
    decision: DeliveryDecisionKind
    outcome: DeliveryState | None
    problem: str | None = None


def decide(
    ledger: Ledger,
    channels: Sequence[Channel],
    settings: Settings,
    *,
    model_id: str,
    decision: DeliveryDecisionKind,
    reason: str,
    decided_by: str,
    recipient: str | None = None,
) -> list[DecisionMade]:
    """Record ``decision`` for each unknown delivery of the model's latest deprecation
    (only ``recipient``'s, if given); with a resend, send each once, now.

    A resend first moves the delivery to ``sending``, if no one else moved it since it
    was read, in the transaction that records the decision: two people deciding at once
    send it once.

    Raises:
        InputError: the model has no deprecation, ``recipient`` has no unknown delivery,
            or a notice to resend cannot be composed again. Nothing is recorded or sent.
    """
    if not reason.strip():
        raise InputError("The reason is empty; say why, with --reason TEXT: it is recorded.")
    deprecation = latest_deprecation(ledger, model_id)
    if deprecation is None:
        raise InputError(f"{model_id} has no deprecation, so no notice of it to decide about.")
    unknown = unknown_deliveries(ledger, deprecation_id=deprecation.id)
    if recipient is not None:
        unknown = [d for d in unknown if d.recipient == recipient]
        if not unknown:
            raise InputError(
                f"{recipient} has no notice of {model_id} of unknown fate; leave out "
                "--recipient to decide about every notice that has one."
            )
    if decision == DeliveryDecisionKind.COUNT_AS_DELIVERED:
        return [_count_as_delivered(ledger, d, reason, decided_by) for d in unknown]
    # Everything a resend needs is found before anything is recorded or sent.
    by_name = {channel.name: channel for channel in channels}
    people = {r.email: r for r in recipients_of(ledger, deprecation.id)}
    with ledger.session() as db:
        rows = {d.delivery_id: db.get(Delivery, d.delivery_id) for d in unknown}
    plans = []
    for delivery in unknown:
        row = rows[delivery.delivery_id]
        assert row is not None
        channel = by_name.get(delivery.channel)
        if channel is None:
            raise InputError(
                f"The {delivery.channel} channel is not set up here, so the notice to "
                f"{delivery.describe()} cannot be sent again; set it up (for webhooks: "
                "SUNSET_WEBHOOK_SECRET), or count it as delivered."
            )
        person = people.get(delivery.recipient)
        if person is None:
            raise InputError(
                f"{delivery.recipient} is not among the recipients of {model_id}'s "
                "deprecation, so the notice cannot be sent again from here; settle it "
                "with --count-as-delivered and say why in --reason."
            )
        plans.append((delivery, channel, notice_of_delivery(ledger, settings, row), person))
    return [
        _resend(ledger, delivery, channel, notice, person, reason, decided_by)
        for delivery, channel, notice, person in plans
    ]


def _count_as_delivered(
    ledger: Ledger, delivery: UnknownDelivery, reason: str, decided_by: str
) -> DecisionMade:
    with ledger.session() as db:
        db.add(
            DeliveryDecision(
                delivery_id=delivery.delivery_id,
                decision=DeliveryDecisionKind.COUNT_AS_DELIVERED,
                reason=reason,
                decided_by=decided_by,
            )
        )
    return DecisionMade(delivery, DeliveryDecisionKind.COUNT_AS_DELIVERED, None)


def _resend(
    ledger: Ledger,
    delivery: UnknownDelivery,
    channel: Channel,
    notice: Notice,
    recipient: Recipient,
    reason: str,
    decided_by: str,
) -> DecisionMade:
    kind = DeliveryDecisionKind.RESEND
    with ledger.session() as db:
        claimed = db.connection().execute(
            sa.update(Delivery)
            .where(
                col(Delivery.id) == delivery.delivery_id,
                col(Delivery.state) == delivery.state,
                col(Delivery.attempts) == delivery.attempts,
            )
            .values(
                state=DeliveryState.SENDING, attempts=delivery.attempts + 1, updated_at=utcnow()
            )
        )
        if claimed.rowcount != 1:
            return DecisionMade(delivery, kind, None, "someone else acted on it meanwhile")
        record = DeliveryDecision(
            delivery_id=delivery.delivery_id, decision=kind, reason=reason, decided_by=decided_by
        )
        db.add(record)
        db.flush()
        decision_id = record.id
    with ledger.session() as db:
        row = db.get(Delivery, delivery.delivery_id)
        assert row is not None
    state, problem = send(ledger, channel, row, notice, recipient)
    with ledger.session() as db:
        done = db.get(DeliveryDecision, decision_id)
        assert done is not None
        done.outcome = state
        db.add(done)
    return DecisionMade(delivery, kind, state, problem)
