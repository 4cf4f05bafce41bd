"""The recipients list: a CSV validated whole before anyone is told anything."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

from sunset.errors import InputError

REQUIRED_COLUMNS = ("email", "name")
OPTIONAL_COLUMNS = ("webhook_url", "usage")
# Deliberately strict: one @, a dotted domain, no spaces or control characters.
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Recipient:
    """Someone who depends on the model and must hear about its retirement."""

    email: str
    name: str
    webhook_url: str | None = None
    usage: str | None = None


def load_recipients(path: Path) -> list[Recipient]:
    """Read and validate a recipients CSV (columns: email, name[, webhook_url, usage]).

    Raises:
        InputError: the file is missing, unreadable or not CSV (named with its line), or
            any row is invalid; the message lists every bad row by its line number, and
            nobody is notified.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"Recipients file {path} does not exist; pass --recipients CSV.") from None
    except (UnicodeDecodeError, IsADirectoryError):
        raise InputError(f"Recipients file {path} is not a UTF-8 text file.") from None
    except OSError as exc:
        raise InputError(
            f"Recipients file {path} cannot be read: {exc.strerror}; fix it and run again."
        ) from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        return _read_rows(path, reader)
    except csv.Error as exc:
        # Nothing after a line that is not CSV can be trusted. On an error the DictReader's
        # own line_num still names the row before; its inner reader's names the line.
        raise InputError(
            f"Recipients file {path} is not valid CSV at line {reader.reader.line_num}: "
            f"{_csv_problem(exc)}; fix that line and run again."
        ) from None


def _read_rows(path: Path, reader: csv.DictReader[str]) -> list[Recipient]:
    columns = [c.strip() for c in reader.fieldnames or []]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise InputError(
            f"Recipients file {path} lacks the column(s) {', '.join(missing)}; "
            f"its first line must name the columns {', '.join(REQUIRED_COLUMNS)}."
        )
    recipients: list[Recipient] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        if None in row:
            problems.append(f"line {line}: more fields than columns")
            continue
        values = {k.strip(): (v or "").strip() for k, v in row.items()}
        problem = _row_problem(values, seen, line)
        if problem:
            problems.append(f"line {line}: {problem}")
            continue
        seen[values["email"].lower()] = line
        recipients.append(
            Recipient(
                email=values["email"],
                name=values["name"],
                webhook_url=values.get("webhook_url") or None,
                usage=values.get("usage") or None,
            )
        )
    if problems:
        listed = "; ".join(problems[:20]) + ("; ..." if len(problems) > 20 else "")
        raise InputError(
            f"Recipients file {path} has {len(problems)} invalid row(s), so nobody was "
            f"notified: {listed}. Fix these rows and run again."
        )
    if not recipients:
        raise InputError(f"Recipients file {path} lists nobody; add at least one row.")
    return recipients


def _csv_problem(exc: csv.Error) -> str:
    """What the csv module found wrong, in the release manager's words where it is terse."""
    problem = str(exc)
    if problem.startswith("field larger than field limit"):
        return f"a field is longer than {csv.field_size_limit()} characters"
    return problem


def _row_problem(values: dict[str, str], seen: dict[str, int], line: int) -> str | None:
    email, name = values.get("email", ""), values.get("name", "")
    if not _EMAIL.match(email):
        return f"{email!r} is not a valid email address"
    if email.lower() in seen:
        return f"{email} is listed twice (first on line {seen[email.lower()]})"
    if not name:
        return "the name is empty"
    if _CONTROL.search(name) or len(name) > 200:
        return "the name holds control characters or is longer than 200 characters"
    webhook = values.get("webhook_url", "")
    if webhook and not re.match(r"^https?://[^\s]+$", webhook):
        return f"{webhook!r} is not an http(s) URL"
    return None
