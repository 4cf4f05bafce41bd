"""`sunset runs`, `sunset approve` and `sunset reject`: the runs, and the decision a
waiting run asks for."""

from __future__ import annotations

import getpass
from typing import Annotated

import typer

from sunset.cli.edge import collector_paused, plain_errors
from sunset.cli.output import console, show_runs
from sunset.errors import SunsetError

# `approve` and `reject` take the same run and approver.
WaitingRun = Annotated[
    str,
    typer.Argument(
        help="The waiting run: the Prefect flow run id (as `deprecate --via-deployment` "
        "prints it) or the Sunset run id (as `sunset runs` shows it), whole or its first "
        "8+ characters."
    ),
]
Approver = Annotated[
    str | None,
    typer.Option(
        "--as",
        help="Your name as recorded; default: your login. Who ran the command (your "
        "Prefect account, else your login) is recorded beside it.",
    ),
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
    # Only the ledger's tables and reads: no store, gateway or model client.
    with collector_paused():
        from sunset.config import Settings
        from sunset.ledger import open_existing_ledger
        from sunset.runs.history import run_history

    with plain_errors():
        show_runs(run_history(open_existing_ledger(Settings().ledger_url), model), wide=wide)


def approve(
    run: WaitingRun,
    reason: Annotated[str, typer.Option(help="Why you approve; it is recorded.")],
    approver: Approver = None,
) -> None:
    """Approve a run that waits for approval before it changes a serving status.

    Needs only PREFECT_API_URL, pointing at the Prefect server the run is on. With two
    approvals required, a second, different person approves too: one person counts once,
    whatever names they type. Says whether the run continues or how many approvals it
    still waits for.
    """
    with plain_errors():
        _decide(run, "approve", reason, approver)


def reject(
    run: WaitingRun,
    reason: Annotated[str, typer.Option(help="Why you reject; it is recorded.")],
    approver: Approver = None,
) -> None:
    """Reject a run that waits for approval: it ends as Rejected and the serving status
    stays.

    Needs only PREFECT_API_URL, pointing at the Prefect server the run is on.
    """
    with plain_errors():
        _decide(run, "reject", reason, approver)


def _decide(run: str, decision: str, reason: str, approver: str | None) -> None:
    """Answer the approval form of the waiting run ``run`` names, as ``approver`` (by
    default, the current login), then say what the decision did."""
    from sunset.cli.local_runs import keep_prefect_home
    from sunset.config import Settings

    keep_prefect_home(Settings())
    from deployments.approvals import (
        await_outcome,
        decider_identity,
        find_waiting_run,
        submit_decision,
    )
    from deployments.ops import flow_run_url

    waiting = find_waiting_run(run)
    identity = decider_identity()
    approver = approver or getpass.getuser()
    outcome_key = submit_decision(
        waiting.flow_run_id,
        approver=approver,
        identity=identity,
        decision=decision,
        reason=reason,
    )
    which = f"run {waiting.run_id or waiting.flow_run_id} ({waiting.model_id or waiting.name})"
    outcome = await_outcome(waiting.flow_run_id, outcome_key)
    if outcome is None:
        raise SunsetError(
            f"Sent {approver}'s decision to {decision} {which}, but the run has not "
            "recorded it within a minute; is its worker running? Its page shows when it "
            f"does: {flow_run_url(waiting.flow_run_id)}"
        )
    decided = "approved" if decision == "approve" else "rejected"
    console.print(
        f"Recorded: {approver} ({identity}) {decided} {which}; {outcome.outcome()}",
        soft_wrap=True,
    )
