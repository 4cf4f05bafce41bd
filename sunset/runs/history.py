"""What the ledger says about past runs: the list with each step's attempts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import col, select

from sunset.ledger import DeprecationRun, Ledger, StepAttempt

SHORTEST_RUN_PREFIX = 8


@dataclass(frozen=True)
class AttemptLine:
    """One attempt at one step of a run."""

    step: str
    attempt: int
    state: str


@dataclass(frozen=True)
class RunLine:
    """A run as the run list shows it, with its attempts in the order they started."""

    id: str
    model_id: str
    state: str
    started_at: datetime
    finished_at: datetime | None
    error: str | None
    attempts: list[AttemptLine]


def run_history(ledger: Ledger, model_id: str | None = None) -> list[RunLine]:
    """Every run, or every run of ``model_id``, the latest first."""
    runs = select(DeprecationRun).order_by(col(DeprecationRun.started_at).desc())
    attempts = (
        select(StepAttempt.run_id, StepAttempt.step, StepAttempt.attempt, StepAttempt.state)
        .join(DeprecationRun)
        .order_by(col(StepAttempt.id))
    )
    if model_id is not None:
        runs = runs.where(DeprecationRun.model_id == model_id)
        attempts = attempts.where(DeprecationRun.model_id == model_id)
    with ledger.session() as db:
        found = db.exec(runs).all()
        by_run: dict[str, list[AttemptLine]] = {}
        for run_id, step, attempt, state in db.exec(attempts):
            by_run.setdefault(run_id, []).append(AttemptLine(step, attempt, str(state)))
    return [
        RunLine(
            id=run.id,
            model_id=run.model_id,
            state=str(run.state),
            started_at=run.started_at,
            finished_at=run.finished_at,
            error=run.error,
            attempts=by_run.get(run.id, []),
        )
        for run in found
    ]
