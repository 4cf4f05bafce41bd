"""Progress artifacts: how far a long step has come, as operators see it in the Prefect UI."""

from __future__ import annotations

from collections.abc import Callable

from prefect.artifacts import create_progress_artifact, update_progress_artifact

from tasks.prefect_calls import sync_result


def progress_artifact(description: str) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback that updates one progress artifact by >= 1%."""
    artifact_id = sync_result(create_progress_artifact(0.0, description=description))
    shown = 0.0

    def show(done: int, total: int) -> None:
        nonlocal shown
        percent = 100.0 * done / total if total else 100.0
        if percent - shown >= 1.0 or done == total:
            update_progress_artifact(artifact_id, percent)
            shown = percent

    return show
