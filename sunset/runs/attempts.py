"""The record of every attempt at every step, failed ones with their error.

Deprecation steps are recorded in ``step_attempts``, audit steps in ``audit_attempts``;
the two tables have the same shape and differ only in the run they belong to.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlmodel import func, select

from sunset.ledger import AttemptState, AuditAttempt, Ledger, StepAttempt, utcnow

AttemptTable = type[StepAttempt] | type[AuditAttempt]


@dataclass
class Attempt:
    """An attempt in progress; set ``result`` to have it summarised in the ledger."""

    id: int
    number: int
    result: Any = None


@contextmanager
def record_attempt(
    ledger: Ledger,
    *,
    run_id: str,
    step: str,
    flow_run_id: str | None,
    table: AttemptTable = StepAttempt,
) -> Iterator[Attempt]:
    """Record the attempt as running now, then as completed or failed with its error."""
    with ledger.session() as db:
        previous = db.exec(
            select(func.count()).where(table.run_id == run_id, table.step == step)
        ).one()
        row = table(run_id=run_id, step=step, attempt=previous + 1, flow_run_id=flow_run_id)
        db.add(row)
        db.flush()
        assert row.id is not None
        attempt = Attempt(row.id, row.attempt)
    try:
        yield attempt
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"
        _close(ledger, table, attempt.id, AttemptState.FAILED, None, error)
        raise
    _close(ledger, table, attempt.id, AttemptState.COMPLETED, summarize(attempt.result), None)


def summarize(result: Any) -> dict[str, Any] | None:
    """A JSON-ready summary of a step's result."""
    if result is None:
        return None
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        fields = dataclasses.asdict(result)
    elif isinstance(result, dict):
        fields = result
    else:
        fields = {"result": result}
    return {key: _plain(value) for key, value in fields.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def _close(
    ledger: Ledger,
    table: AttemptTable,
    attempt_id: int,
    state: AttemptState,
    summary: dict[str, Any] | None,
    error: str | None,
) -> None:
    with ledger.session() as db:
        row = db.get(table, attempt_id)
        assert row is not None
        row.state, row.summary, row.error, row.finished_at = state, summary, error, utcnow()
        db.add(row)
