"""Peers that are commands of their own (the AWS CLI, rclone), run on the same files and
store as Sunset, each measured as a phase is: wall seconds and the command's CPU seconds,
as the kernel accounts them to the finished child.

The AWS CLI pins its own botocore, so it is not one of Sunset's dependencies: install it
in a venv of its own and name it with ``--aws-cli`` (default: ``aws`` on PATH). rclone is
Debian's (``apt-get install rclone``). A peer that is not installed is left out of the
run, and the table says so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any


def run_command(argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run one peer command to its end; its wall and CPU seconds."""
    started = time.perf_counter()
    child = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert child.stderr is not None
    errors = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:3])} failed:\n{errors.decode()[-3000:]}")
    return {"seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime}


class AwsCli:
    """``aws s3 cp --recursive`` up and down, path-style, on the benchmark's store."""

    def __init__(self, command: str, work: Path) -> None:
        self.command = command
        config = work / "aws-config"
        config.write_text("[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n")
        self.env = os.environ | {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_CONFIG_FILE": str(config),
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }
        self.endpoint = os.environ["SUNSET_S3_ENDPOINT_URL"]

    def upload(self, directory: Path, bucket: str) -> dict[str, Any]:
        return self._cp(str(directory), f"s3://{bucket}/aws/")

    def download(self, bucket: str, directory: Path) -> dict[str, Any]:
        try:
            return self._cp(f"s3://{bucket}/aws/", str(directory))
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    def _cp(self, source: str, target: str) -> dict[str, Any]:
        argv = [self.command, "s3", "cp", source, target, "--recursive", "--only-show-errors"]
        return run_command([*argv, "--endpoint-url", self.endpoint], self.env)


class Rclone:
    """``rclone copy`` up, and ``rclone check --download`` (every byte read back and compared
    with the local file), with rclone's defaults (four transfers, four checkers)."""

    def __init__(self, command: str) -> None:
        self.command = command
        # rclone's S3 SDK cannot load AWS_CA_BUNDLE into its own transport and refuses to
        # start; the store is plain http, so no bundle is needed.
        inherited = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
        self.env = inherited | {
            "RCLONE_CONFIG": os.devnull,
            "RCLONE_CONFIG_BENCH_TYPE": "s3",
            "RCLONE_CONFIG_BENCH_PROVIDER": "Other",
            "RCLONE_CONFIG_BENCH_ENDPOINT": os.environ["SUNSET_S3_ENDPOINT_URL"],
            "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": "bench",
            "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": "bench",
            "RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE": "true",
        }

    def upload(self, directory: Path, bucket: str) -> dict[str, Any]:
        return run_command(
            [self.command, "copy", str(directory), f"bench:{bucket}/rclone"], self.env
        )

    def check_download(self, directory: Path, bucket: str) -> dict[str, Any]:
        argv = [self.command, "check", "--download", str(directory), f"bench:{bucket}/rclone"]
        return run_command(argv, self.env)


def find(command: str) -> str | None:
    """The command's path, or None when it is not installed."""
    return shutil.which(command)
