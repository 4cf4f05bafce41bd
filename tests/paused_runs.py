"""Running a flow in a background thread and waiting until it pauses for an approval."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from prefect import get_client
from sqlmodel import func, select

from sunset.ledger import Approval, DeprecationRun, Ledger


@contextmanager
def in_background(fn: Callable[..., Any], **kwargs: Any) -> Iterator[Future[Any]]:
    """Start ``fn(**kwargs)`` in a thread; the block ends only once it has finished."""
    with ThreadPoolExecutor(1, thread_name_prefix="flow") as pool:
        yield pool.submit(fn, **kwargs)


def wait_for_pause(
    ledger: Ledger, running: Future[Any], *, decisions: int = 0, timeout: float = 120.0
) -> DeprecationRun:
    """The run, once its flow run is paused after ``decisions`` recorded decisions."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running.done():
            running.result()  # raises what the flow raised
            raise AssertionError("the flow finished without pausing")
        with ledger.session() as db:
            run = db.exec(
                select(DeprecationRun)
                .where(DeprecationRun.flow_run_id.is_not(None))  # type: ignore[union-attr]
                .order_by(DeprecationRun.started_at.desc())  # type: ignore[attr-defined]
            ).first()
            recorded = db.exec(select(func.count()).select_from(Approval)).one()
        if run is not None and recorded == decisions:
            assert run.flow_run_id is not None
            with get_client(sync_client=True) as client:
                state = client.read_flow_run(UUID(run.flow_run_id)).state
            if state is not None and state.is_paused():
                return run
        time.sleep(0.3)
    raise AssertionError(f"the flow did not pause after {decisions} decision(s)")
