"""Steps: flip the serving status in the catalog, route the gateway, check both.

The flow runs the three inside one Prefect transaction. If a later one fails (most
often the check), the ``on_rollback`` hooks of the earlier ones undo what they did, in
reverse order: the gateway gets its previous route back, then the catalog its status.
A transaction keeps deep copies of plain values only, so a hook connects to the
services again from the settings, as the flow did.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect import get_run_logger
from prefect.transactions import Transaction, get_transaction

from sunset.config import Settings
from sunset.ledger import ServingStatus
from sunset.runs.steps import CHECK_STEP, FLIP_STEP, ROUTE_STEP
from sunset.services import Services, connect
from sunset.serving.guards import (
    Flip,
    apply_route,
    check_flip,
    flip_status,
    last_failure,
    rollback_flip,
)
from tasks.step import step


@step(FLIP_STEP, cache=False)
def flip_serving_status(
    services: Services, run_id: str, target: ServingStatus, actor: str, reason: str
) -> Flip:
    """Move the model to ``target`` in the catalog if every guard holds."""
    flip = flip_status(services.ledger, run_id=run_id, target=target, actor=actor, reason=reason)
    _remember(flip=flip)
    get_run_logger().info("%s: %s -> %s", flip.model_id, flip.from_status, flip.to_status)
    return flip


@flip_serving_status.on_rollback
def _undo_flip(txn: Transaction) -> None:
    flip: Flip = txn.get("flip")
    with _reconnected() as services:
        why = last_failure(services.ledger, flip.run_id) or "a later step of the flip failed"
        rollback_flip(services.ledger, flip.transition_id, f"rolled back: {why}")
    get_run_logger().warning(
        "%s: rolled back to %s in the catalog", flip.model_id, flip.from_status
    )


@step(ROUTE_STEP, cache=False)
def route_gateway(services: Services, run_id: str, flip: Flip) -> str:
    """Give the serving gateway the model's new route."""
    previous = apply_route(services.ledger, services.gateway, flip.transition_id)
    _remember(flip=flip, previous=previous)
    get_run_logger().info("%s routed as %s", flip.model_id, flip.to_status)
    return services.gateway.description


@route_gateway.on_rollback
def _undo_route(txn: Transaction) -> None:
    flip: Flip = txn.get("flip")
    with _reconnected() as services:
        services.gateway.write(flip.model_id, txn.get("previous"))
    get_run_logger().warning(
        "%s: previous route restored in %s", flip.model_id, services.gateway.description
    )


@step(CHECK_STEP, cache=False)
def check_serving(services: Services, run_id: str, flip: Flip) -> str:
    """Read the catalog and the gateway back: both must show the new status."""
    check_flip(services.ledger, services.gateway, flip.transition_id)
    return str(flip.to_status)


@contextmanager
def _reconnected() -> Iterator[Services]:
    services = connect(Settings())
    try:
        yield services
    finally:
        services.ledger.dispose()


def _remember(**values: Any) -> None:
    # Kept on the task's own transaction, where its rollback hook will find them.
    txn = get_transaction()
    assert txn is not None
    for name, value in values.items():
        txn.set(name, value)
