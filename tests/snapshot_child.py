"""A snapshot in a process of its own, so that a test can SIGKILL it in the middle.

    python -m tests.snapshot_child LEDGER_URL RUN_ID WEIGHTS [--stall KEY_SUFFIX PART MARKER]

Settings come from the SUNSET_* environment, the workers that store the files too
(tasks/fanout.py: with SUNSET_TASK_RUNNER=dask, Prefect's API from PREFECT_API_URL). With
--stall, the process writes MARKER and hangs as soon as part PART of the object whose key
ends with KEY_SUFFIX is being sent, with its multipart uploads open: the moment the test
kills it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from sunset.config import Settings
from sunset.ledger import open_ledger
from sunset.preservation.replicas import connect_store, weights_reader
from sunset.preservation.store import ObjectStore
from tasks.fanout import workers_for
from tests.preservation import snapshot


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("ledger_url")
    parser.add_argument("run_id")
    parser.add_argument("weights")
    parser.add_argument("--stall", nargs=3, metavar=("KEY_SUFFIX", "PART", "MARKER"))
    args = parser.parse_args()
    if args.stall:
        suffix, part, marker = args.stall[0], int(args.stall[1]), Path(args.stall[2])
        send_part = ObjectStore.send_part

        def stalling(self: ObjectStore, key: str, upload_id: str, number: int, *rest: Any) -> Any:
            if key.endswith(suffix) and number == part:
                marker.write_text(f"{self.name} {key} part {number}")
                time.sleep(3600)
            return send_part(self, key, upload_id, number, *rest)

        ObjectStore.send_part = stalling  # type: ignore[method-assign]
    settings = Settings()
    store = connect_store(settings)
    reader = weights_reader(settings)
    with workers_for(settings, store, reader) as workers:
        summary = snapshot(
            open_ledger(args.ledger_url), store, args.weights, args.run_id, reader, workers
        )
    print(
        f"uploaded={summary.uploaded_files} skipped={summary.skipped_files} "
        f"bytes_sent={summary.bytes_sent}",
        flush=True,
    )


if __name__ == "__main__":
    main()
