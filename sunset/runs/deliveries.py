"""Notices nobody can know arrived, and the decision a person records about each.

An email whose hand-over was cut short (the process killed, or the link broken, after
the SMTP DATA command began) may be in the recipient's mailbox or not: a relay cannot be
asked, so the delivery stays ``unconfirmed`` (a webhook's is sent again by its run, see
``sunset.notify.notices``). Such a delivery is *unknown* until a person decides, with
``sunset deliveries decide``, either to send it once more (the recipient may get two) or
to count it as delivered (after asking the recipient, or reading the relay's own logs
for its Message-ID). Each decision is a ``delivery_decisions`` row: who, when, why,
what, and what a resend did. A resend that is itself cut short leaves the delivery
unknown again; one cut short before its hand-over is sent by the next decision.

A run that leaves unknown deliveries says so in its outcome; a retirement of a
deprecation with unknown deliveries is refused before anything changes (preflight) and
again just before its flip (the serving guard). The decision itself:
``sunset.runs.delivery_decisions``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlmodel import col, select

from sunset.ledger import Delivery, DeliveryDecision, DeliveryDecisionKind, DeliveryState, Ledger

# Known for good: nothing a person could decide changes them.
_KNOWN = (DeliveryState.SENT, DeliveryState.REJECTED)


@dataclass(frozen=True)
class UnknownDelivery:
    """A notice that may or may not have reached its recipient, with nothing decided
    that settles it."""

    delivery_id: int
    recipient: str
    channel: str
    kind: str
    state: DeliveryState
    attempts: int

    def describe(self) -> str:
        return f"{self.recipient} ({self.channel}, {self.kind})"


def decide_command(model_id: str) -> str:
    """The command that settles the model's unknown deliveries."""
    return f"sunset deliveries decide {model_id} --resend|--count-as-delivered --reason TEXT"


def unknown_sentence(model_id: str, unknown: Sequence[UnknownDelivery]) -> str:
    """One sentence naming each unknown delivery and the command that settles them."""
    named = ", ".join(d.describe() for d in unknown)
    return (
        f"{len(unknown)} notice(s) of {model_id} may or may not have arrived, and nobody "
        f"has decided about them yet: {named}; decide with `{decide_command(model_id)}`."
    )


def retirement_waits_sentence(model_id: str, unknown: Sequence[UnknownDelivery]) -> str:
    """Why a retirement of the model cannot go on yet, and what to run."""
    return (
        f"{model_id} is not retired while {unknown_sentence(model_id, unknown)[:-1]}; then "
        "run the retirement again. Nothing was changed."
    )


def unknown_deliveries(
    ledger: Ledger, *, deprecation_id: str | None = None, run_id: str | None = None
) -> list[UnknownDelivery]:
    """The deliveries (of the deprecation, or sent by the run) nobody knows arrived:
    unconfirmed with no decision counting them as delivered, or left unsettled by a
    resend someone decided (cut short, or failed)."""
    query = select(Delivery).where(col(Delivery.state).not_in(_KNOWN))
    if deprecation_id is not None:
        query = query.where(Delivery.deprecation_id == deprecation_id)
    if run_id is not None:
        query = query.where(Delivery.run_id == run_id)
    with ledger.session() as db:
        candidates = db.exec(query.order_by(col(Delivery.id))).all()
        latest = {
            decision.delivery_id: decision.decision
            for decision in db.exec(
                select(DeliveryDecision)
                .where(col(DeliveryDecision.delivery_id).in_([d.id for d in candidates]))
                .order_by(col(DeliveryDecision.id))
            )
        }
    unknown = []
    for delivery in candidates:
        assert delivery.id is not None
        if is_unknown(delivery, latest.get(delivery.id)):
            unknown.append(
                UnknownDelivery(
                    delivery.id,
                    delivery.recipient,
                    delivery.channel,
                    delivery.kind,
                    DeliveryState(delivery.state),
                    delivery.attempts,
                )
            )
    return unknown


def is_unknown(delivery: Delivery, latest_decision: DeliveryDecisionKind | None) -> bool:
    """Whether nobody knows the delivery arrived, given the latest decision about it:
    unconfirmed and not counted as delivered, or left unsettled by a decided resend."""
    if delivery.state in _KNOWN or latest_decision == DeliveryDecisionKind.COUNT_AS_DELIVERED:
        return False
    return (
        delivery.state == DeliveryState.UNCONFIRMED
        or latest_decision == DeliveryDecisionKind.RESEND
    )


def unknown_of_run(ledger: Ledger, run_id: str, model_id: str) -> str | None:
    """The sentence naming the run's notices of unknown fate and the command that settles
    them; None when every notice it sent is known."""
    unknown = unknown_deliveries(ledger, run_id=run_id)
    return unknown_sentence(model_id, unknown) if unknown else None
