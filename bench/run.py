"""Sunset's benchmarks: each result a ratio against a baseline measured in the same run.

    .venv/bin/python bench/run.py            # the full set (a 2 GiB model; ~5 minutes)
    .venv/bin/python bench/run.py --quick    # the same with 256 MiB, to try it out

It starts its own SeaweedFS on 127.0.0.1, generates the models under a temporary
directory, prints a table and appends one JSON line to bench/results/results.jsonl.
Every measured phase runs in a fresh subprocess, so its peak RSS is its own. Not part of
the test suite: numbers depend on the machine and what else it is doing.

Running this file puts bench/ first on sys.path, so its sibling modules import by name:
phases.py (the measured phases), scenarios.py (the runs and ratios), report.py (the record).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from phases import MIB, run_phase_here
from report import append_record, print_table
from scenarios import measure, orchestration_overhead


def main() -> int:
    """Measure every scenario against its baseline, record the run and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="256 MiB instead of 2 GiB.")
    args = parser.parse_args()
    from sunset_dev.devstack import DevStack

    shard_bytes = (64 if args.quick else 512) * MIB
    with tempfile.TemporaryDirectory(prefix="sunset-bench-") as tmp:
        work = Path(tmp)
        stack = DevStack(work / "devstack")
        try:
            os.environ.update(
                stack.start().as_env()
                | {
                    "SUNSET_S3_ACCESS_KEY_ID": "bench",
                    "SUNSET_S3_SECRET_ACCESS_KEY": "bench",
                    "SUNSET_DATABASE_URL": f"sqlite:///{work / 'ledger.db'}",
                    "SUNSET_DATA_DIR": str(work / "data"),
                    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
                }
            )
            results = measure(work, shard_bytes) | orchestration_overhead(work)
        finally:
            stack.stop()
    record = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {os.cpu_count()} cores, {platform.machine()}, "
        f"Python {platform.python_version()}",
        "model_bytes": 4 * shard_bytes,
        **results,
    }
    append_record(record)
    print_table(record)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "phase":
        run_phase_here(*sys.argv[2:])
        sys.exit(0)
    sys.exit(main())
