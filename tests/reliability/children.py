"""Work run inside processes forked by the zygote, where a test needs more than the CLI."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy.orm import Session

from sunset.ledger import Ledger, ServingStatus
from sunset.runs import DeprecationRequest, begin_run
from sunset.serving import flip_status

NEW_REQUEST = DeprecationRequest(model_id="m1", weights="/new", recipients="/new.csv")


def stop_before_commit(ledger_url: str, operation: str, run_id: str, ready_file: str) -> None:
    """Run one of Sunset's multi-row transactions, but hang just before its COMMIT.

    Every row has been flushed to the database inside the open transaction when
    ``ready_file`` appears; the test then kills this process, as a crash would.
    """

    commit = Session.commit

    def hang(session: Session) -> None:
        if not (session.new or session.dirty or session.deleted):
            return commit(session)  # a read-only session on the way
        session.flush()
        Path(ready_file).write_text(operation)
        time.sleep(600)

    Session.commit = hang  # type: ignore[method-assign]  # this process only
    ledger = Ledger(ledger_url)
    if operation == "flip":
        flip_status(
            ledger, run_id=run_id, target=ServingStatus.RETIRED, actor="crash test", reason="x"
        )
    else:
        begin_run(ledger, NEW_REQUEST, flow_run_id="crash-test", lease_seconds=5)
    raise AssertionError("the transaction committed although commit was made to hang")
