"""Which workers the settings choose for the per-file work (tasks/fanout.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sunset.config import Settings
from tasks.fanout import dask_task_runner

pytestmark = pytest.mark.unit


def test_the_run_s_own_process_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SUNSET_TASK_RUNNER", "SUNSET_DASK_ADDRESS", "SUNSET_DASK_WORKERS"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert (settings.task_runner, settings.dask_address, settings.dask_workers) == (
        "threads",
        None,
        None,
    )


def test_a_local_cluster_has_single_threaded_workers_one_per_core_unless_told(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    machine = dask_task_runner(Settings(task_runner="dask"))
    told = dask_task_runner(Settings(task_runner="dask", dask_workers=3))

    assert machine.address is None
    assert machine.cluster_kwargs["n_workers"] == 16
    assert told.cluster_kwargs["n_workers"] == 3
    assert told.cluster_kwargs["threads_per_worker"] == 1  # one file's parts per worker


def test_an_address_connects_to_that_cluster_and_starts_none() -> None:
    runner = dask_task_runner(Settings(task_runner="dask", dask_address="tcp://sched:8786"))

    assert runner.address == "tcp://sched:8786"
    assert not runner.cluster_kwargs


def test_an_address_without_the_dask_runner_is_refused_in_one_sentence() -> None:
    with pytest.raises(ValidationError, match="set SUNSET_TASK_RUNNER=dask to use that cluster"):
        Settings(dask_address="tcp://sched:8786")
