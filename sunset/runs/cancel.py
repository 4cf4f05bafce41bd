"""Calling off a deprecation before the model is retired.

A cancellation is a run of its own (kind ``cancellation``): it holds the model like any
other run, so it is refused while another run is in progress and it supersedes the
deprecation's unfinished runs, which can then never be resumed. A deprecated model moves
back to active through the guarded flip (catalog and gateway together); the deprecation
is cancelled with its reason, the catalog forgets its dates, and everyone who was told
of it hears that it is called off.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlmodel import col, select

from sunset.config import Settings
from sunset.errors import InputError
from sunset.ledger import (
    CatalogModel,
    Deprecation,
    DeprecationRun,
    DeprecationStage,
    Ledger,
    RunState,
)
from sunset.notify.channels import Channel
from sunset.notify.message import NoticeKind
from sunset.notify.notices import NoticeSummary, notify_recipients
from sunset.runs.deprecation import (
    IN_PROGRESS,
    deprecation_of_run,
    latest_deprecation,
    move_stage,
    record_in_catalog,
)
from sunset.runs.lifecycle import begin_run
from sunset.runs.notices import deprecation_notice, told_recipients
from sunset.serving.lifecycle import ACTIVE, CANCELLATION, DEPRECATED, ON_REQUEST, RETIRED


@dataclass(frozen=True)
class CancellationStart:
    """The cancellation run, and whether it moves the model back to active."""

    run_id: str
    deprecation_id: str
    flip: bool

    @property
    def summary(self) -> dict[str, Any]:
        """What the ledger records of the step that began the run."""
        return {"deprecation": self.deprecation_id, "back_to_active": self.flip}


def cancellable(ledger: Ledger, model_id: str, reason: str) -> Deprecation:
    """The model's deprecation in progress, which a cancellation may call off.

    Raises:
        InputError: a blank reason; the model is unknown, retired, or has no deprecation
            in progress.
    """
    if not reason.strip():
        raise InputError("Say why the deprecation is cancelled with --reason; users are told it.")
    with ledger.session() as db:
        model = db.get(CatalogModel, model_id)
    if model is None:
        raise InputError(f"Model {model_id!r} is not in the catalog.")
    if model.serving_status in (RETIRED, ON_REQUEST):
        raise InputError(
            f"{model_id} is already {model.serving_status}; a retirement cannot be cancelled: "
            f"bring the model back with `sunset reinstate {model_id} --to DIR --reason TEXT`."
        )
    deprecation = latest_deprecation(ledger, model_id)
    if deprecation is not None and (
        deprecation.stage in IN_PROGRESS or _cancellation_unfinished(ledger, deprecation.id)
    ):
        return deprecation
    raise InputError(f"{model_id} has no deprecation in progress; there is nothing to cancel.")


def _cancellation_unfinished(ledger: Ledger, deprecation_id: str) -> bool:
    # Cancelled by a run that stopped before all its notices went out: it may be resumed.
    with ledger.session() as db:
        return (
            db.exec(
                select(DeprecationRun).where(
                    DeprecationRun.deprecation_id == deprecation_id,
                    DeprecationRun.kind == CANCELLATION,
                    col(DeprecationRun.state).in_([RunState.RUNNING, RunState.FAILED]),
                )
            ).first()
            is not None
        )


def begin_cancellation(
    ledger: Ledger,
    model_id: str,
    reason: str,
    *,
    flow_run_id: str | None,
    lease_seconds: int,
    requested_by: str | None,
    orchestrator_lease_id: str | None = None,
) -> CancellationStart:
    """Check the cancellation, then start (or resume) its run, a step of the deprecation.

    Raises:
        InputError: as ``cancellable``.
        RunConflict: another run of the model is in progress.
    """
    deprecation = cancellable(ledger, model_id, reason)
    with ledger.session() as db:
        model = db.get(CatalogModel, model_id)
        assert model is not None
    flip = model.serving_status == DEPRECATED
    run = begin_run(
        ledger,
        model_id=model_id,
        kind=CANCELLATION,
        parameters={"reason": reason},
        target=ACTIVE if flip else None,
        flow_run_id=flow_run_id,
        lease_seconds=lease_seconds,
        details={"requested_by": requested_by, "orchestrator_lease_id": orchestrator_lease_id},
    )
    with ledger.session() as db:
        recorded = db.get(DeprecationRun, run.id)
        assert recorded is not None
        recorded.deprecation_id = deprecation.id
        db.add(recorded)
    return CancellationStart(run.id, deprecation.id, flip)


def announce_cancellation(
    ledger: Ledger, channels: Sequence[Channel], settings: Settings, *, run_id: str, reason: str
) -> NoticeSummary:
    """The model serves as before: cancel the deprecation, clear the catalog's dates, and
    tell everyone who was told of it, with the reason."""
    deprecation = deprecation_of_run(ledger, run_id)
    move_stage(ledger, deprecation.id, DeprecationStage.CANCELLED, reason)
    record_in_catalog(ledger, deprecation.id)
    notice = deprecation_notice(ledger, deprecation, NoticeKind.CANCELLED, settings, reason=reason)
    return notify_recipients(
        ledger,
        channels,
        run_id=run_id,
        notice=notice,
        recipients=told_recipients(ledger, deprecation.id),
    )
