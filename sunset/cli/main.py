"""The ``sunset`` command: every command group, in the order `sunset --help` lists them.

Each command parses its options, calls a named core function and prints the result; it
loads settings once, at this edge, and turns any failure into one sentence on stderr and
exit code 1 (a usage mistake: one sentence and exit code 2).

The modules of ``sunset.cli`` import at their top only what building the commands needs
(Typer, option types and help texts, ``DeprecationRequest`` for the deprecation's
options, the light ``edge`` and ``output``). The core, Prefect, ``flows/``,
``deployments/`` and the development harness are imported inside the commands that use
them: `sunset --help` loads none of them, and `sunset status` and `sunset runs` load the
ledger and its reads but no store, gateway, model client or templates
(bench/cli_latency.py measures them).
"""

from __future__ import annotations

import atexit
import gc

import typer

from sunset.cli.edge import OneLineUsageErrors, collector_paused

with collector_paused():
    from sunset.cli import (
        audit,
        catalog,
        deliveries,
        demo,
        deprecation,
        model_server,
        notices,
        ops,
        preferences,
        report,
        restore,
        runs,
        site,
        users,
    )

# When the process ends, Python's last garbage collections walk every object SQLAlchemy
# and pydantic made (about 0.1 s, a fifth of `sunset status`) to free memory that the
# end of the process frees anyway: freezing them first skips the walk.
atexit.register(gc.freeze)

app = typer.Typer(
    help="Sunset retires an AI model without closing the door: it notifies the model's users, "
    "preserves and verifies its weights, interviews it, seals a post-deployment report, and "
    "only then changes its serving status.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=OneLineUsageErrors,
    # Help is Click's plain text: Rich markup would eat brackets such as
    # 'sunset[local-model]', and Rich panels break docstrings at their source lines.
    rich_markup_mode=None,
)
app.command()(catalog.register)
app.command()(deprecation.deprecate)
app.command()(demo.demo)
app.command()(catalog.status)
app.command()(runs.runs)
app.command()(report.report)
app.command()(preferences.preferences)
app.command()(preferences.preference)
app.command()(notices.reschedule)
app.command()(notices.cancel)
app.command()(notices.remind)
app.command()(runs.approve)
app.command()(runs.reject)
app.command()(restore.reinstate)
app.command()(restore.drill)
app.command()(site.site)
app.command()(audit.audit)
app.command("model-server")(model_server.model_server)
app.add_typer(deliveries.deliveries_app, name="deliveries")
app.add_typer(users.users_app, name="users")
app.add_typer(ops.ops_app, name="ops")
