"""Sunset's benchmarks: each result a ratio against a baseline measured in the same run.

    .venv/bin/python bench/run.py            # the full set (2 GiB; 15-20 min on 2 cores)
    .venv/bin/python bench/run.py --quick    # the same with 256 MiB, to try it out
    .venv/bin/python bench/run.py --aws-cli /tmp/awscli/bin/aws   # the AWS CLI's own venv
    .venv/bin/python bench/run.py --quick --only fan-out   # the fan-out alone, not recorded

It starts its own SeaweedFS on 127.0.0.1, generates the models under a temporary
directory, runs Sunset beside its peers (boto3, boto3's CRT transfer client, the AWS CLI
and rclone, where installed: peers.py), prints a table and the scale model (scale.py),
and appends one JSON line to bench/results/results.jsonl.
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

import scale
from phases import MIB, run_phase_here
from report import append_record, print_table
from scenarios import (
    Peers,
    Store,
    fan_out,
    measure,
    orchestration_overhead,
    write_big_model,
)


def main() -> int:
    """Measure every scenario against its baseline, record the run and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="256 MiB instead of 2 GiB.")
    parser.add_argument(
        "--gib", type=int, default=2, help="The large model's size in GiB (default 2)."
    )
    parser.add_argument("--aws-cli", default="aws", help="The AWS CLI's command.")
    parser.add_argument("--rclone", default="rclone", help="rclone's command.")
    parser.add_argument(
        "--only",
        choices=["fan-out"],
        help="Run one scenario and print it; not appended to the results (the scale model "
        "reads the whole set).",
    )
    args = parser.parse_args()
    from sunset_dev.devstack import DevStack

    shard_bytes = 64 * MIB if args.quick else args.gib * 256 * MIB
    with tempfile.TemporaryDirectory(prefix="sunset-bench-") as tmp:
        work = Path(tmp)
        # With an identity the store checks every signature, as S3 does (the CRT client's
        # streamed part signatures are refused by a SeaweedFS without identities).
        stack = DevStack(work / "devstack", s3_identities=("bench", "bench"))
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
            peers = Peers(work, args.aws_cli, args.rclone)
            store = Store(stack.pids["seaweedfs"])
            if args.only == "fan-out":
                write_big_model(work, shard_bytes)
                results = fan_out(work, store)
            else:
                results = measure(work, shard_bytes, store, peers) | orchestration_overhead(work)
        finally:
            stack.stop()
    record = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {os.cpu_count()} cores, {platform.machine()}, "
        f"Python {platform.python_version()}",
        "model_bytes": 4 * shard_bytes,
        "peers_missing": peers.missing,
        **results,
    }
    if args.only:
        print_table(record, recorded=False)
        return 0
    append_record(record)
    print_table(record)
    print()
    print(scale.report(scale.rates_from_record(record)))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "phase":
        run_phase_here(*sys.argv[2:])
        sys.exit(0)
    sys.exit(main())
