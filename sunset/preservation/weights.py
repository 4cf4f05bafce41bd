"""Reading a model's files safely, before a single byte is uploaded.

The files come from a local directory or from an ``s3://bucket/prefix`` in another
bucket. Either way they are listed and checked whole first, and read later exactly once,
as a stream, while they are uploaded.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import botocore.exceptions

from sunset.errors import InputError, PreservationError, is_transient

S3_SCHEME = "s3://"


@dataclass(frozen=True)
class SourceFile:
    """One file of the weights: its path inside the package, where it is read, its size."""

    relative_path: str
    location: str  # a local path, or s3://bucket/key
    size: int


class WeightsReader:
    """Lists and opens weights in a local directory or under an ``s3://`` prefix."""

    def __init__(self, s3_client: Any) -> None:
        self.s3_client = s3_client

    def scan(self, location: str) -> list[SourceFile]:
        """Every file of the weights at ``location``, refusing anything unsafe to preserve.

        Raises:
            InputError: see ``scan_weights_dir`` and ``scan_s3_prefix``.
        """
        if location.startswith(S3_SCHEME):
            return scan_s3_prefix(self.s3_client, location)
        return scan_weights_dir(Path(location))

    def check_readable(self, files: Sequence[SourceFile]) -> None:
        """Open every file and read its first and last bytes, so that a file the snapshot
        could not read is refused before anything is sent, stored or locked.

        Raises:
            InputError: one sentence naming the first file that cannot be read, and why.
        """
        for file in files:
            if file.location.startswith(S3_SCHEME):
                self._read_ends_of_object(file)
            else:
                _read_ends_of_file(file)

    @contextmanager
    def open(self, file: SourceFile) -> Iterator[IO[bytes]]:
        """A stream of the file's bytes, for one read pass, opened before it is yielded:
        a file that became unreadable fails here, before any upload of it begins.

        Raises:
            PreservationError: the file cannot be opened or read any more; names it and why.
        """
        if file.location.startswith(S3_SCHEME):
            bucket, key = _split_s3_url(file.location)
            try:
                body = self.s3_client.get_object(Bucket=bucket, Key=key)["Body"]
            except botocore.exceptions.ClientError as exc:
                if is_transient(exc):  # the step tries again
                    raise
                raise PreservationError(
                    f"Weights object {file.location} cannot be read any more "
                    f"({_s3_error(exc)}); make it readable again, then run again."
                ) from None
            try:
                yield body
            finally:
                body.close()
            return
        try:
            source = open(file.location, "rb")
        except OSError as exc:
            raise PreservationError(_unreadable(Path(file.location), exc)) from None
        with source:
            yield source

    def _read_ends_of_object(self, file: SourceFile) -> None:
        bucket, key = _split_s3_url(file.location)
        ranges = ["bytes=0-0", "bytes=-1"] if file.size > 0 else []
        try:
            for byte_range in ranges:
                self.s3_client.get_object(Bucket=bucket, Key=key, Range=byte_range)["Body"].read()
        except botocore.exceptions.ClientError as exc:
            raise InputError(
                f"Weights object {file.location} cannot be read ({_s3_error(exc)}); make it "
                "readable with the keys Sunset reads weights with (SUNSET_WEIGHTS_S3), then "
                "run again."
            ) from None


def _s3_error(exc: botocore.exceptions.ClientError) -> str:
    """The store's code and message for a refused request, as one clause."""
    error = exc.response.get("Error", {})
    return ": ".join(filter(None, (error.get("Code"), error.get("Message")))).rstrip(".")


def _read_ends_of_file(file: SourceFile) -> None:
    path = Path(file.location)
    try:
        with open(path, "rb") as source:
            source.read(1)
            if file.size > 1:
                source.seek(-1, os.SEEK_END)
                source.read(1)
    except OSError as exc:
        raise InputError(_unreadable(path, exc)) from None


def require_room(directory: Path, needed: int, purpose: str) -> None:
    """Refuse a run that will write ``needed`` bytes under ``directory`` when its file
    system has less room free.

    Raises:
        InputError: names the directory, the bytes needed and the bytes free.
    """
    existing = next(p for p in (directory, *directory.parents) if p.exists())
    free = shutil.disk_usage(existing).free
    if free < needed:
        raise InputError(
            f"{directory} needs room for {needed:,} bytes ({purpose}) but its file system "
            f"has {free:,} bytes free; free some space or point SUNSET_DATA_DIR elsewhere."
        )


def scan_weights_dir(directory: Path) -> list[SourceFile]:
    """List every regular file under ``directory``, refusing anything unsafe to preserve.

    Raises:
        InputError: the directory is missing or empty, or holds a symlink that leaves it,
            a symlink loop, a dangling symlink, a file or folder that cannot be read, a
            special file (device, socket, FIFO), or a name that is not valid UTF-8.
    """
    if not directory.exists():
        raise InputError(f"Weights directory {directory} does not exist; pass --weights DIR.")
    if not directory.is_dir():
        raise InputError(f"Weights path {directory} is not a directory; pass --weights DIR.")
    root = directory.resolve()
    files: list[SourceFile] = []
    for current, dirnames, filenames in os.walk(
        root, onerror=_refuse_unlistable, followlinks=False
    ):
        dirnames.sort()
        for name in [*dirnames, *sorted(filenames)]:
            path = Path(current, name)
            relative = _utf8_relative(path, root)
            info = _safe_stat(path, root, relative)
            if stat.S_ISREG(info.st_mode):
                files.append(SourceFile(relative, str(path), info.st_size))
    if not files:
        raise InputError(
            f"Weights directory {directory} holds no files; point --weights at the model's files."
        )
    return files


def scan_s3_prefix(client: Any, url: str) -> list[SourceFile]:
    """List every object under an ``s3://bucket/prefix`` URL, as files of the package.

    Raises:
        InputError: the bucket cannot be listed, the prefix holds no objects, or an
            object's name cannot be a file name inside the package.
    """
    bucket, prefix = _split_s3_url(url)
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    files: list[SourceFile] = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                if item["Key"].endswith("/") and item["Size"] == 0:
                    continue  # a folder marker some tools create; it holds no bytes
                relative = item["Key"][len(prefix) :]
                _check_object_name(relative, url)
                location = f"{S3_SCHEME}{bucket}/{item['Key']}"
                files.append(SourceFile(relative, location, item["Size"]))
    except botocore.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        raise InputError(
            f"Weights source {url} cannot be listed ({code}); check the bucket name and "
            "SUNSET_WEIGHTS_S3."
        ) from None
    if not files:
        raise InputError(f"Weights source {url} holds no objects; point --weights at the model.")
    return sorted(files, key=lambda f: f.relative_path)


def _split_s3_url(url: str) -> tuple[str, str]:
    bucket, _, key = url.removeprefix(S3_SCHEME).partition("/")
    if not bucket:
        raise InputError(f"Weights source {url!r} names no bucket; write it as s3://bucket/prefix.")
    return bucket, key


def _check_object_name(relative: str, url: str) -> None:
    if any(part in ("", ".", "..") for part in relative.split("/")):
        raise InputError(
            f"Object {relative!r} under {url} cannot be a file name inside the package (it has "
            "an empty, '.' or '..' path segment); rename it before preserving."
        )


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
        target = Path(os.path.realpath(path))  # unlike Path.resolve, never raises on a loop
        if not target.is_relative_to(root):
            raise InputError(
                f"{relative} is a symlink to {target}, outside the weights directory; "
                "copy the file in instead."
            )
    try:
        info = path.stat()
    except OSError as exc:
        raise InputError(_unreadable(path, exc)) from None
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
        raise InputError(f"{relative} is not a regular file (device, socket or FIFO); remove it.")
    return info


def _refuse_unlistable(exc: OSError) -> None:
    # os.walk would otherwise skip a folder it cannot list, and its files would be missing
    # from the package without a word.
    raise InputError(_unreadable(Path(exc.filename), exc)) from None


def _unreadable(path: Path, exc: OSError) -> str:
    """One sentence naming the path in the weights that cannot be read, and why."""
    if exc.errno == errno.ELOOP:
        return (
            f"Weights path {path} is a symlink loop (it leads back to itself); remove it or "
            "point it at a file."
        )
    if exc.errno == errno.ENOENT and path.is_symlink():
        return (
            f"Weights path {path} is a symlink to {os.readlink(path)}, which does not exist; "
            "remove it or copy the file in instead."
        )
    if exc.errno == errno.EISDIR:
        return (
            f"Weights path {path} is a directory where a file was listed; put the file "
            "back, then run again."
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        return (
            f"Weights path {path} cannot be read: permission denied; let the user running "
            "Sunset read it, then run again."
        )
    return f"Weights path {path} cannot be read: {exc.strerror}; fix it, then run again."
