"""`sunset runs`, `sunset approve` and `sunset reject`: the runs, and the decision a
waiting run asks for."""

from __future__ import annotations

import getpass
from typing import Annotated

import typer

from sunset.cli.edge import plain_errors
from sunset.cli.output import console, show_runs
from sunset.config import Settings
from sunset.errors import InputError
from sunset.ledger import open_ledger
from sunset.runs.history import find_run, run_history

# `approve` and `reject` take the same run and approver.
WaitingRun = Annotated[
    str, typer.Argument(help="The waiting run: its id (or first 8+ characters).")
]
Approver = Annotated[
    str | None, typer.Option("--as", help="Your name as recorded; default: your login.")
]
Wide = Annotated[
    bool,
    typer.Option(
        "--wide", help="Show whole run ids, every date and every step attempt, for a wide terminal."
    ),
]


def runs(
    model: Annotated[str | None, typer.Option(help="Only the runs of this model.")] = None,
    wide: Wide = False,
) -> None:
    """List deprecation runs with their state, latest step and error.

    Run ids are shortened to the first 8 characters, which approve and reject accept.
    """
    with plain_errors():
        show_runs(run_history(open_ledger(Settings().ledger_url), model), wide=wide)


def approve(
    run: WaitingRun,
    reason: Annotated[str, typer.Option(help="Why you approve; it is recorded.")],
    approver: Approver = None,
) -> None:
    """Approve a run that waits for approval before it changes a serving status.

    Needs PREFECT_API_URL pointing at the Prefect server the run is on. With two
    approvals required, a second, different person approves too.
    """
    with plain_errors():
        _decide(run, "approve", reason, approver)


def reject(
    run: WaitingRun,
    reason: Annotated[str, typer.Option(help="Why you reject; it is recorded.")],
    approver: Approver = None,
) -> None:
    """Reject a run that waits for approval: it ends cleanly and the serving status stays.

    Needs PREFECT_API_URL pointing at the Prefect server the run is on.
    """
    with plain_errors():
        _decide(run, "reject", reason, approver)


def _decide(run: str, decision: str, reason: str, approver: str | None) -> None:
    """Answer the approval form of the run whose id starts with ``run``, as ``approver``
    or, by default, the current login."""
    approver = approver or getpass.getuser()
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        raise InputError(
            "PREFECT_API_URL is not set; point it at the Prefect server the waiting run is on."
        )
    ledger_run = find_run(open_ledger(Settings().ledger_url), run)
    if ledger_run.flow_run_id is None:
        raise InputError(f"Run {ledger_run.id} has no Prefect flow run to resume.")
    from deployments.ops import submit_decision

    submit_decision(ledger_run.flow_run_id, approver=approver, decision=decision, reason=reason)
    console.print(
        f"Recorded: {approver} decided to {decision} run {ledger_run.id} "
        f"({ledger_run.model_id}); the run continues."
    )
