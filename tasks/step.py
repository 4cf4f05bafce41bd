"""``@step``: the one way a Sunset task is made.

It pins what every step needs: retries with exponential backoff and jitter, a retry
condition that retries only what can succeed later, a cache scoped to the deprecation run
(a resumed run skips the steps it finished), and a ledger record of every attempt.

``@audit_step`` is its twin for the preservation audit, which is not a deprecation run:
the same retries, never cached (an audit looks at the store as it is now), and every
attempt recorded against the audit run in ``audit_attempts``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.context import TaskRunContext
from prefect.runtime import flow_run
from prefect.states import State
from prefect.tasks import exponential_backoff

from sunset.errors import is_transient
from sunset.ledger import AuditAttempt
from sunset.runs.attempts import record_attempt

P = ParamSpec("P")
R = TypeVar("R")


def step(
    name: str, *, retries: int = 3, backoff_s: float = 1.0, cache: bool = True
) -> Callable[[Callable[P, R]], Task[P, R]]:
    """Make a Prefect task of ``fn(services, run_id, ...)`` with Sunset's step defaults.

    Args:
        name: The step's name in the ledger and in the Prefect UI.
        retries: How many times a transient failure is retried.
        backoff_s: The first retry delay; each next one doubles, with 50% jitter.
        cache: Reuse the step's result when its run is resumed. Off for checks whose
            answer can change (verification) and for the serving flip.
    """

    def decorate(fn: Callable[P, R]) -> Task[P, R]:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def recorded(*args: P.args, **kwargs: P.kwargs) -> R:
            bound = signature.bind(*args, **kwargs)
            services, run_id = bound.arguments["services"], bound.arguments["run_id"]
            with record_attempt(
                services.ledger, run_id=run_id, step=name, flow_run_id=flow_run.get_id()
            ) as attempt:
                attempt.result = fn(*args, **kwargs)
            return attempt.result  # type: ignore[no-any-return]

        options = _retry_options(name, retries, backoff_s)
        if cache:
            options |= {"cache_key_fn": _run_scoped_key, "persist_result": True}
        else:
            options |= {"cache_policy": NO_CACHE, "persist_result": False}
        return task(**options)(recorded)

    return decorate


def audit_step(
    name: str, *, retries: int = 2, backoff_s: float = 1.0
) -> Callable[[Callable[P, R]], Task[P, R]]:
    """Make a Prefect task of ``fn(services, audit_id, ...)`` for the preservation audit.

    Args:
        name: The step's name in the ledger and in the Prefect UI.
        retries: How many times a transient failure is retried.
        backoff_s: The first retry delay; each next one doubles, with 50% jitter.
    """

    def decorate(fn: Callable[P, R]) -> Task[P, R]:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def recorded(*args: P.args, **kwargs: P.kwargs) -> R:
            bound = signature.bind(*args, **kwargs)
            services, audit_id = bound.arguments["services"], bound.arguments["audit_id"]
            with record_attempt(
                services.ledger,
                run_id=audit_id,
                step=name,
                flow_run_id=flow_run.get_id(),
                table=AuditAttempt,
            ) as attempt:
                attempt.result = fn(*args, **kwargs)
            return attempt.result  # type: ignore[no-any-return]

        options = _retry_options(name, retries, backoff_s)
        options |= {"cache_policy": NO_CACHE, "persist_result": False}
        return task(**options)(recorded)

    return decorate


def _retry_options(name: str, retries: int, backoff_s: float) -> dict[str, Any]:
    return {
        "name": name,
        "retries": retries,
        "retry_delay_seconds": exponential_backoff(backoff_factor=backoff_s),
        "retry_jitter_factor": 0.5,
        "retry_condition_fn": _retry_if_transient,
    }


def _run_scoped_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    # Prefect's cache outlives flow runs; keyed by the deprecation run it serves exactly
    # the run it belongs to, including its resumption after a crash.
    return f"sunset:{parameters['run_id']}:{context.task.name}"


def _retry_if_transient(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    try:
        state.result()
    except Exception as exc:  # the step's own exception, re-raised by the state
        return is_transient(exc)
    return False
