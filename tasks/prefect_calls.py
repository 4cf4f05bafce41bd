"""Prefect calls whose declared types are looser than what Sunset's synchronous code gets.

Some Prefect functions (``Block.save``, ``run_deployment``, the artifact functions) decide
when called whether to run or to hand back a coroutine, so they are typed as returning
either; and the runtime's flow run id is typed as maybe missing, though inside a flow
run it never is. These helpers give such calls the one type Sunset relies on.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar
from uuid import UUID

from prefect.runtime import flow_run

T = TypeVar("T")


def sync_result(result: T | Coroutine[Any, Any, T]) -> T:
    """The value of a Prefect call that runs synchronously unless an event loop is running.

    Raises:
        RuntimeError: the call was made in an event loop, so it returned a coroutine;
            there, await the call's ``a``-prefixed twin instead.
    """
    if isinstance(result, Coroutine):
        result.close()  # never to be awaited; closing it spares the "never awaited" warning
        raise RuntimeError(
            "A Prefect call returned a coroutine: it ran in an event loop, where Sunset's "
            "synchronous code must not run."
        )
    return result


def current_flow_run_id() -> UUID:
    """The id of the flow run this code runs in, directly or in one of its tasks.

    Raises:
        RuntimeError: no flow run is running.
    """
    flow_run_id = flow_run.get_id()
    if flow_run_id is None:
        raise RuntimeError("Not inside a Prefect flow run, so there is no flow run id.")
    return UUID(flow_run_id)
