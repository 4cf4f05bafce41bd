"""``@step``: the one way a Sunset task is made.

It pins what every step needs: retries with exponential backoff and jitter, a retry
condition that retries only what can succeed later, a cache scoped to the run (a resumed
run skips the steps it finished), and a ledger record of every attempt.

Attempts are recorded against the step's run: a deprecation or reinstatement run's
``step_attempts`` by default, the preservation audit's ``audit_attempts`` with
``recorded_in=AUDIT_RUN``. A step that begins (or resumes) its run has no run to record
against until it returns, so it is recorded then (``opens_run``).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, ParamSpec, Protocol, TypeVar, cast

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.context import TaskRunContext
from prefect.runtime import flow_run
from prefect.states import State
from prefect.tasks import exponential_backoff

from sunset.errors import is_transient
from sunset.ledger import AuditAttempt, StepAttempt
from sunset.runs.attempts import Attempt, AttemptTable, record_attempt
from sunset.runs.steps import FIRST_RETRY_WAIT_S, RETRIES, RETRY_JITTER
from sunset.services import Services

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class RunAttempts:
    """Where a kind of run keeps its steps' attempts, and which parameter names the run."""

    table: AttemptTable
    run_parameter: str


DEPRECATION_RUN = RunAttempts(StepAttempt, "run_id")
AUDIT_RUN = RunAttempts(AuditAttempt, "audit_id")


class OpenedRun(Protocol):
    """What a step that opens its run returns: the run, and what its attempt records."""

    @property
    def run_id(self) -> str: ...

    @property
    def summary(self) -> dict[str, Any]: ...


def step(
    name: str,
    *,
    recorded_in: RunAttempts | None = DEPRECATION_RUN,
    opens_run: bool = False,
    retries: int = RETRIES,
    backoff_s: float = FIRST_RETRY_WAIT_S,
    cache: bool = True,
) -> Callable[[Callable[P, R]], Task[P, R]]:
    """Make a Prefect task of ``fn(services, <run parameter>, ...)`` with Sunset's defaults.

    Args:
        name: The step's name in the ledger and in the Prefect UI.
        recorded_in: The runs whose attempts table records the step; None for a step that
            cannot be recorded (say why where it is used).
        opens_run: The step begins or resumes its run and returns an ``OpenedRun``; its
            attempt is recorded once it returned, against that run.
        retries: How many times a transient failure is retried.
        backoff_s: The first retry delay; each next one doubles, with 50% jitter.
        cache: Reuse the step's result when its run is resumed. Off for checks whose
            answer can change (verification), for the serving flip and for the steps that
            decide whether a run may start.

    A call whose run parameter is None (the resurrection drill on its own, outside a
    deprecation run) is not recorded.
    """
    if cache and (recorded_in is None or opens_run):
        raise ValueError(f"Step {name} has no run before it returns, so nothing to cache by.")

    def decorate(fn: Callable[P, R]) -> Task[P, R]:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def recorded(*args: P.args, **kwargs: P.kwargs) -> R:
            if recorded_in is None:
                return fn(*args, **kwargs)
            arguments = signature.bind(*args, **kwargs).arguments
            services: Services = arguments["services"]
            if opens_run:
                result = fn(*args, **kwargs)
                opened = cast(OpenedRun, result)
                with _attempt(services, recorded_in, name, opened.run_id) as attempt:
                    attempt.result = opened.summary
                return result
            run_id = arguments.get(recorded_in.run_parameter)
            if run_id is None:
                return fn(*args, **kwargs)
            with _attempt(services, recorded_in, name, run_id) as attempt:
                attempt.result = fn(*args, **kwargs)
            return attempt.result  # type: ignore[no-any-return]

        options: dict[str, Any] = {
            "name": name,
            "retries": retries,
            "retry_delay_seconds": exponential_backoff(backoff_factor=backoff_s),
            "retry_jitter_factor": RETRY_JITTER,
            "retry_condition_fn": _retry_if_transient,
        }
        if cache:
            assert recorded_in is not None
            options |= {
                "cache_key_fn": _run_scoped_key(recorded_in.run_parameter),
                "persist_result": True,
            }
        else:
            options |= {"cache_policy": NO_CACHE, "persist_result": False}
        return task(**options)(recorded)

    return decorate


def _attempt(
    services: Services, runs: RunAttempts, name: str, run_id: str
) -> AbstractContextManager[Attempt]:
    return record_attempt(
        services.ledger,
        run_id=run_id,
        step=name,
        flow_run_id=flow_run.get_id(),
        table=runs.table,
    )


def _run_scoped_key(run_parameter: str) -> Callable[[TaskRunContext, dict[str, Any]], str]:
    # Prefect's cache outlives flow runs; keyed by the run it serves exactly the run it
    # belongs to, including its resumption after a crash.
    def key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
        return f"sunset:{parameters[run_parameter]}:{context.task.name}"

    return key


def _retry_if_transient(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    try:
        state.result()
    except Exception as exc:  # the step's own exception, re-raised by the state
        return is_transient(exc)
    return False
