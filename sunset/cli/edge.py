"""Where the terminal meets Sunset: values typed on the command line, and failures turned
into one sentence on stderr: exit code 2 for a usage mistake, 1 for everything else."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, time
from typing import Any, NoReturn

import typer
from rich.markup import escape
from typer.core import TyperGroup

from sunset.cli.output import errors
from sunset.errors import SunsetError  # light, and loaded for the help texts anyway


@contextmanager
def collector_paused() -> Iterator[None]:
    """Load modules with Python's cyclic garbage collector paused, then set what they made
    aside from later collections.

    The commands, SQLAlchemy's ORM and the ledger's tables make a few hundred thousand
    objects that live as long as the process: the collector walked them over and over as
    they were made and freed nothing, a tenth of `sunset status`. Wrap imports only: a
    command's work runs with the collector on.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()  # what was loaded stays loaded: no collection needs to walk it again
        if enabled:
            gc.enable()


@contextmanager
def plain_errors() -> Iterator[None]:
    """Turn failures into one sentence and exit code 1, never a traceback."""
    try:
        yield
    except SunsetError as exc:
        show_error(str(exc))
        raise typer.Exit(1) from None
    except Exception as exc:  # a setting or a service failed in a way Sunset does not name
        show_error(unnamed_failure(exc))
        raise typer.Exit(1) from None


def show_error(sentence: str) -> None:
    """Print ``Error: sentence`` on stderr, the sentence verbatim: brackets such as
    ``sunset[local-model]`` are text, not Rich markup."""
    errors.print(f"[bold red]Error:[/] {escape(sentence)}", highlight=False)


class OneLineUsageErrors(TyperGroup):
    """The ``sunset`` command group, printed plainly: a usage mistake (an unknown option or
    command, a missing argument, a value of the wrong type) is one ``Error:`` line and where
    to find help, exit code 2, instead of Typer's usage block and framed box; the command
    list shows each command's first sentence whole."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the command line; in standalone mode, print Typer's errors as Sunset's."""
        run = super().main
        if not standalone_mode:  # the caller handles Typer's exceptions itself
            return run(args, prog_name, complete_var, False, windows_expand_args, **extra)
        try:
            ended = run(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except typer.TyperException as exc:  # Typer's usage errors (code 2) and others (1)
            show_typer_error(exc)
        except typer.Abort:  # end of input at a prompt
            show_error("Aborted.")
            sys.exit(1)
        # Outside standalone mode Typer returns the exit code a command ended with, or the
        # command's return value: None, as Sunset's commands print rather than return.
        sys.exit(ended if isinstance(ended, int) else 0)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """List the commands with the whole first sentence of each, wrapped to the
        terminal, where Click would cut it at 80 columns."""
        rows = [
            (name, command.get_short_help_str(limit=sys.maxsize))
            for name in self.list_commands(ctx)
            if (command := self.get_command(ctx, name)) is not None and not command.hidden
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def show_typer_error(exc: typer.TyperException) -> NoReturn:
    """Print an error Typer raised as one ``Error:`` line, and the command's help option
    for a usage mistake, then exit with Typer's code for it (2 for a usage mistake)."""
    # Typer exports no usage-error class since it vendored Click; it names this one too.
    if type(exc).__name__ == "NoArgsIsHelpError":  # a bare group: its help, as before
        typer.echo(exc.format_message(), err=True)
        sys.exit(exc.exit_code)
    show_error(exc.format_message())
    context = getattr(exc, "ctx", None)  # the command a usage mistake was made in
    if context is not None and context.command.get_help_option(context) is not None:
        errors.print(
            f"Try '{context.command_path} {context.help_option_names[0]}'.",
            highlight=False,
            markup=False,
        )
    sys.exit(exc.exit_code)


def unnamed_failure(exc: Exception) -> str:
    """One sentence for an error Sunset does not raise itself."""
    from pydantic import ValidationError

    from sunset.config import ENV_PREFIX, Settings

    if isinstance(exc, ValidationError) and exc.title == Settings.__name__:
        first = exc.errors()[0]
        name = ENV_PREFIX + "_".join(str(part) for part in first["loc"]).upper()
        return f"The setting {name} is invalid: {first['msg']}; fix it and run again."
    # Drivers add indented hints and links on further lines; the first says what failed.
    problem = (str(exc).strip().splitlines() or [""])[0].rstrip(".")
    # A module's error class is often just `Error` (csv, shutil): after the "Error:" the
    # line starts with, its module says what failed.
    kind = type(exc).__name__
    if kind == "Error":
        kind = f"{type(exc).__module__}.{kind}"
    return (
        f"{kind}: {problem}. Check the service settings (SUNSET_*) and that "
        "the services are reachable, then run again."
    )


def parse_date(value: str) -> date:
    """A date typed as YYYY-MM-DD: the ``parser`` of date options, so that a value that is
    not a date is a usage mistake, refused before the command runs.

    Raises:
        typer.BadParameter: the value is not a date.
    """
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date; write it as YYYY-MM-DD.") from None


def parse_moment(value: str) -> datetime:
    """A moment typed after --at: a date (the end of that day, UTC) or an ISO date and time
    (UTC unless it names its offset). The ``parser`` of --at, like :func:`parse_date`.

    Raises:
        typer.BadParameter: the value is neither.
    """
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time.max, tzinfo=UTC)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a date; write YYYY-MM-DD or an ISO date and time."
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
