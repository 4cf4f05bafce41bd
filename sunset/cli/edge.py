"""Where the terminal meets Sunset: values typed on the command line, and failures turned
into one sentence on stderr and exit code 1."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time

import typer
from pydantic import ValidationError

from sunset.cli.output import errors
from sunset.config import Settings
from sunset.errors import InputError, SunsetError


@contextmanager
def plain_errors() -> Iterator[None]:
    """Turn failures into one sentence and exit code 1, never a traceback."""
    try:
        yield
    except SunsetError as exc:
        errors.print(f"[bold red]Error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    except Exception as exc:  # a setting or a service failed in a way Sunset does not name
        errors.print(f"[bold red]Error:[/] {unnamed_failure(exc)}", highlight=False)
        raise typer.Exit(1) from None


def unnamed_failure(exc: Exception) -> str:
    """One sentence for an error Sunset does not raise itself."""
    if isinstance(exc, ValidationError) and exc.title == Settings.__name__:
        first = exc.errors()[0]
        name = "SUNSET_" + "_".join(str(part) for part in first["loc"]).upper()
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


def parse_date(value: str | None, option: str) -> date | None:
    """The date typed after ``option`` (YYYY-MM-DD), or None if it was not given.

    Raises:
        InputError: the value is not a date.
    """
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InputError(f"{option} {value!r} is not a date; write it as YYYY-MM-DD.") from None


def parse_moment(value: str) -> datetime:
    """A moment typed after --at: a date (the end of that day, UTC) or an ISO date and time
    (UTC unless it names its offset).

    Raises:
        InputError: the value is neither.
    """
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time.max, tzinfo=UTC)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(
            f"--at {value!r} is not a date; write YYYY-MM-DD or an ISO date and time."
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
