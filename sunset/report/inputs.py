"""What people write for the report: the deployment summary and the operators' analysis."""

from __future__ import annotations

from pathlib import Path

from sunset.errors import InputError

INPUT_KINDS = ("deployment_summary", "operator_analysis")
MAX_INPUT_BYTES = 1_000_000


def read_report_input(path: Path, kind: str) -> str:
    """Read a person's Markdown input for the report, refusing what cannot be kept as text."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(
            f"The {kind.replace('_', ' ')} file {path} cannot be read: {exc.strerror}."
        ) from None
    if len(data) > MAX_INPUT_BYTES:
        raise InputError(f"The {kind.replace('_', ' ')} file {path} is over 1 MB; shorten it.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"The {kind.replace('_', ' ')} file {path} is not UTF-8 text.") from None
