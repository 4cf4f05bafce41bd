"""A later run of a deprecation continues the earlier ones: which weights it may reuse the
package for, which requests are refused before it begins, and which interview sessions
it holds. On a SQLite ledger in a temporary directory; the flows are in
test_deprecation_runs.py."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from sunset.config import Settings
from sunset.errors import InputError
from sunset.interview.plan import plan_interview
from sunset.interview.protocol import load_protocol
from sunset.ledger import (
    CatalogModel,
    Deprecation,
    DeprecationRun,
    DeprecationStage,
    InterviewSession,
    Ledger,
    ServingStatus,
    SessionState,
    Snapshot,
    SnapshotFile,
    open_ledger,
    utcnow,
)
from sunset.preservation.records import snapshot_files
from sunset.preservation.reuse import content_differences, listing_differences
from sunset.preservation.weights import WeightsReader, scan_weights_dir
from sunset.runs.request import DeprecationRequest
from sunset.runs.validation import validate_request

pytestmark = pytest.mark.unit

TODAY = date(2026, 3, 1)
PROTOCOL = load_protocol()
WEIGHTS = {"config.json": b"{}", "model.bin": b"weights of the model"}


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    ledger = open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    with ledger.session() as db:
        db.add(
            CatalogModel(
                id="m1",
                display_name="Model One",
                serving_status=ServingStatus.DEPRECATED,
                deprecation_announced_on=TODAY - timedelta(days=100),
                retirement_on=TODAY,
            )
        )
    yield ledger
    ledger.dispose()


def write_weights(directory: Path, files: dict[str, bytes] = WEIGHTS) -> Path:
    directory.mkdir(exist_ok=True)
    for name, data in files.items():
        (directory / name).write_bytes(data)
    return directory


def announced(ledger: Ledger, *, package: bool = True, sessions: int = 0) -> DeprecationRun:
    """m1 announced by a completed run that stored WEIGHTS in the deprecation's package and
    held ``sessions`` complete interview sessions."""
    with ledger.session() as db:
        deprecation = Deprecation(
            model_id="m1", stage=DeprecationStage.ANNOUNCED, retirement_on=TODAY
        )
        db.add(deprecation)
        db.flush()
        run = DeprecationRun(model_id="m1", deprecation_id=deprecation.id, state="completed")
        db.add(run)
        db.flush()
        if package:
            snapshot = Snapshot(
                id="s1", run_id=run.id, model_id="m1", endpoint="e", bucket="b", prefix="p/"
            )
            db.add(snapshot)
            for name, data in WEIGHTS.items():
                db.add(
                    SnapshotFile(
                        snapshot_id="s1",
                        path=f"data/weights/{name}",
                        size=len(data),
                        sha256=hashlib.sha256(data).hexdigest(),
                        sha512="0" * 128,
                        crc64nvme="AAAAAAAAAAA=",
                    )
                )
            deprecation.snapshot_id = "s1"
            db.add(deprecation)
        for index in range(1, sessions + 1):
            db.add(session_of(run.id, index, SessionState.COMPLETED))
        db.refresh(run)
        return run


def session_of(run_id: str, index: int, state: SessionState) -> InterviewSession:
    return InterviewSession(
        run_id=run_id,
        model_id="m1",
        session_index=index,
        protocol_name=PROTOCOL.protocol.name,
        protocol_version=PROTOCOL.protocol.version,
        protocol_sha256=PROTOCOL.sha256,
        state=state,
        started_at=utcnow(),
    )


def later_run(ledger: Ledger, earlier: DeprecationRun) -> str:
    with ledger.session() as db:
        run = DeprecationRun(model_id="m1", deprecation_id=earlier.deprecation_id)
        db.add(run)
        return run.id


def validate(ledger: Ledger, tmp_path: Path, weights: Path, **fields: Any) -> None:
    recipients = tmp_path / "users.csv"
    recipients.write_text("email,name\nada@example.org,Ada\n")
    request = DeprecationRequest(
        model_id="m1",
        weights=str(weights),
        recipients=str(recipients),
        retire=True,
        notice_override_reason="test",
        **fields,
    )
    settings = Settings(minimum_notice_days=90, minimum_notice_days_by_class={})
    validate_request(ledger, request, settings, weights=WeightsReader(None), today=TODAY)


def test_weights_that_differ_by_name_or_size_are_named_without_reading_a_byte(
    ledger: Ledger, tmp_path: Path
) -> None:
    announced(ledger)
    weights = write_weights(tmp_path / "weights", {"model.bin": b"other size", "extra.bin": b"new"})

    differences = listing_differences(snapshot_files(ledger, "s1"), scan_weights_dir(weights))

    assert differences == [
        "model.bin is 10 bytes, 20 in the package",
        "config.json is missing",
        "extra.bin is not in the package",
    ]


def test_weights_of_the_same_size_with_other_bytes_are_found_by_their_hash(
    ledger: Ledger, tmp_path: Path
) -> None:
    announced(ledger)
    same = scan_weights_dir(write_weights(tmp_path / "same"))
    changed = scan_weights_dir(
        write_weights(tmp_path / "changed", WEIGHTS | {"model.bin": b"WEIGHTS of the model"})
    )
    seen: list[tuple[int, int]] = []

    assert content_differences(snapshot_files(ledger, "s1"), same, WeightsReader(None)) == []
    (difference,) = content_differences(
        snapshot_files(ledger, "s1"), changed, WeightsReader(None), lambda *p: seen.append(p)
    )

    assert difference.startswith("model.bin holds other bytes (SHA-256 ")
    assert seen[-1] == (22, 22)


def test_a_retirement_with_the_preserved_weights_is_accepted(
    ledger: Ledger, tmp_path: Path
) -> None:
    announced(ledger, sessions=1)

    validate(ledger, tmp_path, write_weights(tmp_path / "weights"), more_sessions=2)


@pytest.mark.parametrize(
    ("package", "sessions", "fields", "sentence"),
    [
        (
            True,
            1,
            {"weights_files": {"model.bin": b"x"}},
            "The weights at {weights} are not the ones this deprecation preserved in package "
            "s1: model.bin is 1 bytes, 20 in the package; config.json is missing. Point "
            "--weights at the files that were preserved, or pass --new-snapshot REASON",
        ),
        (
            False,
            1,
            {"new_snapshot_reason": "a fix"},
            "m1 has no deprecation package for --new-snapshot to replace",
        ),
        (
            True,
            0,
            {"more_sessions": 1},
            "--more-sessions adds to the interview an earlier run of m1's deprecation held, "
            "and none was held yet; ask for them with --sessions N.",
        ),
        (
            True,
            1,
            {"more_sessions": 1, "protocol_text": b"other"},
            "The interview of m1's deprecation was held under protocol "
            f"sunset-standard-interview {PROTOCOL.protocol.version}",
        ),
    ],
    ids=["changed weights", "nothing to replace", "no interview to join", "another protocol"],
)
def test_a_request_that_cannot_continue_the_deprecation_is_refused_before_it_begins(
    ledger: Ledger,
    tmp_path: Path,
    package: bool,
    sessions: int,
    fields: dict[str, Any],
    sentence: str,
) -> None:
    announced(ledger, package=package, sessions=sessions)
    weights = write_weights(tmp_path / "weights", fields.pop("weights_files", WEIGHTS))
    if "protocol_text" in fields:
        protocol = tmp_path / "protocol.yaml"
        protocol.write_bytes(PROTOCOL.source + b"\n# " + fields.pop("protocol_text") + b"\n")
        fields["protocol"] = str(protocol)

    with pytest.raises(InputError) as refused:
        validate(ledger, tmp_path, weights, **fields)

    assert str(refused.value).startswith(sentence.format(weights=weights))


def test_the_first_run_to_interview_holds_the_sessions_asked_for(ledger: Ledger) -> None:
    run = announced(ledger)

    plan = plan_interview(ledger, run.id, sessions=3, more_sessions=0)

    assert plan.sessions == [1, 2, 3]


def test_a_later_run_skips_a_complete_interview_and_says_why(ledger: Ledger) -> None:
    retirement = later_run(ledger, announced(ledger, sessions=2))

    plan = plan_interview(ledger, retirement, sessions=1, more_sessions=0)

    assert plan.sessions == []
    skipped = plan.skipped_summary()
    assert skipped.sessions == 0 and skipped.protocol_sha256 == PROTOCOL.sha256
    assert skipped.skipped is not None
    assert skipped.skipped.startswith("The interview of this deprecation is complete (2 session")


def test_more_sessions_are_numbered_after_the_interviews_and_counted_once_on_resume(
    ledger: Ledger,
) -> None:
    retirement = later_run(ledger, announced(ledger, sessions=2))

    first = plan_interview(ledger, retirement, sessions=1, more_sessions=2)
    with ledger.session() as db:
        db.add(session_of(retirement, 3, SessionState.COMPLETED))
    resumed = plan_interview(ledger, retirement, sessions=1, more_sessions=2)

    assert first.sessions == [3, 4]
    assert resumed.sessions == [3, 4]


def test_a_session_an_earlier_run_left_open_is_resumed_not_held_anew(ledger: Ledger) -> None:
    earlier = announced(ledger, sessions=1)
    with ledger.session() as db:
        db.add(session_of(earlier.id, 2, SessionState.RUNNING))
    retirement = later_run(ledger, earlier)

    assert plan_interview(ledger, retirement, sessions=1, more_sessions=0).sessions == [2]


def test_a_retirement_resumed_after_its_flip_still_continues_the_deprecations_package(
    ledger: Ledger, tmp_path: Path
) -> None:
    run = announced(ledger, sessions=1)
    with ledger.session() as db:
        deprecation = db.get(Deprecation, run.deprecation_id)
        assert deprecation is not None
        deprecation.stage = DeprecationStage.RETIRED
        db.add(deprecation)
    changed = write_weights(tmp_path / "changed", {"model.bin": b"x"})

    validate(ledger, tmp_path, changed, new_snapshot_reason="a fix")
    with pytest.raises(InputError, match="not the ones this deprecation preserved in package s1"):
        validate(ledger, tmp_path, changed)
