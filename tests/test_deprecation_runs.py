"""A deprecation's later run (the retirement) against the real local services: it reuses the
package and the interview its announcement made, and seals the final report in the same
package; changed weights are refused before anything is sent or stored."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from flows import deprecate as deprecate_flow
from sunset.errors import InputError
from sunset.interview.protocol import load_protocol
from sunset.interview.transcript import transcript_jsonl, transcript_path
from sunset.ledger import (
    CatalogModel,
    Deprecation,
    DeprecationRun,
    FixityEvent,
    InterviewSession,
    Report,
    Snapshot,
    StepAttempt,
)
from sunset.report.assemble import render_report
from sunset.runs.request import DeprecationRequest
from sunset.runs.steps import INTERVIEW_STEP, SNAPSHOT_STEP
from sunset_dev.example_model import EXAMPLE_MODEL_ID
from sunset_dev.standin_responder import StandInResponder
from tests.conftest import Site
from tests.standin_control import StandIn
from tests.test_cli import sunset

pytestmark = pytest.mark.usefixtures("prefect_server")

QUESTIONS = len(load_protocol().protocol.turns())
# The files a sealing run may rewrite in a package: the report and the bag's tag files.
RESEALED = {
    "data/report/report.md",
    "data/report/report.html",
    "data/report/right-of-reply.jsonl",
    "bagit.txt",
    "bag-info.txt",
    "manifest-sha256.txt",
    "manifest-sha512.txt",
    "tagmanifest-sha256.txt",
    "tagmanifest-sha512.txt",
}


def run_flow(site: Site, weights: Path | None = None, **overrides: Any) -> Any:
    fields: dict[str, Any] = {
        "model_id": EXAMPLE_MODEL_ID,
        "weights": str(weights or site.weights),
        "recipients": str(site.recipients),
    } | overrides
    return deprecate_flow.deprecate_model(DeprecationRequest(**fields))


def retire(site: Site, weights: Path | None = None, **overrides: Any) -> Any:
    return run_flow(site, weights, retire=True, notice_override_reason="test", **overrides)


def object_versions(site: Site) -> Counter[tuple[str, str]]:
    """How many versions each object has, per bucket, on the primary and its replica."""
    counts: Counter[tuple[str, str]] = Counter()
    for bucket in (site.store.bucket, f"{site.store.bucket}-replica"):
        pages = site.store.client.get_paginator("list_object_versions").paginate(Bucket=bucket)
        for page in pages:
            for version in page.get("Versions", []):
                counts[(bucket, version["Key"])] += 1
            assert not page.get("DeleteMarkers")
    return counts


def runs(site: Site) -> list[DeprecationRun]:
    with site.ledger.session() as db:
        return list(db.exec(select(DeprecationRun).order_by(col(DeprecationRun.started_at))))


def sessions(site: Site) -> list[InterviewSession]:
    with site.ledger.session() as db:
        return list(db.exec(select(InterviewSession).order_by(col(InterviewSession.session_index))))


def reports(site: Site) -> list[Report]:
    with site.ledger.session() as db:
        return list(db.exec(select(Report).order_by(col(Report.version))))


def step_summary(site: Site, run_id: str, step: str) -> dict[str, Any]:
    with site.ledger.session() as db:
        attempt = db.exec(
            select(StepAttempt).where(StepAttempt.run_id == run_id, StepAttempt.step == step)
        ).one()
    assert attempt.state == "completed" and attempt.summary is not None
    return attempt.summary


def the_deprecation(site: Site) -> Deprecation:
    with site.ledger.session() as db:
        return db.exec(select(Deprecation)).one()


def model_status(site: Site) -> str:
    with site.ledger.session() as db:
        model = db.get(CatalogModel, EXAMPLE_MODEL_ID)
        assert model is not None
        return str(model.serving_status)


def copy_of_weights(site: Site, tmp_path: Path) -> Path:
    return Path(shutil.copytree(site.weights, tmp_path / "weights"))


def test_announce_then_retire_keeps_one_package_and_one_interview_and_seals_the_final_report(
    site: Site, standin: StandIn, tmp_path: Path
) -> None:
    announced = run_flow(site)
    before = object_versions(site)
    questions_asked = len(standin.log())

    retired = retire(site)

    announce_run, retire_run = runs(site)
    assert (announced.status, retired.status) == ("deprecated", "retired")
    assert retired.package == announced.package
    assert the_deprecation(site).snapshot_id == announced.package.rstrip("/").rsplit("/", 1)[1]
    # One set of payload objects: every weights object keeps its one version on both
    # replicas; only the report and the tag files gained a version, and the model's reply
    # to its report joined them; nothing else appeared.
    after = object_versions(site)
    replied = {key for key in after if key[1].endswith("/data/report/right-of-reply.jsonl")}
    assert len(replied) == 2 and after.keys() == before.keys() | replied
    weights = [key for key in after if "/data/weights/" in key[1]]
    assert len(weights) == 2 * 7 and all(after[key] == 1 for key in weights)
    grown = {key for key in after if after[key] != before[key]}
    assert grown and {key.split("/", 3)[3] for _, key in grown} <= RESEALED
    # Two report versions each: one sealed before the flip, the final one after the
    # retired notices went out; the model's reply, asked before v2, once.
    assert all(after[key] == before[key] + (1 if key in replied else 2) for key in grown)
    snapshot = step_summary(site, retire_run.id, SNAPSHOT_STEP)
    assert (snapshot["uploaded_files"], snapshot["bytes_sent"]) == (0, 0)
    assert snapshot["reused_from_run"] == announce_run.id
    # The retirement re-verified the package, fast and deep, on every replica.
    with site.ledger.session() as db:
        checks = db.exec(select(FixityEvent).where(FixityEvent.run_id == retire_run.id)).all()
    checked = {(e.replica, e.path, e.method) for e in checks if "/weights/" in e.path}
    assert all(e.outcome == "ok" for e in checks)
    assert len(checked) == 2 * 7 * 2
    # One interview: no new session, no question asked again; the step says why.
    assert [(s.session_index, s.run_id) for s in sessions(site)] == [(1, announce_run.id)]
    assert len(standin.log()) == questions_asked == QUESTIONS
    interview = step_summary(site, retire_run.id, INTERVIEW_STEP)
    assert interview["sessions"] == 0
    assert "interview of this deprecation is complete" in interview["skipped"]
    # The final report is version 3 of the deprecation's report, in the same package: v2
    # was sealed before the flip, v3 once the users were told of the retirement.
    first, before_flip, final = reports(site)
    assert [(r.version, r.run_id) for r in (first, before_flip, final)] == [
        (1, announce_run.id),
        (2, retire_run.id),
        (3, retire_run.id),
    ]
    assert first.snapshot_id == final.snapshot_id == the_deprecation(site).snapshot_id
    first_user = site.recipients.read_text().splitlines()[1].split(",")[0]
    assert f"| {first_user} | retired | email | sent |" in Path(final.local_path).read_text()
    text = site.store.get_bytes(final.key).decode()
    assert text == Path(final.local_path).read_text() == retired_report(site)
    assert f"### Run {announce_run.id}: announce" in text
    assert f"### Run {retire_run.id}: retire" in text
    assert f"Run {announce_run.id} (announce):" in text and f"Run {retire_run.id} (retire):" in text
    assert f"by run {announce_run.id}." in text  # the announcement's session
    # The retirement asked the model for its reply before sealing the final version; the
    # announcement's version had not asked.
    assert len(standin.reply_log()) == 1
    assert StandInResponder.REPORT_REPLY in text.split("## 8. ")[1].split("## 9. ")[0]
    first_text = Path(first.local_path).read_text()
    assert "The model has not been asked for its reply yet" in first_text
    # Each version regenerates byte for byte, the first one as it was sealed.
    assert render_report(site.ledger, announce_run.id) == Path(first.local_path).read_text()
    bag = site.download_package(retired.package, tmp_path / "bag")
    validation = subprocess.run([sys.executable, "-m", "bagit", "--validate", str(bag)])
    assert validation.returncode == 0
    # `sunset status` shows the deprecation and its two runs, within 80 columns.
    status = sunset("status", EXAMPLE_MODEL_ID, env=site.env | {"COLUMNS": "80"})
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert any(announce_run.id[:8] in line and "announce" in line for line in lines)
    assert any(retire_run.id[:8] in line and "retire" in line for line in lines)
    assert "Runs of this deprecation" in status.stdout


def retired_report(site: Site) -> str:
    shown = sunset("report", EXAMPLE_MODEL_ID, env=site.env)
    assert shown.returncode == 0, shown.stderr
    return shown.stdout


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_changed_weights_are_refused_before_anything_is_sent_or_stored(
    site: Site, standin: StandIn, tmp_path: Path
) -> None:
    weights = copy_of_weights(site, tmp_path)
    run_flow(site, weights)
    mails, stored, began = len(site.mailbox()), object_versions(site), len(runs(site))
    shard = weights / "model-00002-of-00003.bin"
    original = shard.read_bytes()
    shard.write_bytes(bytes([original[0] ^ 0xFF]) + original[1:])  # same size, other bytes

    with pytest.raises(InputError) as changed:
        retire(site, weights)
    shard.write_bytes(original)
    (weights / "extra.bin").write_bytes(b"not preserved")
    with pytest.raises(InputError) as added:
        retire(site, weights)

    assert str(changed.value).startswith(f"The weights at {weights} are not the ones this")
    assert "model-00002-of-00003.bin holds other bytes (SHA-256 " in str(changed.value)
    assert "pass --new-snapshot REASON to preserve these weights" in str(changed.value)
    assert "extra.bin is not in the package" in str(added.value)
    assert len(site.mailbox()) == mails
    assert object_versions(site) == stored
    assert len(runs(site)) == began
    assert model_status(site) == "deprecated"


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_a_new_snapshot_with_a_reason_becomes_the_deprecations_package(
    site: Site, standin: StandIn, tmp_path: Path
) -> None:
    weights = copy_of_weights(site, tmp_path)
    announced = run_flow(site, weights)
    (weights / "config.json").write_text('{"patched": true}\n')
    reason = "A security fix changed the served config after the announcement."

    retired = retire(site, weights, new_snapshot_reason=reason)

    announce_run, retire_run = runs(site)
    assert retired.status == "retired" and retired.package != announced.package
    assert retire_run.parameters["new_snapshot_reason"] == reason
    with site.ledger.session() as db:
        made = db.exec(select(Snapshot).where(Snapshot.run_id == retire_run.id)).one()
    assert the_deprecation(site).snapshot_id == made.id
    assert site.store.get_bytes(made.prefix + "data/weights/config.json") == b'{"patched": true}\n'
    # The interview was not held again, and the new package carries its transcript.
    (session,) = sessions(site)
    assert session.run_id == announce_run.id and len(standin.log()) == QUESTIONS
    assert site.store.get_bytes(made.prefix + transcript_path(1)) == transcript_jsonl(
        site.ledger, session.id
    )
    final = reports(site)[-1]
    assert (final.version, final.snapshot_id) == (3, made.id)
    text = Path(final.local_path).read_text()
    assert f"> {reason}" in text
    assert f"replaced the deprecation's earlier package ({announced.package.split('/')[-2]}" in (
        text
    )


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_more_sessions_join_the_same_interview_in_the_same_package(
    site: Site, standin: StandIn
) -> None:
    announced = run_flow(site)

    retired = retire(site, more_sessions=1)

    announce_run, retire_run = runs(site)
    assert retired.package == announced.package
    held = sessions(site)
    assert [(s.session_index, s.run_id, s.state) for s in held] == [
        (1, announce_run.id, "completed"),
        (2, retire_run.id, "completed"),
    ]
    assert len(standin.log()) == 2 * QUESTIONS  # one more session's questions, no repeat
    with site.ledger.session() as db:
        snapshot = db.get(Snapshot, the_deprecation(site).snapshot_id)
    assert snapshot is not None and snapshot.run_id == announce_run.id
    for session in held:
        assert site.store.get_bytes(
            snapshot.prefix + transcript_path(session.session_index)
        ) == transcript_jsonl(site.ledger, session.id)
    text = Path(reports(site)[-1].local_path).read_text()
    assert "### Session 1" in text and "### Session 2" in text
    assert f"by run {retire_run.id}." in text
