"""The progress a long step logs: where it stands, how fast, and whether it is stalled."""

from __future__ import annotations

import threading

import pytest

from tasks.progress import MIB, Heartbeat, progress_line

pytestmark = pytest.mark.unit


def test_a_moving_step_says_how_far_how_fast_and_how_long_is_left() -> None:
    line = progress_line(
        "Bytes of weights preserved",
        "bytes",
        done=512 * MIB,
        total=2048 * MIB,
        elapsed_s=10.0,
        still_s=0.2,
    )

    assert line == (
        "Bytes of weights preserved: 512.0 MiB of 2048.0 MiB (25%), 51.2 MiB/s, about 30 s left"
    )


def test_a_stalled_step_says_for_how_long_nothing_moved_instead_of_a_time_left() -> None:
    line = progress_line(
        "Bytes re-read and re-hashed", "bytes", done=MIB, total=4 * MIB, elapsed_s=97, still_s=95
    )

    assert line.endswith("; nothing has moved for 95 s") and "left" not in line


def test_counted_work_is_told_in_its_own_unit() -> None:
    line = progress_line(
        "Interview questions answered", "questions", done=3, total=8, elapsed_s=6, still_s=0
    )

    assert line == (
        "Interview questions answered: 3 of 8 questions (37%), 0.50 questions/s, about 10 s left"
    )


def test_the_heartbeat_logs_while_nothing_reports_progress() -> None:
    lines: list[str] = []
    logged = threading.Event()

    def log(line: str) -> None:
        lines.append(line)
        if len(lines) >= 3:
            logged.set()

    heartbeat = Heartbeat("Bytes of weights preserved", "bytes", log)
    heartbeat.advanced(MIB, 8 * MIB)
    with heartbeat.beating(0.05):  # the work is stuck: nothing calls advanced()
        assert logged.wait(5)

    assert all(line.startswith("Bytes of weights preserved: 1.0 MiB of 8.0 MiB") for line in lines)
    count = len(lines)
    threading.Event().wait(0.2)
    assert len(lines) == count  # the heartbeat stopped with its block
