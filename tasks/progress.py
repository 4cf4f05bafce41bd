"""Progress of a long step, as operators see it: a progress artifact in the Prefect UI
with a number, and a log line at least every ten seconds, stalls included.

A step's work reports ``progress(done, total)`` as it advances; while nothing advances
(a stalled store, a slow answer), the heartbeat still says how long nothing has moved,
so a quiet log never leaves an operator guessing whether the run is alive.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from prefect import get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact

from tasks.prefect_calls import sync_result

LOG_EVERY_S = 10.0
# Nothing moved for this long: the line says so, instead of guessing a time left.
STALLED_S = 5.0
MIB = 1024 * 1024


@contextmanager
def progress_artifact(
    description: str, *, unit: str = "bytes", log_every_s: float = LOG_EVERY_S
) -> Iterator[Callable[[int, int], None]]:
    """A ``progress(done, total)`` callback for the block: it updates one progress
    artifact by >= 1%, and the step's log says where it stands every ``log_every_s``."""
    artifact_id = sync_result(create_progress_artifact(0.0, description=description))
    logger = get_run_logger()
    heartbeat = Heartbeat(description, unit, lambda line: logger.info("%s", line))
    shown = 0.0

    def show(done: int, total: int) -> None:
        nonlocal shown
        heartbeat.advanced(done, total)
        percent = 100.0 * done / total if total else 100.0
        if percent - shown >= 1.0 or done == total:
            update_progress_artifact(artifact_id, percent)
            shown = percent

    with heartbeat.beating(log_every_s):
        yield show


class Heartbeat:
    """Where a piece of work stands, told every so often from a thread of its own."""

    def __init__(self, description: str, unit: str, log: Callable[[str], None]) -> None:
        self.description, self.unit, self.log = description, unit, log
        self.started = self.moved = time.monotonic()
        self.done = self.total = 0
        self.lock = threading.Lock()

    def advanced(self, done: int, total: int) -> None:
        with self.lock:
            if done != self.done:
                self.moved = time.monotonic()
            self.done, self.total = done, total

    @contextmanager
    def beating(self, every_s: float) -> Iterator[None]:
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(every_s):
                self.log(self.line())

        thread = threading.Thread(target=beat, name="progress-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def line(self) -> str:
        with self.lock:
            done, total, moved = self.done, self.total, self.moved
        now = time.monotonic()
        return progress_line(
            self.description,
            self.unit,
            done=done,
            total=total,
            elapsed_s=now - self.started,
            still_s=now - moved,
        )


def progress_line(
    description: str, unit: str, *, done: int, total: int, elapsed_s: float, still_s: float
) -> str:
    """``Bytes of weights preserved: 512.0 MiB of 2048.0 MiB (25%), 45.2 MiB/s, about 34 s
    left``; while nothing moves it says for how long instead of guessing a time left."""
    percent = 100 * done // total if total else 100
    rate = done / elapsed_s if elapsed_s > 0 else 0.0
    if unit == "bytes":
        amount = f"{done / MIB:.1f} MiB of {total / MIB:.1f} MiB"
        speed = f"{rate / MIB:.1f} MiB/s"
    else:
        amount = f"{done} of {total} {unit}"
        speed = f"{rate:.2f} {unit}/s"
    line = f"{description}: {amount} ({percent}%), {speed}"
    if done < total and still_s >= STALLED_S:
        return f"{line}; nothing has moved for {still_s:.0f} s"
    if done < total and rate > 0:
        return f"{line}, about {(total - done) / rate:.0f} s left"
    return line
