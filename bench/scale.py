"""How long preserving a model takes on N workers of K cores: a model built from the
benchmark's measured rates, not from assumed ones.

    .venv/bin/python bench/scale.py                 # from the latest 2 GiB run in results
    .venv/bin/python bench/scale.py --nic-gbit 100  # workers with a faster network

One pass over B bytes (a snapshot, or a deep verification of every replica) on N workers
of K cores takes

    T = B / min(N * W, S)        W = min(K * 1 GiB / C, F * H, L)

where C is the client CPU-seconds the pass spends per GiB (measured: the benchmark's
snapshot or deep verification, divided by its bytes), H the rate of one file's slowest
serial hashing on one core (measured: a snapshot's SHA-512, on a lane of its own; a deep
check's SHA-256 and CRC64NVME, one after the other on its reader's thread; a file's
digests are serial streams, so a worker hashing F files at once cannot go faster than
F * H; F is min(K, files per worker), files being hashed one per core), L the network
one worker has (given: not measurable here), and S what the store takes from all workers
together (measured for the local SeaweedFS; S3 scales out by prefix, so against S3 it is
not the bound and the table leaves it out).

A snapshot reads and hashes each byte once and sends it to every replica, so for R
replicas C = hashing + R * sending, hashing being the three digests' CPU per GiB at the
measured per-core rates and sending the rest of the measured snapshot's CPU; a deep
verification reads every replica back, so C = R * (the measured deep verification's CPU).
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GIB = 1024**3
MIB = 1024**2
TB = 10**12
RESULTS = Path(__file__).resolve().parent / "results" / "results.jsonl"
# The grid the table shows: (workers, cores per worker).
LAYOUTS = ((1, 2), (1, 16), (4, 16), (16, 16), (64, 16))


@dataclass(frozen=True)
class Rates:
    """The measured inputs, from one benchmark run."""

    sha512_mib_s: float  # one core
    sha256_mib_s: float  # one core
    crc64nvme_mib_s: float  # one core
    snapshot_cpu_s_per_gib: float  # the client's CPU, one copy, its hashing included
    verify_cpu_s_per_gib: float  # the client's CPU for a deep verification of one copy
    store_mib_s: float  # the most any client got through the local store in the run
    machine: str

    @property
    def hash_cpu_s_per_gib(self) -> float:
        """CPU-seconds per GiB for SHA-512, SHA-256 and CRC64NVME together."""
        return sum(GIB / MIB / rate for rate in self._digest_rates())

    def _digest_rates(self) -> tuple[float, float, float]:
        return self.sha512_mib_s, self.sha256_mib_s, self.crc64nvme_mib_s

    def snapshot_cpu(self, replicas: int) -> float:
        """CPU-seconds per GiB of a snapshot to ``replicas`` copies: one hash, R sends."""
        sending = max(self.snapshot_cpu_s_per_gib - self.hash_cpu_s_per_gib, 0.0)
        return self.hash_cpu_s_per_gib + replicas * sending

    def verify_cpu(self, replicas: int) -> float:
        """CPU-seconds per GiB of a deep verification of ``replicas`` copies."""
        return replicas * self.verify_cpu_s_per_gib

    @property
    def verify_serial_mib_s(self) -> float:
        """One file's deep check on one core: SHA-256, then CRC64NVME, on each chunk."""
        return 1 / (1 / self.sha256_mib_s + 1 / self.crc64nvme_mib_s)


def rates_from_record(record: dict[str, Any]) -> Rates:
    """The model's inputs from one benchmark record (bench/results/results.jsonl).

    Raises:
        ValueError: the record lacks a measured input (a run from before the model).
    """
    wanted = (
        "hash_sha512_mib_s",
        "hash_sha256_mib_s",
        "hash_crc64nvme_mib_s",
        "snapshot_cpu_s_per_gib",
        "deep_verify_cpu_s_per_gib",
        "store_mib_s",
    )
    missing = [key for key in wanted if key not in record]
    if missing:
        raise ValueError(
            f"The benchmark record of {record.get('when', 'an unknown time')} lacks "
            f"{', '.join(missing)}; run bench/run.py once to measure them."
        )
    return Rates(
        sha512_mib_s=record["hash_sha512_mib_s"],
        sha256_mib_s=record["hash_sha256_mib_s"],
        crc64nvme_mib_s=record["hash_crc64nvme_mib_s"],
        snapshot_cpu_s_per_gib=record["snapshot_cpu_s_per_gib"],
        verify_cpu_s_per_gib=record["deep_verify_cpu_s_per_gib"],
        store_mib_s=record["store_mib_s"],
        machine=record.get("machine", "unknown"),
    )


def pass_seconds(
    size_bytes: float,
    *,
    cpu_s_per_gib: float,
    serial_mib_s: float,
    workers: int,
    cores: int,
    files: int,
    network_mib_s: float,
    store_mib_s: float = math.inf,
) -> float:
    """Seconds for one pass over ``size_bytes``: T = B / min(N * W, S), as the module says."""
    files_at_once = min(cores, math.ceil(files / workers))
    per_worker = min(
        cores * GIB / MIB / cpu_s_per_gib,
        files_at_once * serial_mib_s,
        network_mib_s,
    )
    return size_bytes / MIB / min(workers * per_worker, store_mib_s)


def table(
    rates: Rates,
    *,
    replicas: int,
    files: int,
    nic_gbit: float,
    store_mib_s: float = math.inf,
) -> list[str]:
    """Lines of the table: 1 TB and 4 TB, snapshot and deep verification, per layout."""
    network = nic_gbit * 1e9 / 8 / MIB
    lines = [
        f"{'workers x cores':>16} {'1 TB snapshot':>14} {'1 TB verify':>12} "
        f"{'4 TB snapshot':>14} {'4 TB verify':>12}"
    ]
    for workers, cores in LAYOUTS:
        cells = []
        for size in (TB, 4 * TB):
            for cpu, serial in (
                (rates.snapshot_cpu(replicas), rates.sha512_mib_s),
                (rates.verify_cpu(replicas), rates.verify_serial_mib_s),
            ):
                seconds = pass_seconds(
                    size,
                    cpu_s_per_gib=cpu,
                    serial_mib_s=serial,
                    workers=workers,
                    cores=cores,
                    files=files,
                    network_mib_s=network,
                    store_mib_s=store_mib_s,
                )
                cells.append(_duration(seconds))
        lines.append(
            f"{f'{workers} x {cores}':>16} {cells[0]:>14} {cells[1]:>12} "
            f"{cells[2]:>14} {cells[3]:>12}"
        )
    return lines


def report(rates: Rates, *, replicas: int = 2, files: int = 400, nic_gbit: float = 25.0) -> str:
    """The model's inputs and its two tables (against S3, and against the measured store)."""
    lines = [
        f"Scale model from the run on {rates.machine}",
        f"  measured: SHA-512 {rates.sha512_mib_s:.0f} MiB/s, SHA-256 {rates.sha256_mib_s:.0f} "
        f"MiB/s, CRC64NVME {rates.crc64nvme_mib_s:.0f} MiB/s per core "
        f"({rates.hash_cpu_s_per_gib:.2f} CPU-s/GiB hashing)",
        f"  measured: client CPU {rates.snapshot_cpu_s_per_gib:.2f} s/GiB snapshot (one copy), "
        f"{rates.verify_cpu_s_per_gib:.2f} s/GiB deep verification; store "
        f"{rates.store_mib_s:.0f} MiB/s",
        f"  given: {replicas} copies, {files} files, {nic_gbit:g} Gbit/s per worker",
        f"  snapshot C = {rates.snapshot_cpu(replicas):.2f} CPU-s/GiB, "
        f"deep verification C = {rates.verify_cpu(replicas):.2f} CPU-s/GiB",
        "",
        "Against S3 (the store not the bound; T = B / (N * min(K GiB / C, F H, L))):",
        *table(rates, replicas=replicas, files=files, nic_gbit=nic_gbit),
        "",
        f"Against a store taking {rates.store_mib_s:.0f} MiB/s, as measured here:",
        *table(
            rates, replicas=replicas, files=files, nic_gbit=nic_gbit, store_mib_s=rates.store_mib_s
        ),
    ]
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replicas", type=int, default=2, help="Copies written (default 2).")
    parser.add_argument("--files", type=int, default=400, help="Files in the model.")
    parser.add_argument("--nic-gbit", type=float, default=25.0, help="Network per worker.")
    args = parser.parse_args()
    records = [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]
    measured = [r for r in records if "store_mib_s" in r]
    if not measured:
        raise SystemExit("No benchmark run has measured the model's inputs; run bench/run.py.")
    rates = rates_from_record(measured[-1])
    print(report(rates, replicas=args.replicas, files=args.files, nic_gbit=args.nic_gbit))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
