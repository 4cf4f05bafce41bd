"""The BagIt tag files, checked against the Library of Congress validator."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import bagit
import pytest

from sunset.preservation.package import PayloadEntry, bag_info, encode_path, tag_files
from sunset.preservation.store import digest_bytes

pytestmark = pytest.mark.unit


def test_tag_files_make_a_bag_that_bagit_validates(tmp_path: Path) -> None:
    payload = {"data/weights/a.bin": b"\x00\x01" * 1000, "data/weights/sub/b.json": b"{}\n"}
    entries = []
    for path, data in payload.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(data)
        digests = digest_bytes(data)
        entries.append(PayloadEntry(path, digests.size, digests.sha256, digests.sha512))
    info = bag_info(
        model_id="m1",
        display_name="Model One",
        organization="Example Lab",
        snapshot_id="snap-1",
        snapshot_date=date(2026, 11, 27),
        entries=entries,
    )

    for name, data in tag_files(info, entries).items():
        (tmp_path / name).write_bytes(data)

    bag = bagit.Bag(str(tmp_path))
    bag.validate()
    assert bag.info["Payload-Oxum"] == f"{2000 + 3}.2"
    assert bag.info["Model-Identifier"] == "m1"


def test_manifest_paths_escape_line_breaks_and_percent_signs() -> None:
    assert encode_path("data/a%b\nc\rd") == "data/a%25b%0Ac%0Dd"


def test_a_line_break_in_a_name_cannot_add_a_field_to_bag_info() -> None:
    info = bag_info(
        model_id="m1",
        display_name="Model One\nPayload-Oxum: 1.1",
        organization="Example\r\nLab",
        snapshot_id="snap-1",
        snapshot_date=date(2026, 11, 27),
        entries=[PayloadEntry("data/weights/a.bin", 5, "0" * 64, "0" * 128)],
    )

    lines = info.decode().splitlines()
    assert [line.split(":", 1)[0] for line in lines] == [
        "Source-Organization",
        "Bagging-Date",
        "External-Identifier",
        "External-Description",
        "Model-Identifier",
        "Payload-Oxum",
        "Bag-Software-Agent",
    ]
    assert "Source-Organization: Example Lab" in lines
    assert "Payload-Oxum: 5.1" in lines
