"""Reading a model's weights directory safely, before a single byte is uploaded."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from sunset.errors import InputError


@dataclass(frozen=True)
class SourceFile:
    """One file of the weights directory: its path inside the package and on disk."""

    relative_path: str
    path: Path
    size: int


def scan_weights_dir(directory: Path) -> list[SourceFile]:
    """List every regular file under ``directory``, refusing anything unsafe to preserve.

    Raises:
        InputError: the directory is missing or empty, or holds a symlink that leaves it,
            a special file (device, socket, FIFO), or a name that is not valid UTF-8.
    """
    if not directory.exists():
        raise InputError(f"Weights directory {directory} does not exist; pass --weights DIR.")
    if not directory.is_dir():
        raise InputError(f"Weights path {directory} is not a directory; pass --weights DIR.")
    root = directory.resolve()
    files: list[SourceFile] = []
    for current, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in [*dirnames, *sorted(filenames)]:
            path = Path(current, name)
            relative = _utf8_relative(path, root)
            info = _safe_stat(path, root, relative)
            if stat.S_ISREG(info.st_mode):
                files.append(SourceFile(relative, path, info.st_size))
    if not files:
        raise InputError(
            f"Weights directory {directory} holds no files; point --weights at the model's files."
        )
    return files


def _utf8_relative(path: Path, root: Path) -> str:
    relative = os.fsencode(path.relative_to(root))
    try:
        return relative.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(
            f"File name {relative!r} in {root} is not valid UTF-8; rename it before preserving."
        ) from None


def _safe_stat(path: Path, root: Path, relative: str) -> os.stat_result:
    if path.is_symlink():
        target = path.resolve()
        if not target.is_relative_to(root):
            raise InputError(
                f"{relative} is a symlink to {target}, outside the weights directory; "
                "copy the file in instead."
            )
    info = path.stat()
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
        raise InputError(f"{relative} is not a regular file (device, socket or FIFO); remove it.")
    return info
