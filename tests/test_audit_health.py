"""The audit's pure parts: asking a replica again with backoff and setting it aside, and
how package health reads, at 80 columns, in one line and in the run's artifact."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import botocore.exceptions
import pytest
from rich.console import Console

from sunset.cli import output
from sunset.ledger import AuditFinding, AuditRun, AuditState, FindingKind
from sunset.preservation.health import (
    CoverageClock,
    PackageHealth,
    ReplicaHealth,
    RunRow,
    run_markdown,
)
from sunset.preservation.outcomes import ALL_DIGESTS, DEEP_DIGESTS
from sunset.preservation.reach import Reach, Unreached
from tests.faults.flaky import ANSWER, Flaky

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
LONG_MODEL_ID = "acme-enterprise-chat-2025-10-01-preview1"  # 40 characters
SNAPSHOT_ID = f"{LONG_MODEL_ID}-20261201T030000Z-8d81008a"
BROKEN = botocore.exceptions.ClientError(
    {"Error": {"Code": "InternalError"}, "ResponseMetadata": {"HTTPStatusCode": 500}}, "GetObject"
)
REFUSED = botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:9")
DENIED = botocore.exceptions.ClientError(
    {"Error": {"Code": "AccessDenied"}, "ResponseMetadata": {"HTTPStatusCode": 403}}, "GetObject"
)


def test_a_replica_that_stops_answering_is_asked_again_after_doubling_waits_then_set_aside() -> (
    None
):
    waited: list[float] = []
    reach = Reach.doubling(3, 0.5)
    reach._sleep = waited.append  # type: ignore[method-assign]

    recovered = reach.ask("primary", Flaky(REFUSED, REFUSED))
    silent = Flaky(*[REFUSED] * 10)
    gone = reach.ask("offsite", silent)
    again = Flaky()

    assert recovered == ANSWER and reach.reachable("primary")
    assert isinstance(gone, Unreached) and "EndpointConnectionError" in gone.error
    assert silent.calls == 4  # the first try and three more
    assert waited == [0.5, 1.0, 0.5, 1.0, 2.0]
    assert reach.ask("offsite", again) == gone and again.calls == 0  # not asked again
    assert reach.unanswered.set_aside == {"offsite": gone.error}


def test_a_replica_that_answers_errors_for_one_object_is_still_asked_about_the_others() -> None:
    reach = Reach((0.0,), sleep=lambda _: None)

    refused = reach.ask("offsite", Flaky(DENIED))  # not retried: it would only repeat
    rotten = reach.ask("offsite", Flaky(BROKEN, BROKEN))  # retried, then left unknown
    fine = reach.ask("offsite", Flaky())

    assert isinstance(refused, Unreached) and "AccessDenied" in refused.error
    assert isinstance(rotten, Unreached) and "InternalError" in rotten.error
    assert fine == ANSWER and reach.reachable("offsite")
    assert reach.unanswered.errors == {"offsite": refused.error}  # the run is incomplete
    for _ in range(3):  # three in a row, though: the replica is set aside
        reach.ask("offsite", Flaky(DENIED))
    assert not reach.reachable("offsite")
    with pytest.raises(botocore.exceptions.ClientError):
        reach.retrying(Flaky(DENIED))  # a repair's copy: raised, for it to say why


def finding(kind: FindingKind, path: str, detail: str) -> AuditFinding:
    return AuditFinding(
        snapshot_id=SNAPSHOT_ID,
        replica="offsite-eu-central-archive",
        path=path,
        kind=kind,
        outcome="unreachable" if kind == FindingKind.UNREACHABLE else "mismatch",
        detail=detail,
        first_audit_id="a1",
        first_found_at=NOW - timedelta(days=2),
        last_audit_id="a2",
        last_found_at=NOW,
    )


def a_package() -> PackageHealth:
    long_path = "data/weights/model-00001-of-00002.safetensors"
    return PackageHealth(
        snapshot_id=SNAPSHOT_ID,
        model_id=LONG_MODEL_ID,
        period_days=90,
        replicas=[
            ReplicaHealth("primary", 10, 1000, NOW, NOW - timedelta(days=3), 1000, 0, 0, NOW),
            ReplicaHealth("offsite-eu-central-archive", 10, 1000, None, None, 250, 1, 9, NOW),
        ],
        findings=[
            finding(FindingKind.DAMAGED, long_path, "sha512 differs from the manifest"),
            finding(
                FindingKind.UNREACHABLE,
                "data/weights/config.json",
                "replica offsite-eu-central-archive: EndpointConnectionError: Could not "
                'connect to the endpoint URL: "http://10.0.0.7:9000/archive"',
            ),
        ],
    )


def test_audit_health_at_80_columns_shows_ids_dates_and_findings_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    screen = Console(record=True, width=80)
    monkeypatch.setattr(output, "console", screen)
    last = AuditRun(name="audit-2026-12-01", state=AuditState.INCOMPLETE, started_at=NOW)
    clock = CoverageClock(NOW - timedelta(days=95), f"{LONG_MODEL_ID} primary:bagit.txt", 90)

    output.show_audit_health(last, clock, [a_package()])

    lines = screen.export_text().splitlines()
    text = " ".join(" ".join(lines).split())
    assert max(len(line) for line in lines) <= 80
    assert "Last audit: audit-2026-12-01 incomplete, started 2026-12-01 03:00:00 UTC" in text
    assert "against a period of 90 days: behind by" in text
    assert any(LONG_MODEL_ID in line for line in lines)
    rows = [[cell.strip() for cell in line.split("\u2502")] for line in lines]
    assert ["primary", "2026-12-01", "2026-11-28", "100%", "none", "2026-12-01"] in rows
    [at] = [i for i, row in enumerate(rows) if row[1:4] == ["never", "never", "25%"]]
    offsite, below = rows[at], rows[at + 1]  # a long name and the open findings wrap
    assert offsite[0] + below[0] == "offsite-eu-central-archive"
    assert f"{offsite[4]} {below[4]}" == "1 damaged, 9 unchecked"
    assert "data/weights/model-00001-of-00002.safetensors damaged (mismatch: sha512" in text
    assert 'EndpointConnectionError: Could not connect to the endpoint URL: "http://10.0.0.7' in (
        text
    )


def test_a_model_s_package_health_is_one_line_saying_what_is_open() -> None:
    line = a_package().one_line()

    assert line == (
        "Package health: 1 object(s) with open damage; 9 check(s) could not be made; "
        "fast-checked ok since never on 2 replica(s); deep-checked since never, 62% within "
        "90 days; locked until 2026-12-01."
    )


def test_the_run_artifact_is_a_table_by_model_and_replica_and_the_clock() -> None:
    rows = [RunRow("m|1", "primary", 10, 4, 4096, 1, 1, 0, 0), RunRow("m|1", "offsite", 10)]
    clock = CoverageClock(datetime.now(UTC) - timedelta(days=10), "m|1 primary:x", 90)

    text = run_markdown("audit-2026-12-01", "completed", rows, clock, DEEP_DIGESTS)
    none_deep = run_markdown("audit-2026-12-01", "completed", rows[1:], clock, ALL_DIGESTS)

    assert text.startswith("# Preservation audit audit-2026-12-01: completed\n")
    assert "Deep checks re-read every byte and compared its SHA-256 and CRC64NVME with" in text
    assert "Deep checks" not in none_deep
    assert "| m\\|1 | primary | 10 | 4 | 4096 | 1 | 1 | 0 | 0 |" in text
    assert "| m\\|1 | offsite | 10 | 0 | 0 | 0 | 0 | 0 | 0 |" in text
    assert "the oldest deep check is 10 day(s) old" in text and "80 day(s) to spare" in text
