"""Reading the release manager's files: weights, recipients and protocols, refused whole."""

from __future__ import annotations

import csv
import errno
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from sunset.cli.edge import unnamed_failure
from sunset.cli.local_runs import settings_for_flow_run
from sunset.config import Settings
from sunset.errors import InputError
from sunset.interview.protocol import load_protocol
from sunset.notify.recipients import load_recipients
from sunset.preservation.weights import (
    SourceFile,
    WeightsReader,
    require_room,
    scan_weights_dir,
)

pytestmark = pytest.mark.unit


def test_weights_are_listed_with_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "sub" / "shard.bin").write_bytes(b"\0" * 10)
    (tmp_path / "empty.txt").write_bytes(b"")

    files = scan_weights_dir(tmp_path)

    assert [(f.relative_path, f.size) for f in files] == [
        ("config.json", 2),
        ("empty.txt", 0),
        ("sub/shard.bin", 10),
    ]


def test_a_symlink_leaving_the_weights_directory_is_refused(tmp_path: Path) -> None:
    weights = tmp_path / "weights"
    weights.mkdir()
    (tmp_path / "secret").write_text("outside")
    (weights / "link").symlink_to(tmp_path / "secret")

    with pytest.raises(InputError, match="outside the weights directory"):
        scan_weights_dir(weights)


def test_a_special_file_is_refused(tmp_path: Path) -> None:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "s.sock"))
    try:
        with pytest.raises(InputError, match="not a regular file"):
            scan_weights_dir(tmp_path)
    finally:
        sock.close()


def test_a_name_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    (Path(os.fsdecode(bytes(tmp_path) + b"/bad-\xff.bin"))).write_bytes(b"x")

    with pytest.raises(InputError, match="not valid UTF-8"):
        scan_weights_dir(tmp_path)


def test_a_symlink_loop_in_the_weights_is_named_as_such(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "a.bin").symlink_to("b.bin")
    (tmp_path / "b.bin").symlink_to("a.bin")

    with pytest.raises(InputError) as refused:
        scan_weights_dir(tmp_path)

    assert str(refused.value) == (
        f"Weights path {tmp_path / 'a.bin'} is a symlink loop (it leads back to itself); "
        "remove it or point it at a file."
    )


def test_a_dangling_symlink_in_the_weights_is_named_with_its_target(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "shard.bin").symlink_to("moved-away.bin")

    with pytest.raises(InputError) as refused:
        scan_weights_dir(tmp_path)

    assert str(refused.value) == (
        f"Weights path {tmp_path / 'shard.bin'} is a symlink to moved-away.bin, which does not "
        "exist; remove it or copy the file in instead."
    )


def test_a_weights_folder_that_cannot_be_listed_is_refused_not_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "shards").mkdir()
    (tmp_path / "shards" / "shard.bin").write_bytes(b"x")
    real_scandir = os.scandir

    def scandir(path: Any) -> Any:  # as for a folder without read permission (tests run as root)
        if Path(path).name == "shards":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)

    with pytest.raises(InputError) as refused:
        scan_weights_dir(tmp_path)

    assert str(refused.value) == (
        f"Weights path {tmp_path / 'shards'} cannot be read: permission denied; let the user "
        "running Sunset read it, then run again."
    )


NOBODY = 65534


@contextmanager
def reading_as_nobody() -> Iterator[None]:
    """Check file permissions as an unprivileged user would meet them: root reads any file,
    so a test run as root reads as ``nobody`` (the effective ids, given back after)."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(NOBODY)
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


@pytest.fixture
def open_weights() -> Iterator[Path]:
    """A weights directory any user may enter (pytest's own temporary tree is root's alone)."""
    directory = Path(tempfile.mkdtemp(prefix="sunset-weights-"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory)


def test_a_weights_file_that_cannot_be_read_is_refused_before_it_is_sent(
    open_weights: Path,
) -> None:
    (open_weights / "config.json").write_text("{}")
    shard = open_weights / "shard.bin"
    shard.write_bytes(b"x" * 100)
    shard.chmod(0o000)

    with reading_as_nobody():
        files = scan_weights_dir(open_weights)  # listed: it exists, and is a regular file
        with pytest.raises(InputError) as refused:
            WeightsReader(s3_client=None).check_readable(files)

    assert str(refused.value) == (
        f"Weights path {shard} cannot be read: permission denied; let the user running "
        "Sunset read it, then run again."
    )


def test_every_weights_file_is_read_at_both_ends(tmp_path: Path) -> None:
    (tmp_path / "one.bin").write_bytes(b"1")
    (tmp_path / "empty.bin").write_bytes(b"")
    (tmp_path / "shard.bin").write_bytes(b"a" * 4096)

    WeightsReader(s3_client=None).check_readable(scan_weights_dir(tmp_path))


def test_a_directory_where_a_weights_file_was_listed_is_named(tmp_path: Path) -> None:
    files = [SourceFile("shard.bin", str(tmp_path / "shard.bin"), 10)]
    (tmp_path / "shard.bin").mkdir()  # the file was replaced after the listing

    with pytest.raises(InputError) as refused:
        WeightsReader(s3_client=None).check_readable(files)

    assert str(refused.value) == (
        f"Weights path {tmp_path / 'shard.bin'} is a directory where a file was listed; put "
        "the file back, then run again."
    )


def test_a_local_copy_larger_than_the_free_space_is_refused(tmp_path: Path) -> None:
    free = shutil.disk_usage(tmp_path).free
    target = tmp_path / "data" / "drills"  # not made yet: its file system is the parent's

    require_room(target, 1024, "the drill restores the package there")
    with pytest.raises(InputError) as refused:
        require_room(target, free + 2**30, "the drill restores the package there")

    message = str(refused.value)
    assert message.startswith(
        f"{target} needs room for {free + 2**30:,} bytes (the drill restores the package "
        "there) but its file system has "
    )
    assert message.endswith(" bytes free; free some space or point SUNSET_DATA_DIR elsewhere.")


def test_recipients_are_read_with_optional_columns(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("email,name,webhook_url,usage\nada@example.org,Ada,,12/day\n")

    [ada] = load_recipients(path)

    assert (ada.email, ada.name, ada.webhook_url, ada.usage) == (
        "ada@example.org",
        "Ada",
        None,
        "12/day",
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("mail,name\nada@example.org,Ada\n", "lacks the column(s) email"),
        ("email,name\n", "lists nobody"),
        (
            "email,name\nada@example.org,Ada\nada@example.org,Ada2\n",
            "line 3: ada@example.org is listed twice",
        ),
        ('email,name\nada@example.org,"Ada\r\nBcc: x@evil.example"\n', "control characters"),
        ("email,name\nada@example.org,Ada,extra\n", "line 2: more fields than columns"),
    ],
)
def test_an_invalid_recipients_file_is_refused_with_line_numbers(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "r.csv"
    path.write_bytes(content.encode())

    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_recipients(path)


def test_an_oversized_csv_field_is_named_by_its_line(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text(f"email,name\nada@example.org,Ada\nbob@example.org,{'B' * 200_000}\n")

    with pytest.raises(InputError) as refused:
        load_recipients(path)

    assert str(refused.value) == (
        f"Recipients file {path} is not valid CSV at line 3: a field is longer than "
        f"{csv.field_size_limit()} characters; fix that line and run again."
    )


def test_the_cli_names_an_error_class_called_error_by_its_module() -> None:
    failure = unnamed_failure(csv.Error("field larger than field limit (131072)"))

    assert failure.startswith("_csv.Error: field larger than field limit (131072). ")


def test_the_default_protocol_loads_with_a_stable_hash() -> None:
    first, second = load_protocol(), load_protocol()

    assert first.sha256 == second.sha256
    turns = first.protocol.turns()
    assert turns[-1].question_id == "closing.anything-else"
    assert any(t.section_id == "future-models" for t in turns)


@pytest.mark.parametrize(
    ("yaml_text", "field"),
    [
        ("name: x\nversion: 1\ndescription: d\nframing: f\nsections: []\n", "sections"),
        (
            "name: x\nversion: 1\ndescription: d\nframing: f\nsections:\n  - id: s\n    title: S\n"
            "    questions:\n      - id: Bad Id\n        text: q\nclosing: {id: c, text: c}\n",
            "sections.0.questions.0.id",
        ),
        (
            "version: 1\ndescription: d\nframing: f\nsections: []\nclosing: {id: c, text: c}\n",
            "name",
        ),
    ],
)
def test_an_invalid_protocol_names_the_field(tmp_path: Path, yaml_text: str, field: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(yaml_text)

    with pytest.raises(InputError, match=f"at field '{field}'"):
        load_protocol(path)


def test_a_protocol_that_is_not_yaml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("name: [unclosed\n")

    with pytest.raises(InputError, match="not valid YAML"):
        load_protocol(path)


def test_replica_settings_hide_their_secrets_and_refuse_unclear_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "SUNSET_REPLICAS",
        '[{"name": "offsite", "bucket": "b2", "access_key_id": "AK", '
        '"secret_access_key": "s3cr3t-value"}]',
    )
    settings = Settings()

    [replica] = settings.replicas or []
    assert (replica.name, replica.bucket, replica.access_key_id) == ("offsite", "b2", "AK")
    assert "s3cr3t-value" not in repr(settings) and "s3cr3t-value" not in str(settings)
    assert replica.secret_access_key is not None
    assert replica.secret_access_key.get_secret_value() == "s3cr3t-value"

    monkeypatch.setenv("SUNSET_REPLICAS", '[{"name": "primary", "bucket": "b2"}]')
    with pytest.raises(ValidationError, match="not 'primary'"):
        Settings()
    monkeypatch.setenv("SUNSET_REPLICAS", "[]")
    monkeypatch.setenv("SUNSET_RETENTION_DAYS", "30")
    with pytest.raises(ValidationError, match="MARGIN_DAYS must be smaller"):
        Settings()


def test_settings_handed_to_a_flow_run_here_are_exactly_the_commands_own(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SUNSET_BUCKET", "from-the-shell")
    monkeypatch.setenv("SUNSET_ORGANIZATION", "left in the shell")
    settings = Settings(
        data_dir=tmp_path,
        smtp_starttls=True,
        s3_secret_access_key="s3cr3t",
        anthropic_api_key="demo-key",
        minimum_notice_days_by_class={"frontier": 120},
        replicas=[{"name": "offsite", "bucket": "b2", "secret_access_key": "r3pl1ca"}],
        weights_s3={"endpoint_url": "http://127.0.0.1:1", "secret_access_key": "w"},
    )
    monkeypatch.delenv("SUNSET_ORGANIZATION")

    with settings_for_flow_run(settings):
        seen_by_the_flow = Settings()
    after = os.environ.get("SUNSET_BUCKET"), os.environ.get("SUNSET_ORGANIZATION")

    assert seen_by_the_flow == settings
    assert seen_by_the_flow.bucket == "from-the-shell"
    assert after == ("from-the-shell", None)
