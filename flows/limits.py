"""One deprecation run per model, held by a Prefect global concurrency limit.

Each model has its own limit, ``deprecate-<model-id>``, with one slot: two runs for the
same model queue up, whichever way they were started (CLI, deployment, UI), while runs
for different models proceed side by side. The limit is made the first time a model is
deprecated, so no operator has to create one per model; ``strict=True`` still refuses to
run unguarded if it vanished in between. The slot is leased (Prefect's default lease,
five minutes, renewed while the run lives): a run whose process died gives it up when
the lease lapses, like the ledger's own run lease.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prefect import get_client, get_run_logger
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.actions import (
    GlobalConcurrencyLimitCreate,
    GlobalConcurrencyLimitUpdate,
)
from prefect.client.schemas.objects import ConcurrencyLeaseHolder
from prefect.client.schemas.responses import GlobalConcurrencyLimitResponse
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.runtime import flow_run


def deprecation_limit_name(model_id: str) -> str:
    """The name of the concurrency limit that admits one deprecation run of the model."""
    return f"deprecate-{model_id}"


@contextmanager
def one_deprecation_per_model(model_id: str) -> Iterator[None]:
    """Hold the model's single deprecation slot for the block; wait while another run has it."""
    name = deprecation_limit_name(model_id)
    with get_client(sync_client=True) as client:
        limit = _ensure_single_slot_limit(client, name)
    if limit.active_slots >= limit.limit:
        get_run_logger().info(
            "Another deprecation run of %s holds the concurrency limit %s; this run waits "
            "until it ends and then starts (or resumes) from preflight.",
            model_id,
            name,
        )
    holder = ConcurrencyLeaseHolder(type="flow_run", id=flow_run.get_id())
    with concurrency(name, occupy=1, strict=True, holder=holder):
        yield


def _ensure_single_slot_limit(
    client: SyncPrefectClient, name: str
) -> GlobalConcurrencyLimitResponse:
    try:
        limit = client.read_global_concurrency_limit_by_name(name)
    except ObjectNotFound:
        # Two first runs may race to create it; the loser finds it made.
        try:
            client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(name=name, limit=1, slot_decay_per_second=0.0)
            )
        except ObjectAlreadyExists:
            pass
        return client.read_global_concurrency_limit_by_name(name)
    if limit.limit != 1 or not limit.active or limit.slot_decay_per_second:
        # One slot, held until released, is the guarantee itself: an edited limit is restored.
        client.update_global_concurrency_limit(
            name, GlobalConcurrencyLimitUpdate(limit=1, active=True, slot_decay_per_second=0.0)
        )
        limit = client.read_global_concurrency_limit_by_name(name)
    return limit
