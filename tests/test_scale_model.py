"""The benchmark's scale model (bench/scale.py): time against size, workers and cores."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.unit

GIB = 1024**3


def _load_scale() -> ModuleType:
    path = Path(__file__).resolve().parent.parent / "bench" / "scale.py"
    spec = importlib.util.spec_from_file_location("bench_scale", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while defining
    spec.loader.exec_module(module)
    return module


scale = _load_scale()

MEASURED = {
    "when": "2026-11-30T08:00:00+00:00",
    "machine": "test",
    "hash_sha512_mib_s": 512.0,
    "hash_sha256_mib_s": 1024.0,
    "hash_crc64nvme_mib_s": 8192.0,
    "snapshot_cpu_s_per_gib": 5.0,
    "deep_verify_cpu_s_per_gib": 4.0,
    "store_mib_s": 300.0,
}


def _seconds(**overrides: float) -> float:
    given: dict[str, float] = {
        "cpu_s_per_gib": 4.0,
        "serial_mib_s": 512.0,
        "workers": 1,
        "cores": 2,
        "files": 100,
        "network_mib_s": math.inf,
    } | overrides
    return float(scale.pass_seconds(64 * GIB, **given))


def test_a_pass_bound_by_client_cpu_takes_bytes_times_cpu_per_byte_over_the_cores() -> None:
    # 2 cores at 4 CPU-s per GiB: 0.5 GiB/s, so 64 GiB takes 128 s.
    assert _seconds() == pytest.approx(128.0)
    assert _seconds(workers=4) == pytest.approx(32.0)
    assert _seconds(cores=16) == pytest.approx(16.0)


def test_a_pass_is_bound_by_the_network_the_store_and_one_file_per_core() -> None:
    assert _seconds(workers=4, network_mib_s=128.0) == pytest.approx(64 * 1024 / 512)
    assert _seconds(workers=4, store_mib_s=256.0) == pytest.approx(256.0)
    # One file left per worker: its slowest digest is one serial stream at 512 MiB/s.
    assert _seconds(cores=16, files=1) == pytest.approx(128.0)


def test_a_snapshot_hashes_once_and_sends_once_per_replica_and_verification_reads_each() -> None:
    rates = scale.rates_from_record(MEASURED)
    hashing = 1024 / 512 + 1024 / 1024 + 1024 / 8192  # 3.125 CPU-s per GiB
    assert rates.hash_cpu_s_per_gib == pytest.approx(hashing)
    assert rates.snapshot_cpu(1) == pytest.approx(5.0)
    assert rates.snapshot_cpu(3) == pytest.approx(hashing + 3 * (5.0 - hashing))
    assert rates.verify_cpu(2) == pytest.approx(8.0)
    # A deep check hashes SHA-256 and CRC64NVME one after the other, no SHA-512.
    assert rates.verify_serial_mib_s == pytest.approx(1 / (1 / 1024 + 1 / 8192))


def test_a_record_without_the_measured_inputs_is_refused_with_what_is_missing() -> None:
    record = {k: v for k, v in MEASURED.items() if k != "store_mib_s"}
    with pytest.raises(ValueError, match="lacks store_mib_s; run bench/run.py"):
        scale.rates_from_record(record)


def test_the_report_states_its_inputs_and_times_for_one_and_four_terabytes() -> None:
    text = scale.report(scale.rates_from_record(MEASURED), replicas=2, files=400, nic_gbit=25)
    assert "SHA-512 512 MiB/s" in text and "client CPU 5.00 s/GiB snapshot" in text
    assert "1 TB snapshot" in text and "4 TB verify" in text
    # 1 worker of 2 cores, snapshot to 2 copies: C = 3.125 + 2 * 1.875 = 6.875 CPU-s/GiB,
    # so 1e12 bytes take 1e12 / GiB * 6.875 / 2 s = 53.4 min.
    assert "           1 x 2         53 min" in text
