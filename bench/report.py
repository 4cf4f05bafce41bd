"""The benchmark's record: appended as one JSON line, printed as a table against targets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from phases import MIB

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "results.jsonl"
TARGETS = {
    "snapshot_vs_raw_upload": ("≥", 1.0),
    "snapshot_vs_crt_upload": ("≥", 0.9),
    "deep_verify_vs_raw": ("≥", 0.9),
    "deep_verify_vs_rclone_check": ("≥", 1.0),
    # The snapshot step on the default local Dask cluster (one worker per core) against
    # the same files in one process. On two cores that also run the store, where one
    # process and the store already take both, expect it missed: the cluster's start and
    # its workers' imports cost CPU that the single process does not spend.
    "fan_out_default_vs_single_process": ("≥", 1.0),
    "fast_vs_deep_verify_1000_files": ("≥", 50.0),
    "small_files_snapshot_vs_put_loop": ("≤", 1.5),
    "snapshot_peak_rss_mib": ("≤", 512.0),
    "deep_verify_peak_rss_mib": ("≤", 512.0),
}


def append_record(record: dict[str, Any]) -> None:
    """Append one run's record to the results file."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a", encoding="utf-8") as out:
        out.write(json.dumps(record, sort_keys=True) + "\n")


def print_table(record: dict[str, Any], recorded: bool = True) -> None:
    """Print each measure with its target and whether this run met it."""
    print(f"\nSunset benchmarks on {record['machine']}, model {record['model_bytes'] // MIB} MiB")
    print(f"{'measure':40} {'value':>10}  target")
    for key, value in sorted(record.items()):
        if key in ("when", "machine"):
            continue
        if not isinstance(value, int | float):  # a missing peer's ratio, a list
            print(f"{key:40} {value!s:>10}")
            continue
        target = TARGETS.get(key)
        verdict = ""
        if target:
            sign, bound = target
            ok = value >= bound if sign == "≥" else value <= bound
            verdict = f"{sign} {bound}  {'met' if ok else 'MISSED'}"
        shown = f"{value:>10}" if isinstance(value, int) else f"{value:>10.2f}"
        print(f"{key:40} {shown}  {verdict}")
    if recorded:
        print(f"\nAppended to {RESULTS.relative_to(ROOT)}")
