"""`sunset audit`: the health of every preserved package, from the ledger; with --run,
an audit first."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from sunset.cli.edge import plain_errors
from sunset.cli.output import console, show_audit_health
from sunset.errors import SunsetError

if TYPE_CHECKING:
    from sunset.config import Settings


def audit(
    run: Annotated[
        bool,
        typer.Option(
            "--run",
            help="Run an audit now, in this process, as the scheduled deployment "
            "audit-preservation/daily does, then show the health it leaves.",
        ),
    ] = False,
    deep_budget_bytes: Annotated[
        int | None,
        typer.Option(
            min=1,
            metavar="BYTES",
            help="With --run: bytes the audit may re-read for deep checks; default "
            "SUNSET_AUDIT_DEEP_BUDGET_BYTES.",
        ),
    ] = None,
    all_digests: Annotated[
        bool,
        typer.Option(
            "--all-digests",
            help="With --run: deep checks re-hash every byte with SHA-512 as well as "
            "SHA-256 and CRC64NVME.",
        ),
    ] = False,
) -> None:
    """Show the health of every preserved package, as the ledger records it.

    A table per package, a row per replica: the day since which every object passed a
    fast check (present, same size, still current) and a deep check (every byte re-read
    and re-hashed with SHA-256 and CRC64NVME; SHA-512 too with --all-digests), the share
    of its bytes deep-checked within SUNSET_AUDIT_DEEP_PERIOD_DAYS, its open findings
    (objects damaged or missing, and objects an audit could not check because the
    replica did not answer), and the day its earliest lock ends. Above: the last audit
    run and the deep-coverage clock; below: every open finding.

    With --run, exits 1 if the audit could not complete or found an object without a
    good copy.
    """
    if not run and (all_digests or deep_budget_bytes is not None):
        raise typer.BadParameter(
            "--all-digests and --deep-budget-bytes shape an audit run: add --run."
        )
    from sunset.config import Settings
    from sunset.ledger import open_ledger
    from sunset.preservation.health import coverage_clock, every_package_health, last_audit

    with plain_errors():
        settings = Settings()
        ledger = open_ledger(settings.ledger_url)  # migrated, its directory made
        ending = _run_audit(settings, deep_budget_bytes, all_digests) if run else None
        period = settings.audit_deep_period_days
        show_audit_health(
            last_audit(ledger), coverage_clock(ledger, period), every_package_health(ledger, period)
        )
        if ending is not None:
            raise SunsetError(ending)


def _run_audit(settings: Settings, deep_budget_bytes: int | None, all_digests: bool) -> str | None:
    """Run the audit flow here; None if it completed, else the sentence it ended with."""
    from sunset.cli.local_runs import prepare_prefect, settings_for_flow_run

    prepare_prefect(settings)
    from flows.audit import audit_preservation

    console.print("Auditing every preserved package: the Prefect flow is starting ...")
    with settings_for_flow_run(settings):
        state = audit_preservation(
            deep_budget_bytes=deep_budget_bytes, all_digests=all_digests, return_state=True
        )
    return None if state.is_completed() else (state.message or state.name)
