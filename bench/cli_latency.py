"""How fast the CLI answers: `sunset --help`, `sunset status MODEL` and `sunset runs`.

    .venv/bin/python bench/cli_latency.py            # 15 runs of each, about 30 s
    .venv/bin/python bench/cli_latency.py --runs 31

Each command runs as a fresh process, as a release manager types it, against a ledger of
its own (one registered model, in a temporary data directory). The baseline, measured in
the same run and interleaved with the commands, is `python -c pass` with the same
interpreter: what starting Python costs before Sunset does anything. The target is a
median under 0.5 s for each command. Prints a table, with the machine's load averages
before and after (on two shared cores, other work moves the medians), and appends one
JSON line to bench/results/results.jsonl.

Python's bytecode cache is left on for the commands, as a release manager's Python has it
(pip compiles an installed package; an editable install writes its cache on the first
run), even where this shell sets PYTHONDONTWRITEBYTECODE: the warm-up run writes it.
Without the cache every run compiles Sunset's modules again, about 0.05 s here.

The `sunset` script beside the interpreter imports the `sunset` package that interpreter
finds first: run it with PYTHONPATH set to a working tree to measure that tree rather
than the installed one.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from report import append_record

TARGET_SECONDS = 0.5
MODEL = "bench-chat-1"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="Runs of each command.")
    args = parser.parse_args()
    sunset = str(Path(sys.executable).with_name("sunset"))
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "sunset --help": [sunset, "--help"],
        f"sunset status {MODEL}": [sunset, "status", MODEL],
        "sunset runs": [sunset, "runs"],
    }
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="sunset-cli-bench-") as tmp:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("SUNSET_") and key != "PYTHONDONTWRITEBYTECODE"
        } | {
            "SUNSET_DATA_DIR": tmp,
            "HOME": tmp,
        }
        _run([sunset, "register", MODEL, "--name", "Bench Chat 1"], env)
        for argv in commands.values():  # once each: the page cache, the bytecode cache
            _run(argv, env)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):  # interleaved, so load drift hits every command alike
            for name, argv in commands.items():
                times[name].append(_run(argv, env))
    load_after = os.getloadavg()
    medians = {name: statistics.median(values) for name, values in times.items()}
    baseline = medians["python -c pass"]
    print(
        f"\nCLI latency on {platform.node()} ({os.cpu_count()} cores), median of {args.runs} "
        f"runs; baseline `python -c pass` {baseline * 1000:.0f} ms; load average (1, 5, "
        f"15 min) {_load(load_before)} before, {_load(load_after)} after"
    )
    print(f"{'command':32} {'median':>9} {'vs baseline':>12}  target < {TARGET_SECONDS} s")
    record: dict[str, object] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {os.cpu_count()} cores, {platform.machine()}, "
        f"Python {platform.python_version()}",
        "cli_runs": args.runs,
        "cli_baseline_s": round(baseline, 4),
        "cli_load_before": [round(load, 2) for load in load_before],
        "cli_load_after": [round(load, 2) for load in load_after],
    }
    for name, median in medians.items():
        if name == "python -c pass":
            continue
        verdict = "met" if median < TARGET_SECONDS else "MISSED"
        print(f"{name:32} {median:8.3f}s {median / baseline:11.1f}×  {verdict}")
        record[f"cli_{name.split()[1].lstrip('-')}_s"] = round(median, 4)
    append_record(record)
    return 0


def _load(averages: tuple[float, float, float]) -> str:
    return " ".join(f"{load:.2f}" for load in averages)


def _run(argv: list[str], env: dict[str, str]) -> float:
    began = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - began


if __name__ == "__main__":
    sys.exit(main())
