"""The deprecate_model flow, end to end, against the real local services."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterType,
    FlowRunFilter,
    FlowRunFilterId,
)
from sqlmodel import select

from flows import deprecate as deprecate_flow
from sunset.errors import VerificationFailed
from sunset.interview.protocol import load_protocol
from sunset.ledger import (
    CatalogModel,
    DeprecationRun,
    InterviewTurn,
    Report,
    RunState,
    StatusTransition,
    StepAttempt,
)
from sunset.runs.request import DeprecationRequest
from sunset.runs.steps import (
    CHECK_STEP,
    FLIP_STEP,
    INTERVIEW_STEP,
    NOTIFY_STEP,
    PREFLIGHT_STEP,
    REPORT_STEP,
    ROUTE_STEP,
    SNAPSHOT_STEP,
    VERIFY_STEP,
)
from sunset_dev.devstack import start_smtp
from sunset_dev.example_model import EXAMPLE_MODEL_ID
from tests.conftest import Site

pytestmark = pytest.mark.usefixtures("prefect_server")

ALL_STEPS = [
    PREFLIGHT_STEP,
    NOTIFY_STEP,
    SNAPSHOT_STEP,
    VERIFY_STEP,
    INTERVIEW_STEP,
    REPORT_STEP,
    FLIP_STEP,
    ROUTE_STEP,
    CHECK_STEP,
]


def run_flow(site: Site, **overrides: Any) -> Any:
    fields: dict[str, Any] = {
        "model_id": EXAMPLE_MODEL_ID,
        "weights": str(site.weights),
        "recipients": str(site.recipients),
    } | overrides
    return deprecate_flow.deprecate_model(DeprecationRequest(**fields))


def attempts(site: Site) -> list[StepAttempt]:
    with site.ledger.session() as db:
        return list(db.exec(select(StepAttempt).order_by(StepAttempt.id)))


def model_status(site: Site) -> str:
    with site.ledger.session() as db:
        model = db.get(CatalogModel, EXAMPLE_MODEL_ID)
        assert model is not None
        return str(model.serving_status)


def test_flow_completes_with_one_recorded_attempt_per_step(site: Site, tmp_path: Path) -> None:
    outcome = run_flow(site)

    assert outcome.status == "deprecated"
    assert model_status(site) == "deprecated"
    recorded = attempts(site)
    assert [a.step for a in recorded] == ALL_STEPS
    assert all(a.state == "completed" and a.attempt == 1 for a in recorded)
    assert all(a.finished_at is not None and a.error is None for a in recorded)
    with site.ledger.session() as db:
        run = db.exec(select(DeprecationRun)).one()
        assert run.state == RunState.COMPLETED
        assert run.flow_run_id and run.finished_at
        transition = db.exec(select(StatusTransition)).one()
        assert (transition.from_status, transition.to_status) == ("active", "deprecated")
        report = db.exec(select(Report)).one()
        turns = db.exec(select(InterviewTurn).order_by(InterviewTurn.seq)).all()

    # Operators saw the long steps progress to the end in the Prefect UI.
    with get_client(sync_client=True) as client:
        progress = client.read_artifacts(
            artifact_filter=ArtifactFilter(type=ArtifactFilterType(any_=["progress"])),
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(run.flow_run_id)])),
        )
    assert sorted((a.description, a.data) for a in progress) == [
        ("Bytes of weights preserved", 100.0),
        ("Bytes re-read and re-hashed (SHA-256 and CRC64NVME)", 100.0),
        ("Interview questions answered", 100.0),
    ]
    # The report reads in the UI as the report itself; the verification is one row per
    # replica, not one per check.
    with get_client(sync_client=True) as client:
        shown = {
            a.type: a
            for a in client.read_artifacts(
                artifact_filter=ArtifactFilter(type=ArtifactFilterType(any_=["markdown", "table"])),
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(run.flow_run_id)])),
            )
            if a.description and ("report" in a.description or "per replica" in a.description)
        }
    assert Path(report.local_path).read_text() in str(shown["markdown"].data)
    rows = json.loads(str(shown["table"].data))
    assert [(r["replica"], r["result"]) for r in rows] == [
        ("primary", "all ok"),
        ("replica", "all ok"),
    ]
    assert all(r["objects"] and r["fast checks"] and r["deep checks"] for r in rows)

    # Every recipient got exactly one notice, naming the successor.
    mails = site.mailbox()
    assert sorted(str(m["To"]).split("<")[1].rstrip(">") for m in mails) == sorted(
        line.split(",")[0] for line in site.recipients.read_text().splitlines()[1:]
    )
    assert all("sunset-example-2" in m.get_body(("plain",)).get_content() for m in mails)

    # Every answer is stored verbatim, and labelled as the stand-in's; the confirmation too.
    assert len(turns) == len(load_protocol().protocol.turns()) + 1
    for turn in turns:
        body = json.loads(turn.response_body)
        assert turn.answer_text == body["content"][0]["text"]
        assert body["model"].startswith("sunset-stand-in")

    # The report on disk is the one sealed in the package, and it holds the transcript.
    local = Path(report.local_path).read_bytes()
    assert site.store.get_bytes(report.key) == local
    text = local.decode()
    assert "sunset-example-1" in text and turns[0].answer_text in text
    assert outcome.report == report.local_path

    # The package copied out of the bucket is a valid BagIt bag (Library of Congress tool).
    bag = site.download_package(outcome.package, tmp_path / "bag")
    validation = subprocess.run(
        [sys.executable, "-m", "bagit", "--validate", str(bag)], capture_output=True, text=True
    )
    assert validation.returncode == 0, validation.stderr
    assert (bag / "data/weights/config.json").read_bytes() == (
        site.weights / "config.json"
    ).read_bytes()


def test_transient_failure_is_retried_and_both_attempts_recorded(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real SMTP server that answers the first message with 451 (try again later).
    flaky = start_smtp(tmp_path / "flaky-mailbox", fail_first=1)
    try:
        monkeypatch.setenv("SUNSET_SMTP_PORT", str(flaky.port))
        outcome = run_flow(site)
    finally:
        flaky.stop()

    assert outcome.status == "deprecated"
    notify = [a for a in attempts(site) if a.step == NOTIFY_STEP]
    assert [(a.attempt, a.state) for a in notify] == [(1, "failed"), (2, "completed")]
    assert "451" in (notify[0].error or "")
    assert notify[1].summary == {
        "recipients": 3,
        "channels": {
            "email": {
                "recipients": 3,
                "sent": 3,
                "sent_before": 2,
                "failed": 0,
                "unconfirmed": 0,
                "skipped": 0,
            }
        },
        "problems": [],
    }


def test_corrupted_object_fails_verification_and_the_status_stays(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    shard = "data/weights/model-00002-of-00003.bin"

    def corrupt_after_snapshot(task: Any, task_run: Any, state: Any) -> None:
        location = state.result().location.removeprefix(f"s3://{site.store.bucket}/")
        original = site.store.get_bytes(location + shard)
        flipped = bytes([original[0] ^ 0xFF]) + original[1:]
        site.store.client.put_object(Bucket=site.store.bucket, Key=location + shard, Body=flipped)

    hooked = deprecate_flow.snapshot_weights.with_options(on_completion=[corrupt_after_snapshot])
    monkeypatch.setattr(deprecate_flow, "snapshot_weights", hooked)

    with pytest.raises(VerificationFailed, match="model-00002-of-00003.bin"):
        run_flow(site, retire=True, notice_override_reason="test")

    assert model_status(site) == "active"
    recorded = attempts(site)
    verify = [a for a in recorded if a.step == VERIFY_STEP]
    assert len(verify) == 1 and verify[0].state == "failed"  # a mismatch is never retried
    assert recorded[-1].step == VERIFY_STEP
    with site.ledger.session() as db:
        assert db.exec(select(StatusTransition)).first() is None
