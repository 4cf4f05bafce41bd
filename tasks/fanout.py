"""Fan-out: a snapshot's files and a check's re-reads as Prefect tasks on a Dask cluster.

``SUNSET_TASK_RUNNER`` chooses where the per-file work of the snapshot, verification and
audit steps runs: ``threads`` in the step's own process (``ThreadWorkers``), ``dask`` one
Prefect task per file or object submitted to prefect-dask's ``DaskTaskRunner``, on a
local cluster of ``SUNSET_DASK_WORKERS`` processes or on the cluster at
``SUNSET_DASK_ADDRESS`` (files and objects smaller than a part stay on the step's
threads: a task run costs more than they do). The tasks return what they stored or
found; the step records it, so the ledger keeps one writer. A worker builds its clients
from its own ``SUNSET_*`` environment: no credential travels through the Dask scheduler.

A worker killed mid-file loses nothing recorded: Dask runs its task again on another
worker, which stores the file from the start (the killed one's open multipart upload is
aborted when the snapshot ends).
"""

from __future__ import annotations

import contextvars
import os
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.context import TaskRunContext

from sunset.config import Settings
from sunset.preservation.fixity import Finding
from sunset.preservation.replicas import ReplicatedStore, Upload, connect_store, weights_reader
from sunset.preservation.weights import WeightsReader
from sunset.preservation.workers import (
    FileToStore,
    ObjectToReread,
    ThreadWorkers,
    Workers,
    reread,
    store_file,
    thread_workers,
)

if TYPE_CHECKING:
    from prefect_dask import DaskTaskRunner

# Each worker thread has one unit running and one waiting, so none idles between units.
QUEUED_PER_THREAD = 2


@task(
    name="store-file",
    task_run_name="store {item.key}",
    cache_policy=NO_CACHE,
    persist_result=False,
)
def store_file_on_worker(item: FileToStore) -> Upload:
    """Store one weights file on its replicas from a Dask worker."""
    settings = Settings()
    return store_file(connect_store(settings), weights_reader(settings), item)


@task(
    name="reread-object",
    task_run_name="reread {item.replica}:{item.key}",
    cache_policy=NO_CACHE,
    persist_result=False,
)
def reread_on_worker(item: ObjectToReread) -> Finding:
    """Re-read and re-hash one object version from a Dask worker."""
    return reread(connect_store(Settings()), item)


@dataclass(frozen=True)
class DaskWorkers:
    """Units of work as Prefect tasks on a started DaskTaskRunner, for files and objects
    of a part or more; smaller ones, where a round trip costs more than the bytes and a
    task run would cost more than both, stay on the step's own threads (``local``)."""

    runner: DaskTaskRunner
    threads: int
    local: ThreadWorkers
    large_files_alone: bool = False

    @property
    def files_at_once(self) -> int:
        return max(QUEUED_PER_THREAD * self.threads, self.local.files_at_once)

    @property
    def objects_at_once(self) -> int:
        return QUEUED_PER_THREAD * self.threads

    def store_file(self, item: FileToStore) -> Future[Upload]:
        if item.source.size < self.local.store.part_size and not item.resume:
            return self.local.store_file(item)
        return self._submit(store_file_on_worker, item)

    def reread(self, item: ObjectToReread) -> Future[Finding]:
        if item.held.size < self.local.store.part_size:
            return self.local.reread(item)
        return self._submit(reread_on_worker, item)

    def _submit(self, unit: Any, item: Any) -> Future[Any]:
        submitted = contextvars.copy_context().run(_submit_in_flow_run, self.runner, unit, item)
        settled: Future[Any] = Future()

        def settle(_: object) -> None:
            try:
                settled.set_result(submitted.result())
            except BaseException as error:  # the unit's own failure, for the step to judge
                settled.set_exception(error)

        submitted.wrapped_future.add_done_callback(settle)
        return settled


def _submit_in_flow_run(runner: DaskTaskRunner, unit: Any, item: Any) -> Any:
    # The calling step's task run context goes with a submitted task, and it holds the
    # step's parameters: the Services, whose live clients cannot be pickled. Submitted
    # without it (in a copy of the context), a unit is a task of the flow run itself.
    TaskRunContext.__var__.set(None)  # type: ignore[arg-type]
    return runner.submit(unit, parameters={"item": item})


def dask_task_runner(settings: Settings) -> DaskTaskRunner:
    """The cluster at SUNSET_DASK_ADDRESS, or a local one of single-threaded processes
    (one file's parts in memory each), one per core unless SUNSET_DASK_WORKERS says."""
    # Imported here: Dask takes most of a second to import, and only a fan-out needs it.
    from prefect_dask import DaskTaskRunner

    if settings.dask_address:
        return DaskTaskRunner(address=settings.dask_address)
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={
            "n_workers": settings.dask_workers or os.cpu_count() or 1,
            "threads_per_worker": 1,
            "processes": True,
            "dashboard_address": None,
        },
    )


@contextmanager
def workers_for(
    settings: Settings, store: ReplicatedStore, weights: WeightsReader
) -> Iterator[Workers]:
    """The workers the settings choose, started for the block and stopped after it."""
    if settings.task_runner == "threads":
        with thread_workers(store, weights) as local:
            yield local
        return
    with thread_workers(store, weights) as local, dask_task_runner(settings) as runner:
        threads = sum(runner.client.nthreads().values())
        yield DaskWorkers(runner, max(threads, 1), local)
