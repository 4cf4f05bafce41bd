"""One deprecation run per model, held by a Prefect global concurrency limit.

Each model has its own limit, ``deprecate-<model-id>``, with one slot: two runs for the
same model queue up, whichever way they were started (CLI, deployment, UI), while runs
for different models proceed side by side. The limit is made the first time a model is
deprecated, so no operator has to create one per model; ``strict=True`` still refuses to
run unguarded if it vanished in between.

The slot is leased (renewed while the run lives), and the run records the lease id in the
ledger. A process killed outright cannot give its slot back. The run waiting for the slot
takes it back as soon as it has proof that the holder is dead:

- the ledger's: the dead run's own lease lapsed, so the slot lease it recorded is freed;
- Prefect's: the slot's lease expired (a holder killed before its lease id reached the
  ledger). A Prefect server's Repossessor revokes expired leases; the temporary server
  that ``sunset deprecate`` starts runs none, and it dies with the process that started
  it. Its leases are kept in files under PREFECT_HOME (``PREFECT_DEFAULTS``), so the next
  temporary server still knows them, and the waiting run does the Repossessor's work for
  this one limit (``_TemporaryServerRepossessor``), and gives back a slot that no lease
  holds at all.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from uuid import UUID

from prefect import get_client, get_run_logger
from prefect.client.base import ServerType
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

# The temporary server's own lease storage, read from this process (pinned likewise).
from prefect.server.concurrency.lease_storage import get_concurrency_lease_storage
from prefect.server.concurrency.lease_storage.memory import (
    ConcurrencyLeaseStorage as InMemoryLeaseStorage,
)

from sunset.ledger import Ledger
from sunset.runs.lifecycle import take_abandoned_orchestrator_leases
from tasks.prefect_calls import current_flow_run_id

# Prefect grants no shorter lease. A slot's lease lasts as long as the run's ledger lease,
# or this if longer: a holder killed before its lease id reached the ledger keeps the slot
# that long. Renewal (every three quarters of it) keeps live holders'.
SHORTEST_SLOT_LEASE_SECONDS = 60.0
# How often a waiting run looks again for a free slot, or for proof that its holder died.
RECHECK_SECONDS = 2.0
# Asking for a slot seen free: time for a slow server to answer, or for Prefect's own wait
# (at most 30 s) if another run took the slot first.
ACQUIRE_TIMEOUT_SECONDS = 45.0


def deprecation_limit_name(model_id: str) -> str:
    """The name of the concurrency limit that admits one deprecation run of the model."""
    return f"deprecate-{model_id}"


@contextmanager
def one_deprecation_per_model(model_id: str, ledger: Ledger, lease_seconds: int) -> Iterator[str]:
    """Hold the model's single deprecation slot for the block; yield the slot's lease id.

    ``lease_seconds`` is how long a run's lease outlives its process (the ledger's run
    lease); the slot is leased as long, or Prefect's shortest lease if that is longer.
    While another run holds the slot, look again every ``RECHECK_SECONDS``, and free the
    slot once its holder is proved dead.
    """
    name = deprecation_limit_name(model_id)
    holder = ConcurrencyLeaseHolder(type="flow_run", id=current_flow_run_id())
    slot_lease_seconds = max(float(lease_seconds), SHORTEST_SLOT_LEASE_SECONDS)
    with get_client(sync_client=True) as client:
        limit = _ensure_single_slot_limit(client, name)
        if limit.active_slots >= limit.limit:
            get_run_logger().info(
                "Another deprecation run of %s holds the concurrency limit %s; this run "
                "waits until it ends and then starts (or resumes) from preflight.",
                model_id,
                name,
            )
        repossessor = _TemporaryServerRepossessor.for_server_of(client, limit)
        while True:
            _free_slots_of_dead_runs(ledger, model_id, name)
            if repossessor is not None:
                repossessor.take_back_stranded_slots()
            # Ask for the slot only when it is free: Prefect's own wait would sleep for as
            # long as its Retry-After says, past the moment the ledger proves a holder dead.
            if client.read_global_concurrency_limit_by_name(name).active_slots < limit.limit:
                try:
                    acquired = acquire_concurrency_slots_with_lease(
                        [name],
                        1,
                        timeout_seconds=ACQUIRE_TIMEOUT_SECONDS,
                        lease_duration=slot_lease_seconds,
                        strict=True,
                        holder=holder,
                    )
                except TimeoutError:  # another run took the slot first
                    pass
                else:
                    break
            time.sleep(RECHECK_SECONDS)
    try:
        with maintain_concurrency_lease(
            acquired.lease_id, slot_lease_seconds, raise_on_lease_renewal_failure=True
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


class _TemporaryServerRepossessor:
    """What Prefect's Repossessor service would do for one limit, on a temporary server.

    It revokes the limit's expired leases, and gives back slots that no lease holds at
    all: left by a server killed between counting a slot and writing its lease, or by a
    Sunset whose temporary server kept its leases in memory. Such a slot is given back
    only when it is seen on two looks a recheck apart, since a live server writes the
    lease a moment after it counts the slot.
    """

    def __init__(self, client: SyncPrefectClient, limit: GlobalConcurrencyLimitResponse) -> None:
        self.client = client
        self.limit = limit
        self.storage = get_concurrency_lease_storage()
        self.unleased_before = 0

    @classmethod
    def for_server_of(
        cls, client: SyncPrefectClient, limit: GlobalConcurrencyLimitResponse
    ) -> _TemporaryServerRepossessor | None:
        """One for a temporary server whose leases this process can read, else None.

        A long-running server has a Repossessor of its own. Leases kept in memory live
        in the server's process alone: this process would find none, and must not
        conclude that nobody holds the slot.
        """
        if client.server_type != ServerType.EPHEMERAL:
            return None
        repossessor = cls(client, limit)
        if isinstance(repossessor.storage, InMemoryLeaseStorage):
            return None
        return repossessor

    def take_back_stranded_slots(self) -> None:
        logger = get_run_logger()
        leased, expired = asyncio.run(self._leases_on_the_limit())
        for lease_id in expired:
            release_concurrency_slots_with_lease(lease_id)
            logger.warning(
                "Revoked the expired lease %s on %s: its holder stopped renewing it, and "
                "the temporary Prefect server has no Repossessor to revoke it.",
                lease_id,
                self.limit.name,
            )
        active = self.client.read_global_concurrency_limit_by_name(self.limit.name).active_slots
        unleased = max(active - leased, 0)
        stranded = min(unleased, self.unleased_before)
        if stranded:
            # Held for at least the recheck it was seen over; Prefect wants some duration.
            self.client.release_concurrency_slots(
                [self.limit.name], stranded, occupancy_seconds=RECHECK_SECONDS
            )
            logger.warning(
                "Gave back %d slot(s) of %s that no lease holds: the temporary Prefect "
                "server that counted them stopped before it recorded who held them.",
                stranded,
                self.limit.name,
            )
        self.unleased_before = unleased - stranded

    async def _leases_on_the_limit(self) -> tuple[int, list[UUID]]:
        """The slots that live leases hold on the limit, and its expired leases."""
        leased = 0
        for lease_id in await self.storage.read_active_lease_ids(limit=1000):
            lease = await self.storage.read_lease(lease_id)
            if lease and self.limit.id in lease.resource_ids and lease.metadata:
                leased += lease.metadata.slots
        expired = []
        for lease_id in await self.storage.read_expired_lease_ids(limit=1000):
            lease = await self.storage.read_lease(lease_id)
            if lease and self.limit.id in lease.resource_ids:
                expired.append(lease_id)
        return leased, expired


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
