"""`sunset reinstate` and `sunset drill`: a model back from its preserved package."""

from __future__ import annotations

import getpass
from typing import TYPE_CHECKING, Annotated

import typer

from sunset.cli.edge import plain_errors
from sunset.cli.output import console, show_drill, show_reinstatement

if TYPE_CHECKING:
    from sunset.config import Settings
    from sunset.preservation.drill import DrillSummary


def reinstate(
    model: Annotated[str, typer.Argument(help="Catalog id of the retired model.")],
    to: Annotated[
        str,
        typer.Option(
            "--to", help="Where to restore the weights: an empty directory or s3://BUCKET/PREFIX."
        ),
    ],
    reason: Annotated[str, typer.Option(help="Why the model comes back; it is recorded.")],
    snapshot: Annotated[
        str | None,
        typer.Option(help="The preserved snapshot to restore; default: the latest one."),
    ] = None,
    on_request: Annotated[
        bool,
        typer.Option("--on-request", help="Make it available on request instead of fully active."),
    ] = False,
    approvals: Annotated[
        int, typer.Option(help="Distinct approvers (0, 1 or 2) needed before the flip.")
    ] = 0,
) -> None:
    """Bring a retired MODEL back: re-verify its preserved package, restore the weights,
    check every restored file against the manifest, then make it active (or on request).
    """
    from sunset.cli.local_runs import outcome_of, prepare_prefect, settings_for_flow_run
    from sunset.config import Settings
    from sunset.ledger import open_ledger
    from sunset.preservation.replicas import connect_store
    from sunset.preservation.restore import (
        ReinstatementRequest,
        open_destination,
        plan_reinstatement,
    )

    with plain_errors():
        settings = Settings()
        request = ReinstatementRequest(
            model_id=model,
            destination=to,
            reason=reason,
            snapshot_id=snapshot,
            status="on_request" if on_request else "active",
            approvals=approvals,
        )
        # Checked here for a fast answer, against the store the flow restores from.
        destination = open_destination(
            to, connect_store(settings).primary, settings.data_dir / "restore-spool"
        )
        plan_reinstatement(open_ledger(settings.ledger_url), request, destination)
        prepare_prefect(settings)
        from flows.reinstate import reinstate_model

        console.print(f"Reinstating {model}: the Prefect flow is starting ...")
        with settings_for_flow_run(settings):
            final = reinstate_model(
                **request.parameters(), requested_by=getpass.getuser(), return_state=True
            )
        outcome = outcome_of(final)
        if outcome is not None:
            show_reinstatement(outcome)


def drill(
    model: Annotated[str, typer.Argument(help="The model whose preserved package to drill.")],
    snapshot: Annotated[
        str | None,
        typer.Option(help="The package (snapshot id) to drill; default: the latest one."),
    ] = None,
) -> None:
    """Prove that MODEL's preserved package alone brings the model back.

    Restores the package from the bucket into a fresh directory, verifies every file
    against the manifest, loads the model from the restored files only, replays the
    fingerprint recorded at deprecation (deprecate --fingerprint) and compares the tokens.
    Exits 1 naming the prompt if the model no longer answers as it did. Every drill is
    recorded in the ledger; `sunset status MODEL` shows the last one. Needs
    pip install 'sunset[local-model]'.
    """
    from sunset.config import Settings

    with plain_errors():
        show_drill(run_drill(Settings(), model, snapshot))


def run_drill(settings: Settings, model_id: str, snapshot_id: str | None) -> DrillSummary:
    """Check in-process that a drill can start, then run the drill flow (starting Prefect)."""
    from sunset.cli.local_runs import prepare_prefect, settings_for_flow_run
    from sunset.ledger import open_ledger
    from sunset.local_model import require_runtime
    from sunset.preservation.drill import drill_target

    require_runtime()
    drill_target(open_ledger(settings.ledger_url), model_id, snapshot_id)
    prepare_prefect(settings)
    from flows.drill import resurrection_drill

    console.print(f"Resurrection drill of {model_id}: the Prefect flow is starting ...")
    with settings_for_flow_run(settings):
        return resurrection_drill(model_id, snapshot_id)
