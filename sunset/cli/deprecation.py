"""`sunset deprecate`: run a deprecation here, or hand it to a Prefect deployment."""

from __future__ import annotations

import getpass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from sunset.cli.edge import parse_date, plain_errors
from sunset.cli.output import console, escape, show_outcome
from sunset.errors import InputError, SunsetError
from sunset.runs.request import DeprecationRequest  # light: pydantic only; its fields' help

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun

    from sunset.config import Settings


def deprecate(
    model: Annotated[str, typer.Argument(help=DeprecationRequest.describe("model_id"))],
    weights: Annotated[str, typer.Option(help=DeprecationRequest.describe("weights"))],
    recipients: Annotated[
        Path | None, typer.Option(help=DeprecationRequest.describe("recipients"))
    ] = None,
    recipients_from_ledger: Annotated[
        bool,
        typer.Option(
            "--recipients-from-ledger", help=DeprecationRequest.describe("recipients_from_ledger")
        ),
    ] = False,
    retire: Annotated[
        bool, typer.Option("--retire", help=DeprecationRequest.describe("retire"))
    ] = False,
    retirement_date: Annotated[
        date | None,
        typer.Option(
            parser=parse_date,
            metavar="YYYY-MM-DD",
            help=DeprecationRequest.describe("retirement_date"),
        ),
    ] = None,
    protocol: Annotated[
        Path | None, typer.Option(help=DeprecationRequest.describe("protocol"))
    ] = None,
    sessions: Annotated[
        int | None, typer.Option(help=DeprecationRequest.describe("sessions"))
    ] = None,
    more_sessions: Annotated[
        int, typer.Option(help=DeprecationRequest.describe("more_sessions"))
    ] = 0,
    notice_override: Annotated[
        str | None, typer.Option(help=DeprecationRequest.describe("notice_override_reason"))
    ] = None,
    new_snapshot: Annotated[
        str | None,
        typer.Option(metavar="REASON", help=DeprecationRequest.describe("new_snapshot_reason")),
    ] = None,
    deployment_summary: Annotated[
        Path | None, typer.Option(help=DeprecationRequest.describe("deployment_summary"))
    ] = None,
    analysis: Annotated[
        Path | None, typer.Option(help=DeprecationRequest.describe("operator_analysis"))
    ] = None,
    via_deployment: Annotated[
        bool,
        typer.Option(
            "--via-deployment",
            help="Hand the run to the Prefect server (PREFECT_API_URL) for a worker to "
            "carry out, and print its page in the Prefect UI. Paths are read on the worker.",
        ),
    ] = False,
    wait: Annotated[
        bool,
        typer.Option("--wait", help="With --via-deployment: follow the run until it ends."),
    ] = False,
    deployment: Annotated[
        str, typer.Option(help="With --via-deployment: the deployment to run.")
    ] = "deprecate-model/manual",
    approvals: Annotated[int, typer.Option(help=DeprecationRequest.describe("approvals"))] = 0,
    fingerprint: Annotated[
        bool, typer.Option("--fingerprint", help=DeprecationRequest.describe("fingerprint"))
    ] = False,
    all_digests: Annotated[
        bool, typer.Option("--all-digests", help=DeprecationRequest.describe("all_digests"))
    ] = False,
) -> None:
    """Run a complete deprecation of MODEL: notify its users, snapshot and verify its
    weights, interview it, seal the report, then flip its serving status.

    A run that stopped halfway (a crash, a failed step) is resumed by running the same
    command again: finished steps are skipped and nobody is notified twice. Only one run
    per model goes at a time; with --via-deployment a second one waits for the first.

    A later run of the same deprecation (--retire after the announcement) reuses its
    package, re-verified, and its interview: it is refused if the weights are not the
    bytes preserved, unless --new-snapshot REASON asks for a new package, and it
    interviews again only with --more-sessions N.
    """
    from sunset.config import Settings

    with plain_errors():
        settings = Settings()
        request = DeprecationRequest(
            model_id=model,
            weights=str(weights),
            recipients=str(recipients) if recipients else None,
            recipients_from_ledger=recipients_from_ledger,
            retire=retire,
            retirement_date=retirement_date,
            protocol=str(protocol) if protocol else None,
            sessions=settings.interview_sessions if sessions is None else sessions,
            more_sessions=more_sessions,
            notice_override_reason=notice_override,
            new_snapshot_reason=new_snapshot,
            deployment_summary=str(deployment_summary) if deployment_summary else None,
            operator_analysis=str(analysis) if analysis else None,
            fingerprint=fingerprint,
            all_digests=all_digests,
            approvals=approvals,
        )
        requested_by = getpass.getuser()
        if via_deployment:
            from sunset.cli.local_runs import keep_prefect_home

            keep_prefect_home(settings)
            _deprecate_via_deployment(request, requested_by, deployment=deployment, wait=wait)
            return
        if wait:
            raise InputError("--wait goes with --via-deployment; a local run always waits.")
        outcome = run_deprecation(settings, request, requested_by=requested_by)
        if outcome is not None:
            show_outcome(outcome)


def _deprecate_via_deployment(
    request: DeprecationRequest, requested_by: str, *, deployment: str, wait: bool
) -> None:
    """Start a flow run of the deployment; with ``wait``, follow it until it ends and say
    how it ended: Completed, Rejected or Nothing to do (exit code 0, with the state's
    message), or anything else (an error naming the state and its message)."""
    from deployments.ops import flow_run_url, start_deprecation

    # The worker reads the paths, from its own working directory.
    absolute = {
        key: str(Path(path).absolute())
        for key in ("weights", "recipients", "protocol")
        if (path := getattr(request, key))
    }
    run = start_deprecation(
        request.model_copy(update=absolute), requested_by, deployment=deployment
    )
    console.print(f"Started {run.name} on {deployment}: {flow_run_url(run.id)}", soft_wrap=True)
    if not wait:
        console.print("A worker on the `sunset` pool picks it up; follow it in the UI.")
        return
    try:
        final = _follow_to_the_end(run)
    except KeyboardInterrupt:
        console.print(f"Stopped following; the run goes on: {flow_run_url(run.id)}")
        raise typer.Exit(130) from None
    ended = f"{final.name} ended {final.state_name}"
    if final.state is None or not final.state.is_completed():
        message = final.state.message if final.state else None
        raise SunsetError(f"{ended}: {message or 'no message'}")
    if final.state.name != "Completed":  # Rejected, Nothing to do: why nothing changed
        console.print(f"{ended}: {final.state.message}", soft_wrap=True)
    else:
        console.print(
            f"{ended}. `sunset status {request.model_id}` shows the package, the report "
            "and the serving status.",
            soft_wrap=True,
        )
        # A plain Completed state has a message only for notices of unknown fate: it names
        # them and the command that settles them (flows/serving.py: ends_in_named_state).
        if final.state.message:
            console.print(
                f"[bold]Decision needed:[/] {escape(final.state.message)}", soft_wrap=True
            )


def _follow_to_the_end(run: FlowRun) -> FlowRun:
    """Follow the flow run until it ends: on a terminal, one status line kept up to date;
    elsewhere (a log, a pipe), a line each time its state or its finished steps change."""
    from deployments.ops import follow

    if console.is_terminal:
        with console.status(f"{run.name}: {run.state_name}") as status:
            return follow(run.id, lambda current, done: status.update(_progress(current, done)))
    printed: list[str] = []

    def print_changes(current: FlowRun, done: list[str]) -> None:
        line = _progress(current, done)
        if printed[-1:] != [line]:
            console.print(line, soft_wrap=True)
            printed.append(line)

    return follow(run.id, print_changes)


def _progress(run: FlowRun, done: list[str]) -> str:
    """The run's state and finished steps, and how to decide while it waits for approval."""
    line = f"{run.name}: {run.state_name}"
    if done:
        line += f"; done: {', '.join(done)}"
    if run.state is not None and run.state.is_paused():
        line += f"; waiting for approval: sunset approve {run.id} --reason TEXT (or sunset reject)"
    return line


def run_deprecation(
    settings: Settings, request: DeprecationRequest, *, requested_by: str
) -> Any | None:
    """Validate in-process for a fast answer, then run the flow (starting Prefect); its
    outcome, or None when it found nothing to do (and said so)."""
    from sunset.cli.local_runs import outcome_of, prepare_prefect, settings_for_flow_run
    from sunset.readiness import prove_services
    from sunset.runs.validation import validate_request
    from sunset.services import connect

    services = connect(settings)
    validate_request(
        services.ledger, request, settings, weights=services.weights, today=date.today()
    )
    prove_services(
        services, request.model_id, on_retry=lambda said: console.print(said, highlight=False)
    )
    prepare_prefect(settings)
    from flows.deprecate import deprecate_model

    console.print(f"Deprecating {request.model_id}: the Prefect flow is starting ...")
    with settings_for_flow_run(settings):
        return outcome_of(deprecate_model(request, requested_by=requested_by, return_state=True))
