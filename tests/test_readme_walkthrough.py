"""The README's "Deprecate your own model" walk-through, run as a new user would run it.

Its commands (the ``bash`` block marked ``walkthrough:commands``) run unchanged in a shell,
from a fresh copy of the repository's tracked files, with a home directory of their own
and only the settings `sunset ops up` prints (pointing at the session's services); what
they print must hold every line of the block marked ``walkthrough:output``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from sunset.config import Settings
from sunset.preservation.replicas import connect_store
from sunset_dev.devstack import DevStack, read_mailbox
from sunset_dev.example_model import write_example_weights

REPO_ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Deprecate your own model"
MARKED_BLOCK = r"<!-- walkthrough:{mark}\b[^>]*-->\s*```(\w+)\n(.*?)\n```"


def readme_section() -> str:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(SECTION + "\n")
    end = text.find("\n## ", start + len(SECTION))
    return text[start : end if end != -1 else len(text)]


def marked_block(section: str, mark: str) -> tuple[str, str]:
    """The language and the text of the fenced block right after ``<!-- walkthrough:mark -->``."""
    found = re.findall(MARKED_BLOCK.format(mark=mark), section, flags=re.DOTALL)
    assert len(found) == 1, f"the section needs exactly one block marked walkthrough:{mark}"
    language, body = found[0]
    return language, body


def copy_tracked_files(destination: Path) -> Path:
    """What a fresh clone holds: the files git tracks, as they are in the working tree."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = REPO_ROOT / name
        if source.is_file():  # a tracked file deleted in the working tree is not copied
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


@pytest.mark.unit
def test_the_walkthrough_registers_the_successor_before_naming_it() -> None:
    language, commands = marked_block(readme_section(), "commands")
    assert language == "bash"
    lines = commands.splitlines()
    registered = [i for i, line in enumerate(lines) if line.startswith("sunset register ")]
    for i, line in enumerate(lines):
        for successor in re.findall(r"--replacement (\S+)", line):
            assert any(j < i and lines[j].split()[2] == successor for j in registered), (
                f"{successor} is named before it is registered"
            )
    language, expected = marked_block(readme_section(), "output")
    assert language == "text" and expected.strip()


@pytest.mark.usefixtures("prefect_server")
def test_the_walkthrough_runs_from_a_fresh_copy_and_prints_what_the_readme_shows(
    stack: DevStack, tmp_path: Path
) -> None:
    from prefect.settings import PREFECT_API_URL

    _, commands = marked_block(readme_section(), "commands")
    _, expected = marked_block(readme_section(), "output")
    checkout = copy_tracked_files(tmp_path / "sunset")
    home = tmp_path / "home"
    home.mkdir()
    work = tmp_path / "work"
    write_example_weights(work / "acme-chat-1")

    # What `sunset ops up` prints, pointing at this session's services and Prefect server;
    # a bucket of its own.
    access_key, secret_key = stack.s3_credentials
    exports = stack.endpoints.as_env() | {
        "SUNSET_S3_ACCESS_KEY_ID": access_key,
        "SUNSET_S3_SECRET_ACCESS_KEY": secret_key,
        "SUNSET_BUCKET": f"walk-{uuid.uuid4().hex[:12]}",
        "SUNSET_DATA_DIR": str(home / ".sunset"),
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
    }
    fields = {
        k.removeprefix("SUNSET_").lower(): v for k, v in exports.items() if k.startswith("SUNSET_")
    }
    connect_store(Settings(**fields)).ensure_buckets()  # as `sunset ops up` does
    environment = exports | {
        "HOME": str(home),
        # The interpreter of this test suite; the copy's code before the installed one.
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin", "/bin"]),
        "PYTHONPATH": str(checkout),
        "COLUMNS": "100",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    }

    told_before = told(stack)
    shell = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", commands],
        cwd=work,
        env=environment,
        capture_output=True,
        text=True,
        timeout=240,
    )

    printed = shell.stdout + shell.stderr
    assert shell.returncode == 0, printed[-4000:]
    flat = " ".join(printed.split())
    for line in expected.splitlines():  # table padding differs with the terminal's width
        assert " ".join(line.split()) in flat, f"{line!r} not printed:\n{printed[-4000:]}"
    report = (work / "acme-chat-1-report.html").read_text(encoding="utf-8")
    # As the README warns: against the stand-in, every answer is labelled as no model's.
    assert "Answer from sunset-stand-in (not a real model; asked as acme-chat-1)" in report
    assert told(stack) == told_before + 2  # Ada and Grace, once each


def told(stack: DevStack) -> int:
    """Messages in the session's mailbox to the walk-through's users."""
    users = ("ada@example.org", "grace@example.org")
    return sum(1 for m in read_mailbox(stack.maildir) if any(u in str(m["To"]) for u in users))
