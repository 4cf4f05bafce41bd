"""What the commands print: tables of the ledger's records and of a run's outcome.

Results go to stdout; progress and errors go to stderr, so that a report can be piped.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:  # the records' own modules load with the command that reads them
    from sunset.catalog import DeprecationRecord, ModelRecord, PackageStanding
    from sunset.ledger import AuditRun, CatalogModel, InterviewPreference, ServingStatus
    from sunset.notify.recipients import Recipient
    from sunset.preservation.drill import DrillSummary
    from sunset.preservation.health import CoverageClock, PackageHealth, ReplicaHealth
    from sunset.runs.history import RunLine

console = Console()
errors = Console(stderr=True, soft_wrap=True)  # a sentence must survive grep and logs


def when(moment: datetime | None) -> str:
    """A recorded moment as the tables show it; empty if there is none."""
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else ""


def run_id_shown(run_id: str, wide: bool) -> str:
    """A run id as the tables show it: its first characters, which every command that
    takes a run id accepts, or the whole id when ``wide``."""
    from sunset.runs.history import SHORTEST_RUN_PREFIX

    return run_id if wide else run_id[:SHORTEST_RUN_PREFIX]


def listing_table(title: str) -> Table:
    """A table of records, one a row, without an outer frame: the width goes to the text."""
    return Table(title=title, show_edge=False, pad_edge=False)


def facts_table(title: str) -> Table:
    """A two-column table of named facts: names in bold, both columns wrapped, not cut."""
    table = Table(title=title, show_header=False)
    table.add_column(style="bold", overflow="fold")
    table.add_column(overflow="fold")
    return table


def show_catalog(models: Sequence[CatalogModel], *, wide: bool = False) -> None:
    """The catalog, one model a row; its release and announcement dates only when ``wide``."""
    if not models:
        console.print("The catalog is empty; add a model with `sunset register`.")
        return
    table = listing_table("Catalog")
    # The model id is what every other command takes, so it is the one column never wrapped.
    table.add_column("model", no_wrap=True)
    table.add_column("name", overflow="fold")
    table.add_column("status", overflow="fold")
    dates = ("released", "announced", "retirement") if wide else ("retirement",)
    for column in dates:
        table.add_column(column, no_wrap=True)  # a date split in two misreads
    # A successor is a model id too, but two long ids cannot share 80 columns: it folds.
    table.add_column("successor", overflow="fold")
    for m in models:
        moments = {
            "released": m.released_on,
            "announced": m.deprecation_announced_on,
            "retirement": m.retirement_on,
        }
        table.add_row(
            m.id,
            m.display_name,
            str(m.serving_status),
            *(str(moments[column] or "") for column in dates),
            m.replacement_id or "",
        )
    console.print(table)


def show_model(record: ModelRecord, *, wide: bool = False) -> None:
    """Everything recorded about one model, its status transitions last; whole run ids
    only when ``wide``."""
    model = record.model
    table = facts_table(f"{model.display_name} ({model.id})")
    table.add_row("Serving status", f"[bold]{model.serving_status}[/]")
    table.add_row("Released", str(model.released_on or "not recorded"))
    table.add_row("Deprecation announced", str(model.deprecation_announced_on or "not yet"))
    table.add_row("Retirement date", str(model.retirement_on or "not set"))
    table.add_row("Successor", model.replacement_id or "none named")
    table.add_row("Model class", model.model_class or "none (general minimum notice)")
    if record.package is not None:
        table.add_row(*package_row(record.package))
        if record.package.snapshot.manifest_sha256:
            table.add_row("Manifest digest", record.package.snapshot.manifest_sha256)
    if record.report is not None:
        table.add_row("Report", f"v{record.report.version}: {record.report.local_path}")
    for d in record.deliveries:
        table.add_row(
            f"Notices by {d.channel} (run {run_id_shown(d.run_id, wide)})",
            f"{d.sent} sent, {d.failed} failed, {d.unconfirmed} unconfirmed, "
            f"{d.skipped} without an address",
        )
    for a in record.approvals:
        table.add_row(
            f"{when(a.decided_at)}",
            escape(
                f"{a.approver}: {a.decision} {a.target_status} "
                f"(run {run_id_shown(a.run_id, wide)}): {a.reason}"
                + ("" if a.counted else " [not counted: same approver twice]")
            ),
        )
    if record.fingerprint is not None:
        fingerprint = record.fingerprint
        table.add_row(
            "Fingerprint",
            f"{len(fingerprint.prompts)} prompts, {fingerprint.path}, recorded "
            f"{when(fingerprint.recorded_at)}",
        )
    if record.drill is not None:
        drill = record.drill
        table.add_row(
            "Last resurrection drill",
            f"[bold]{drill.outcome}[/] {when(drill.finished_at)}: package {drill.snapshot_id} "
            f"from s3://{drill.bucket}, {drill.prompts_matched} of {drill.prompts_checked} "
            f"prompts reproduced{escape(f'; {drill.detail}') if drill.outcome != 'passed' else ''}",
        )
    for t in record.transitions:
        undone = (
            f" [red](rolled back: {escape(t.rollback_reason or '')})[/]" if t.rolled_back_at else ""
        )
        table.add_row(
            f"{when(t.at)}",
            escape(f"{t.from_status} -> {t.to_status} by {t.actor}: {t.reason}") + undone,
        )
    console.print(table)
    if record.deprecation is not None:
        show_deprecation(model.id, record.deprecation, wide=wide)


def show_deprecation(model_id: str, record: DeprecationRecord, *, wide: bool = False) -> None:
    """A model's deprecation: its stage, dates and package, then the runs that belong to
    it, oldest first (short run ids unless ``wide``)."""
    from sunset.runs.deprecation import run_purpose

    deprecation, package = record.deprecation, record.package
    table = facts_table(f"Deprecation of {model_id}")
    table.add_row("Stage", f"[bold]{deprecation.stage}[/]")
    table.add_row("Announced", str(deprecation.announced_on or "not yet"))
    table.add_row("Retirement date", str(deprecation.retirement_on))
    table.add_row(
        "Package", f"s3://{package.bucket}/{package.prefix}" if package else "none stored yet"
    )
    if deprecation.reason:
        table.add_row("Reason", escape(deprecation.reason))
    console.print(table)
    runs = listing_table("Runs of this deprecation")
    runs.add_column("run", no_wrap=True)
    runs.add_column("kind", no_wrap=True)
    runs.add_column("state", overflow="fold")
    runs.add_column("started", overflow="fold")
    for run in record.runs:
        runs.add_row(
            run_id_shown(run.id, wide), run_purpose(run), str(run.state), when(run.started_at)
        )
    console.print(runs)


def package_row(package: PackageStanding) -> tuple[str, str]:
    """A package's name and location, and how far it got: only a verified one is preserved."""
    snapshot = package.snapshot
    location = f"s3://{snapshot.bucket}/{snapshot.prefix}"
    if package.verified:
        return "Preserved package", f"{location} verified"
    if package.stored:
        return "Package", f"{location} stored, not verified"
    stored = f"{package.files_stored}"
    if package.files_expected:  # unknown for packages begun before it was recorded
        stored += f" of {package.files_expected}"
    return (
        "Package (incomplete)",
        f"{location}: {stored} files stored, not verified "
        f"(run {snapshot.run_id[:8]} {package.run_state})",
    )


def show_status_at(model_id: str, moment: datetime, status: ServingStatus | None) -> None:
    """The serving status a model had at a past moment (None: not yet in the catalog)."""
    at = moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    if status is None:
        console.print(f"{model_id} was not yet in the catalog at {at}.")
    else:
        console.print(f"{model_id} was [bold]{status}[/] at {at}.")


def show_runs(runs: Sequence[RunLine], *, wide: bool = False) -> None:
    """The runs, the latest first, then the error of each failed one, wrapped whole.

    Narrow, a run shows its short id and its latest step; ``wide`` shows whole ids, the
    finish time and every attempt of every step.
    """
    if not runs:
        console.print("No deprecation runs recorded yet.")
        return
    table = listing_table("Deprecation runs")
    table.add_column("run", no_wrap=True)
    # The model id is what every other command takes, so it is never wrapped.
    table.add_column("model", no_wrap=True)
    table.add_column("state", overflow="fold")
    table.add_column("started", overflow="fold")
    if wide:
        table.add_column("finished", overflow="fold")
    table.add_column("steps" if wide else "latest step", overflow="fold")
    for run in runs:
        attempts = run.attempts if wide else run.attempts[-1:]
        table.add_row(
            run_id_shown(run.id, wide),
            run.model_id,
            run.state,
            when(run.started_at),
            *([when(run.finished_at)] if wide else []),
            "\n".join(f"{a.step} #{a.attempt} {a.state}" for a in attempts),
        )
    console.print(table)
    failed = [run for run in runs if run.error]
    if failed:
        # Below the table, an error has the whole width to wrap in; in a column it was cut.
        errors_table = Table.grid(padding=(0, 1))
        errors_table.add_column(no_wrap=True)
        errors_table.add_column(overflow="fold")
        for run in failed:
            errors_table.add_row(run_id_shown(run.id, wide), escape(run.error or ""))
        console.print("Errors:")
        console.print(errors_table)


def show_outcome(outcome: Any) -> None:
    """How a deprecation run ended: the package, the report and the serving status, and
    the notices nobody knows arrived."""
    table = facts_table(f"Deprecation of {outcome.model_id} {_verdict(outcome)}")
    table.add_row("Preserved package", outcome.package)
    table.add_row("Report", outcome.report)
    table.add_row("Serving status", f"[bold]{outcome.status}[/]")
    table.add_row("Run", outcome.run_id)
    if outcome.leftovers:
        table.add_row(
            "Locked leftovers",
            "not part of the package (see the report):\n"
            + "\n".join(escape(line) for line in outcome.leftovers),
        )
    console.print(table)
    _show_unknown_deliveries(outcome)


def show_reinstatement(outcome: Any) -> None:
    """How a reinstatement run ended: what was restored where, and the serving status."""
    table = facts_table(f"Reinstatement of {outcome.model_id} {_verdict(outcome)}")
    table.add_row("Snapshot", outcome.snapshot_id)
    table.add_row("Restored to", outcome.destination)
    table.add_row("Serving status", f"[bold]{outcome.status}[/]")
    table.add_row("Run", outcome.run_id)
    console.print(table)
    _show_unknown_deliveries(outcome)


def _verdict(outcome: Any) -> str:
    if outcome.rejected_by:
        return f"rejected by {outcome.rejected_by}"
    if outcome.unknown_deliveries:
        return "complete, some notices of unknown fate"
    return "complete"


def _show_unknown_deliveries(outcome: Any) -> None:
    if outcome.unknown_deliveries:  # one line, whole, for logs and grep
        console.print(
            f"[bold]Decision needed:[/] {escape(outcome.unknown_deliveries)}", soft_wrap=True
        )


def show_drill(summary: DrillSummary) -> None:
    """What a passed resurrection drill proved."""
    table = facts_table(f"Resurrection drill of {summary.model_id} passed")
    table.add_row("Package", summary.package)
    table.add_row("Restored from", f"{summary.endpoint}, into a fresh directory")
    table.add_row(
        "Manifest",
        f"{summary.files_restored} files, {summary.bytes_restored} bytes: all match",
    )
    table.add_row("Model", f"loaded from the restored files alone in {summary.load_seconds} s")
    table.add_row(
        "Fingerprint",
        f"[bold]{summary.prompts_matched} of {summary.prompts_checked}[/] prompts "
        "reproduced token for token",
    )
    table.add_row("Runtime", ", ".join(f"{k} {v}" for k, v in summary.runtime.items()))
    console.print(table)


def show_preferences(model_id: str, found: Sequence[InterviewPreference]) -> None:
    """The preferences a model expressed, each with where it said it and what became of it."""
    if not found:
        console.print(f"No preferences recorded for {model_id}.")
        return
    table = Table(title=f"Preferences expressed by {model_id}")
    for column in ("id", "said in", "category", "quote", "status"):
        table.add_column(column, overflow="fold")
    for item in found:
        status = str(item.status)
        if item.status_reason:
            status += f": {item.status_reason} ({item.status_changed_by}, "
            status += f"{when(item.status_changed_at)})"
        table.add_row(
            str(item.id),
            escape(f"session {item.session_index}, turn {item.turn_seq} ({item.question_id})"),
            escape(item.category),
            escape(item.quote),
            escape(status),
        )
    console.print(table)


def show_preference_register(found: Sequence[InterviewPreference]) -> None:
    """Every preference of every model, one a row, within 80 columns: each quote shortened
    (`--format csv` or `json` gives it whole), what became of it and since when."""
    if not found:
        console.print("No preferences recorded yet.")
        return
    table = listing_table("Preferences of every model")
    table.expand = True
    table.add_column("id", no_wrap=True)
    table.add_column("model", overflow="fold", ratio=2)
    table.add_column("quote", overflow="fold", ratio=4)
    table.add_column("category", overflow="fold", ratio=2)
    table.add_column("status", overflow="fold", ratio=3)
    table.add_column("since", no_wrap=True)  # a date split in two misreads
    for item in found:
        status = f"{item.status}: {item.status_reason}" if item.status_reason else item.status
        since = item.status_changed_at or item.recorded_at
        table.add_row(
            str(item.id),
            item.model_id,
            escape(shortened(item.quote, QUOTE_SHOWN)),
            escape(item.category),
            escape(status),
            since.strftime("%Y-%m-%d"),
        )
    console.print(table)


#: How much of a quote the register's table shows.
QUOTE_SHOWN = 60


def shortened(text: str, limit: int) -> str:
    """``text`` on one line, cut at a word before ``limit`` characters with an ellipsis."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[: limit - 1].rsplit(" ", 1)[0] or flat[: limit - 1]
    return cut.rstrip(" ,;:") + "…"


def show_users(model_id: str, users: Sequence[Recipient]) -> None:
    """A model's users as the ledger holds them."""
    table = Table(title=f"Users of {model_id}")
    for column in ("email", "name", "webhook", "usage"):
        table.add_column(column)
    for user in users:
        table.add_row(user.email, user.name, "yes" if user.webhook_url else "", user.usage or "")
    console.print(table)


def show_operating_mode(mode: Any) -> None:
    """Where `sunset ops up` runs, and the settings another shell needs to reach it."""
    table = facts_table("Sunset operating mode (Ctrl-C stops it)")
    table.add_row("Prefect UI", mode.ui_url)
    table.add_row("Deployments", ", ".join(mode.deployments))
    table.add_row("Alerts", ", ".join(mode.alerts) or "none (no --alert-webhook)")
    console.print(table)
    console.print("In another shell, these settings reach the same server and services:")
    for key, value in mode.exports.items():
        console.print(f"export {key}={value}", highlight=False, soft_wrap=True)


def show_audit_health(
    last: AuditRun | None, clock: CoverageClock, packages: Sequence[PackageHealth]
) -> None:
    """Every stored package's health: the last audit run and the deep-coverage clock, a
    table per package (a row per replica), then every open finding, wrapped whole."""
    from sunset.ledger import utcnow
    from sunset.preservation.health import day, percent

    if last is None:
        console.print("No audit has run yet.")
    else:
        console.print(
            f"Last audit: {last.name or last.id} {last.state}, started {when(last.started_at)}",
            highlight=False,
        )
    console.print(clock.sentence(utcnow()), highlight=False)
    if not packages:
        console.print("No package is preserved yet.")
        return
    for package in packages:
        table = listing_table(f"{package.model_id}: package {package.snapshot_id}")
        table.add_column("replica", overflow="fold")
        for column in ("last fast", "last deep"):
            table.add_column(column, no_wrap=True)  # a date split in two misreads
        table.add_column("deep", justify="right", no_wrap=True)
        table.add_column("open", overflow="fold")
        table.add_column("locked to", no_wrap=True)
        for replica in package.replicas:
            table.add_row(
                replica.replica,
                day(replica.last_fast),
                day(replica.last_deep),
                percent(replica.deep_covered_bytes, replica.bytes),
                _open_cell(replica),
                day(replica.locked_until),
            )
        console.print(table)
    findings = [f for package in packages for f in package.findings]
    if findings:
        # Below the tables, a finding has the whole width to wrap in.
        console.print("Open findings:")
        lines = Table.grid(padding=(0, 1))
        lines.add_column(overflow="fold")
        for f in findings:
            lines.add_row(
                escape(
                    f"{f.snapshot_id} {f.replica}:{f.path} {f.kind} ({f.outcome}: {f.detail}), "
                    f"since {when(f.first_found_at)}, last seen {when(f.last_found_at)}"
                )
            )
        console.print(lines)


def _open_cell(replica: ReplicaHealth) -> str:
    parts = [
        f"{replica.open_damage} damaged" if replica.open_damage else "",
        f"{replica.unchecked} unchecked" if replica.unchecked else "",
    ]
    return ", ".join(p for p in parts if p) or "none"


def show_health_line(health: PackageHealth | None) -> None:
    """A model's package health in one line (nothing for a model without a package)."""
    if health is not None:
        console.print(health.one_line(), highlight=False)
