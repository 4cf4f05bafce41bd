"""The private Prefect names Sunset relies on, pinned: an upgrade that moves them fails here.

``flows/limits.py`` needs the lease id that the public ``concurrency()`` context manager
hides, so it calls the functions that context manager is made of; and on the temporary
server, which runs no Repossessor, it reads that server's lease storage itself. Prefect
may move or change those in any release; these tests say so by name instead of a flow
failing later. ``tasks/fanout.py`` clears the task run context var before it submits.
"""

from __future__ import annotations

import ast
import asyncio
import importlib
import inspect
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import prefect
import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
WRITTEN_FOR = "3.9.1"

# Module -> private-module name -> the keyword arguments Sunset passes it.
PINNED: dict[str, dict[str, set[str]]] = {
    "prefect.concurrency._leases": {
        "maintain_concurrency_lease": {
            "lease_id",
            "lease_duration",
            "raise_on_lease_renewal_failure",
        },
    },
    "prefect.concurrency._sync": {
        "acquire_concurrency_slots_with_lease": {
            "names",
            "slots",
            "timeout_seconds",
            "lease_duration",
            "strict",
            "holder",
        },
        "release_concurrency_slots_with_lease": {"lease_id"},
    },
    # Server internals read from the flow's own process (names only: a module, a factory).
    "prefect.server.concurrency.lease_storage": {"get_concurrency_lease_storage": set()},
    "prefect.server.concurrency.lease_storage.memory": {"ConcurrencyLeaseStorage": set()},
}


def _upgrade_note(what: str) -> str:
    return (
        f"{what}. flows/limits.py was written for Prefect {WRITTEN_FOR} and this is "
        f"Prefect {prefect.__version__}: find where the release moved the name (the body "
        "of prefect.concurrency.sync.concurrency shows the client's; the Repossessor, "
        "prefect/server/services/repossessor.py, the lease storage's), update "
        "flows/limits.py and this pin, and run tests/test_deprecate_flow.py and "
        "tests/test_limits.py."
    )


@pytest.mark.parametrize(
    ("module", "name"),
    [(module, name) for module, names in PINNED.items() for name in names],
)
def test_the_private_prefect_name_is_where_flows_limits_imports_it(module: str, name: str) -> None:
    try:
        found = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        pytest.fail(_upgrade_note(f"{module}.{name} is gone"))

    if PINNED[module][name]:
        missing = PINNED[module][name] - set(inspect.signature(found).parameters)
        assert not missing, _upgrade_note(f"{module}.{name} no longer takes {sorted(missing)}")


def test_every_private_prefect_import_of_the_project_is_pinned() -> None:
    imported: set[tuple[str, str]] = set()
    for folder in ("flows", "tasks", "deployments", "sunset"):
        for source in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(source.read_text())):
                if isinstance(node, ast.ImportFrom) and _is_private_prefect(node.module or ""):
                    imported |= {(node.module or "", alias.name) for alias in node.names}
                if isinstance(node, ast.Import):
                    imported |= {
                        (alias.name, "") for alias in node.names if _is_private_prefect(alias.name)
                    }

    pinned = {(module, name) for module, names in PINNED.items() for name in names}
    assert imported == pinned, "pin every private Prefect import here, and only those"


def _is_private_prefect(module: str) -> bool:
    """A private module, or the server's insides (no API promises them to a client)."""
    parts = module.split(".")
    server_side = parts[:2] == ["prefect", "server"]
    return parts[0] == "prefect" and (server_side or any(part.startswith("_") for part in parts))


def test_the_lease_storage_of_the_temporary_server_keeps_leases_for_the_next_process(
    tmp_path: Path,
) -> None:
    """What the waiting run reads (``PREFECT_DEFAULTS`` names the storage): leases made by
    one server are read by another instance, with their limit and slots, each reported
    live or expired as it is."""
    from prefect.server.concurrency.lease_storage import (
        ConcurrencyLeaseStorageModule,
        ConcurrencyLimitLeaseMetadata,
    )

    from sunset.cli.local_runs import PREFECT_DEFAULTS

    module = importlib.import_module(PREFECT_DEFAULTS["PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE"])
    assert isinstance(module, ConcurrencyLeaseStorageModule)
    limit, one_slot = uuid4(), ConcurrencyLimitLeaseMetadata(slots=1)

    async def lease_then_read_elsewhere() -> tuple[list[UUID], list[UUID], list[Any]]:
        granting = module.ConcurrencyLeaseStorage(tmp_path)
        live = await granting.create_lease([limit], timedelta(seconds=60), one_slot)
        await granting.create_lease([limit], timedelta(seconds=-1), one_slot)
        reading = module.ConcurrencyLeaseStorage(tmp_path)
        active = await reading.read_active_lease_ids(limit=1000)
        expired = await reading.read_expired_lease_ids(limit=1000)
        return active, expired, [await reading.read_lease(i) for i in [live.id, *expired]]

    active, expired, leases = asyncio.run(lease_then_read_elsewhere())
    assert len(active) == len(expired) == 1
    assert [lease.resource_ids for lease in leases] == [[limit], [limit]]
    assert [lease.metadata.slots for lease in leases] == [1, 1]


def test_the_shortest_slot_lease_is_the_shortest_prefect_grants() -> None:
    from prefect.server.api.concurrency_limits_v2 import bulk_increment_active_slots_with_lease

    from flows.limits import SHORTEST_SLOT_LEASE_SECONDS

    duration = inspect.signature(bulk_increment_active_slots_with_lease).parameters[
        "lease_duration"
    ]
    [minimum] = [m.ge for m in duration.default.metadata if hasattr(m, "ge")]
    assert minimum == SHORTEST_SLOT_LEASE_SECONDS, _upgrade_note(
        f"Prefect's shortest lease is now {minimum} s"
    )


def test_a_task_submitted_with_the_task_run_context_cleared_carries_none() -> None:
    # tasks/fanout.py submits its per-file tasks from a copy of the context with
    # TaskRunContext.__var__ cleared: the step's context holds live clients.
    import contextvars

    from prefect.context import TaskRunContext, serialize_context

    assert isinstance(TaskRunContext.__var__, contextvars.ContextVar)
    assert "TaskRunContext.get()" in inspect.getsource(serialize_context)

    def serialized() -> dict[str, Any]:
        TaskRunContext.__var__.set(None)  # type: ignore[arg-type]
        return serialize_context()

    assert contextvars.copy_context().run(serialized)["task_run_context"] == {}
