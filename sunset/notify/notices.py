"""Deprecation notices: each recipient told once per channel, whatever retries happen.

Each delivery (model, notice key, recipient, channel) is one ledger row that moves
forward; the key names the notice's kind and deprecation (``Notice.key``), so each kind
reaches each recipient on each channel once per deprecation:

    sending ──► handover ──► sent
       │            └──────► unconfirmed   the process died, or the link broke, mid hand-over
       ├──► failed          not delivered; a later attempt tries again
       └──► rejected        the receiver refused it for good

``handover`` is written just before the receiving side can start to keep the notice (the
SMTP DATA command, the first byte of the webhook request). A row found in ``sending`` by
a later attempt was certainly not delivered and is sent. One found in ``handover`` (or
``unconfirmed``) may have arrived: on a channel whose receiver recognises a notice it
already has (``Channel.resend_is_safe``: the webhook, by its ``Sunset-Delivery`` id) it
is sent again with the same id, which settles it; on the others (email: an SMTP relay
cannot be asked whether it kept a message) it stays ``unconfirmed``, and only a person's
recorded decision (``sunset.runs.deliveries``) sends it again or counts it as delivered:
nobody gets two unless someone decided so.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import col, select

from sunset.errors import DeliveryInDoubt, DeliveryRejected, TransientError, is_transient
from sunset.ledger import Delivery, DeliveryState, DeliverySummary, Ledger, utcnow
from sunset.notify.channels import EMAIL, Channel
from sunset.notify.message import Notice, NoticeKind
from sunset.notify.recipients import Recipient

_SETTLED = (DeliveryState.SENT, DeliveryState.REJECTED, DeliveryState.UNCONFIRMED)
# A notice in one of these states has reached its recipient, or may have.
REACHED = (DeliveryState.SENT, DeliveryState.UNCONFIRMED)
# Cut short mid hand-over: it may have arrived.
IN_DOUBT = (DeliveryState.HANDOVER, DeliveryState.UNCONFIRMED)
_INTERRUPTED = (
    "the process stopped while handing the notice over, so it may have arrived; it is not "
    "sent again so that nobody gets it twice"
)


@dataclass
class ChannelSummary:
    """Where one channel's notices stand after an attempt."""

    recipients: int = 0  # with an address on this channel
    sent: int = 0  # delivered, now or before
    sent_before: int = 0  # of those, delivered by an earlier attempt and not sent again
    failed: int = 0  # refused for good, or not delivered yet
    unconfirmed: int = 0  # interrupted mid hand-over, and not settled since
    skipped: int = 0  # no address on this channel


@dataclass(frozen=True)
class NoticeSummary:
    """What the notify step did, per channel, and what went wrong for whom."""

    recipients: int
    channels: dict[str, ChannelSummary]
    problems: list[str] = field(default_factory=list)


def notify_recipients(
    ledger: Ledger,
    channels: Sequence[Channel],
    *,
    run_id: str | None,
    notice: Notice,
    recipients: Sequence[Recipient],
) -> NoticeSummary:
    """Send the notice to every recipient on every channel they have, each once.

    A failure for one recipient does not hold up the others. Transient failures are raised
    together at the end, so the step retries just those; refusals and interrupted
    hand-overs are reported, not retried. The per-channel summary of a run (``run_id``;
    None for the notices no run sends, such as reminders) goes to the ledger.

    Raises:
        TransientError: some notices could not be delivered yet; the rest went out.
    """
    summaries = {channel.name: ChannelSummary() for channel in channels}
    problems: list[str] = []
    transient: list[str] = []  # failed, or in doubt on a channel that may safely resend
    for recipient in recipients:
        for channel in channels:
            counts = summaries[channel.name]
            if channel.address(recipient) is None:
                counts.skipped += 1
                continue
            counts.recipients += 1
            state, before, detail = _deliver_once(ledger, channel, run_id, notice, recipient)
            if state == DeliveryState.SENT:
                counts.sent += 1
                counts.sent_before += before
            elif state == DeliveryState.UNCONFIRMED:
                counts.unconfirmed += 1
            else:
                counts.failed += 1
            if detail:
                problems.append(f"{recipient.email} ({channel.name}): {detail}")
            if state == DeliveryState.FAILED or (
                state == DeliveryState.UNCONFIRMED and channel.resend_is_safe
            ):
                transient.append(problems[-1])
    if run_id is not None:
        record_summary(ledger, run_id, summaries)
    if transient:
        raise TransientError(
            f"{len(transient)} notice(s) could not be delivered yet and will be tried again; "
            f"the others went out: {'; '.join(transient[:5])}"
        )
    return NoticeSummary(len(recipients), summaries, problems)


def first_reached(
    ledger: Ledger, deprecation_id: str, kind: NoticeKind | None = None
) -> dict[str, datetime]:
    """When each recipient was first reached by a notice of the deprecation (of ``kind``,
    or of any kind), on whichever channel came first."""
    query = select(Delivery).where(
        Delivery.deprecation_id == deprecation_id, col(Delivery.state).in_(REACHED)
    )
    if kind is not None:
        query = query.where(Delivery.kind == kind.value)
    first: dict[str, datetime] = {}
    with ledger.session() as db:
        for delivery in db.exec(query):
            known = first.get(delivery.recipient)
            if known is None or delivery.updated_at < known:
                first[delivery.recipient] = delivery.updated_at
    return first


def delivery_id(model_id: str, notice_key: str, recipient: str, channel: str) -> str:
    """Stable across attempts, so a receiver can recognise a notice it already has."""
    digest = hashlib.sha256(f"{model_id}|{notice_key}|{recipient}|{channel}".encode())
    return digest.hexdigest()[:32]


def record_summary(ledger: Ledger, run_id: str, summaries: dict[str, ChannelSummary]) -> None:
    """Write (or rewrite) the run's per-channel summary rows."""
    with ledger.session() as db:
        for channel, counts in summaries.items():
            row = db.exec(
                select(DeliverySummary).where(
                    DeliverySummary.run_id == run_id, DeliverySummary.channel == channel
                )
            ).first() or DeliverySummary(run_id=run_id, channel=channel, **vars(counts))
            row.sqlmodel_update(vars(counts) | {"updated_at": utcnow()})
            db.add(row)


def _deliver_once(
    ledger: Ledger, channel: Channel, run_id: str | None, notice: Notice, recipient: Recipient
) -> tuple[DeliveryState, bool, str | None]:
    """Deliver unless already settled; returns (final state, settled before?, problem)."""
    delivery = _claim(ledger, run_id, notice, recipient.email, channel.name)
    if delivery.state in IN_DOUBT and channel.resend_is_safe:
        # The receiver recognises the same delivery id: sending again settles it.
        pass
    elif delivery.state in _SETTLED:
        return delivery.state, True, delivery.error
    elif delivery.state == DeliveryState.HANDOVER:
        _finish(ledger, delivery.id, DeliveryState.UNCONFIRMED, _INTERRUPTED)
        return DeliveryState.UNCONFIRMED, True, _INTERRUPTED
    _move(ledger, delivery.id, DeliveryState.SENDING, count_attempt=True)
    state, detail = send(ledger, channel, delivery, notice, recipient)
    return state, False, detail


def send(
    ledger: Ledger, channel: Channel, delivery: Delivery, notice: Notice, recipient: Recipient
) -> tuple[DeliveryState, str | None]:
    """Hand a delivery already moved to ``sending`` to its channel, and record how it
    ended; returns (final state, problem).

    Raises:
        Exception: what the channel raised that is neither transient nor a refusal
            (the delivery is recorded as failed first).
    """
    try:
        channel.deliver(
            notice,
            recipient,
            delivery=delivery.message_id,
            handover=lambda: _move(ledger, delivery.id, DeliveryState.HANDOVER),
        )
    except DeliveryRejected as exc:
        _finish(ledger, delivery.id, DeliveryState.REJECTED, f"refused for good: {exc}")
        return DeliveryState.REJECTED, f"refused for good: {exc}"
    except DeliveryInDoubt as exc:
        detail = (
            f"{exc}; it is sent again with the same delivery id"
            if channel.resend_is_safe
            else f"{exc}; it may have arrived and is not sent again"
        )
        _finish(ledger, delivery.id, DeliveryState.UNCONFIRMED, detail)
        return DeliveryState.UNCONFIRMED, detail
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        _finish(ledger, delivery.id, DeliveryState.FAILED, error)
        if not is_transient(exc):
            raise
        return DeliveryState.FAILED, f"not delivered yet: {error}"
    _finish(ledger, delivery.id, DeliveryState.SENT, None)
    return DeliveryState.SENT, None


def _claim(
    ledger: Ledger, run_id: str | None, notice: Notice, recipient: str, channel: str
) -> Delivery:
    model_id = notice.model.id
    with ledger.session() as db:
        delivery = db.exec(
            select(Delivery).where(
                Delivery.model_id == model_id,
                Delivery.notice_key == notice.key,
                Delivery.recipient == recipient,
                Delivery.channel == channel,
            )
        ).first()
        if delivery is not None:
            return delivery
        digest = delivery_id(model_id, notice.key, recipient, channel)
        delivery = Delivery(
            model_id=model_id,
            notice_key=notice.key,
            kind=notice.kind.value,
            deprecation_id=notice.deprecation_id,
            run_id=run_id,
            recipient=recipient,
            channel=channel,
            message_id=f"<{digest}@sunset.notice>" if channel == EMAIL else digest,
            state=DeliveryState.SENDING,
        )
        db.add(delivery)
        db.flush()
        db.refresh(delivery)
        return delivery


def _move(
    ledger: Ledger, delivery_id: int | None, state: DeliveryState, count_attempt: bool = False
) -> None:
    with ledger.session() as db:
        delivery = db.get(Delivery, delivery_id)
        assert delivery is not None
        delivery.state, delivery.updated_at = state, utcnow()
        delivery.attempts += count_attempt
        db.add(delivery)


def _finish(
    ledger: Ledger, delivery_id: int | None, state: DeliveryState, error: str | None
) -> None:
    with ledger.session() as db:
        delivery = db.get(Delivery, delivery_id)
        assert delivery is not None
        delivery.state, delivery.error, delivery.updated_at = state, error, utcnow()
        db.add(delivery)
