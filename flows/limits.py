"""One deprecation run per model, held by a Prefect global concurrency limit.

Each model has its own limit, ``deprecate-<model-id>``, with one slot: two runs for the
same model queue up, whichever way they were started (CLI, deployment, UI), while runs
for different models proceed side by side. The limit is made the first time a model is
deprecated, so no operator has to create one per model; ``strict=True`` still refuses to
run unguarded if it vanished in between.

The slot is leased (five minutes, renewed while the run lives), and the run records the
lease id in the ledger. A process killed outright cannot give its slot back; Prefect
would reclaim it only when the lease expires. The ledger knows sooner: once the dead
run's own lease lapses, the run that resumes it frees the recorded slot at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from uuid import UUID

from prefect import get_client, get_run_logger
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.actions import (
    GlobalConcurrencyLimitCreate,
    GlobalConcurrencyLimitUpdate,
)
from prefect.client.schemas.objects import ConcurrencyLeaseHolder
from prefect.client.schemas.responses import GlobalConcurrencyLimitResponse

# The public `concurrency()` context manager hides its lease id, which the ledger needs;
# these are the functions it is made of (Prefect is pinned in pyproject.toml, and
# tests/test_prefect_pins.py says which of these names a new release moved).
from prefect.concurrency._leases import maintain_concurrency_lease
from prefect.concurrency._sync import (
    acquire_concurrency_slots_with_lease,
    release_concurrency_slots_with_lease,
)
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

from sunset.ledger import Ledger
from sunset.runs.lifecycle import take_abandoned_orchestrator_leases
from tasks.prefect_calls import current_flow_run_id

SLOT_LEASE_SECONDS = 300.0


def deprecation_limit_name(model_id: str) -> str:
    """The name of the concurrency limit that admits one deprecation run of the model."""
    return f"deprecate-{model_id}"


@contextmanager
def one_deprecation_per_model(
    model_id: str, ledger: Ledger, recheck_seconds: float
) -> Iterator[str]:
    """Hold the model's single deprecation slot for the block; yield the slot's lease id.

    While another run holds the slot, wait, and every ``recheck_seconds`` free the slot
    if the ledger shows its holder died.
    """
    name = deprecation_limit_name(model_id)
    logger = get_run_logger()
    with get_client(sync_client=True) as client:
        limit = _ensure_single_slot_limit(client, name)
        if limit.active_slots >= limit.limit:
            logger.info(
                "Another deprecation run of %s holds the concurrency limit %s; this run "
                "waits until it ends and then starts (or resumes) from preflight.",
                model_id,
                name,
            )
    holder = ConcurrencyLeaseHolder(type="flow_run", id=current_flow_run_id())
    while True:
        _free_slots_of_dead_runs(ledger, model_id, name)
        try:
            acquired = acquire_concurrency_slots_with_lease(
                [name],
                1,
                timeout_seconds=recheck_seconds,
                lease_duration=SLOT_LEASE_SECONDS,
                strict=True,
                holder=holder,
            )
        except TimeoutError:
            continue
        break
    try:
        with maintain_concurrency_lease(
            acquired.lease_id, SLOT_LEASE_SECONDS, raise_on_lease_renewal_failure=True
        ):
            yield str(acquired.lease_id)
    finally:
        release_concurrency_slots_with_lease(acquired.lease_id)


def _free_slots_of_dead_runs(ledger: Ledger, model_id: str, limit_name: str) -> None:
    for lease_id in take_abandoned_orchestrator_leases(ledger, model_id):
        # Releasing a lease that has already expired is a no-op on the server.
        release_concurrency_slots_with_lease(UUID(lease_id))
        get_run_logger().warning(
            "Freed the %s slot held by a run of %s whose process stopped (its ledger lease "
            "lapsed).",
            limit_name,
            model_id,
        )


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
