"""Work run inside processes forked by the zygote, where a test needs more than the CLI."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.orm import Session

from sunset.ledger import DeprecationRun, Ledger, ServingStatus
from sunset.runs.lifecycle import begin_run
from sunset.runs.request import DeprecationRequest
from sunset.serving.guards import flip_status
from sunset.serving.lifecycle import DEPRECATED, DEPRECATION


def begin_new_request(ledger: Ledger, flow_run_id: str) -> DeprecationRun:
    """Begin the deprecation of model m1 with parameters no earlier run of it had."""
    request = DeprecationRequest(model_id="m1", weights="/new", recipients="/new.csv")
    return begin_run(
        ledger,
        model_id=request.model_id,
        kind=DEPRECATION,
        parameters=request.parameters(),
        target=DEPRECATED,
        flow_run_id=flow_run_id,
        lease_seconds=5,
    )


def stop_before_commit(ledger_url: str, operation: str, run_id: str, ready_file: str) -> None:
    """Run one of Sunset's multi-row transactions, but hang just before its COMMIT.

    Every row has been flushed to the database inside the open transaction when
    ``ready_file`` appears; the test then kills this process, as a crash would.
    """

    commit = Session.commit

    def note_write(session: Session, context: object) -> None:
        session.info["wrote"] = True

    def hang(session: Session) -> None:
        session.flush()
        if not session.info.get("wrote"):
            return commit(session)  # a read-only session on the way
        Path(ready_file).write_text(operation)
        time.sleep(600)

    # This process only: every flush that writes is noted, every commit after one hangs.
    event.listen(Session, "after_flush", note_write)
    Session.commit = hang  # type: ignore[method-assign]
    ledger = Ledger(ledger_url)
    if operation == "flip":
        flip_status(
            ledger, run_id=run_id, target=ServingStatus.RETIRED, actor="crash test", reason="x"
        )
    else:
        begin_new_request(ledger, flow_run_id="crash-test")
    raise AssertionError("the transaction committed although commit was made to hang")
