"""A decision made after the report was sealed is sealed into the package as a dated
addendum; the sealed report version stays as it was."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from sqlmodel import col, select
from typer.testing import CliRunner, Result

from sunset.cli.main import app
from sunset.config import Settings
from sunset.interview.addenda import ADDENDA_DIR, pending_addenda
from sunset.interview.preferences import decide_preference, list_preferences
from sunset.ledger import DeprecationRun, PreferenceStatus, PreferenceStatusChange, Report, Snapshot
from sunset.preservation.weights import WeightsReader
from sunset.report.assemble import seal_report
from sunset_dev.example_model import EXAMPLE_MODEL_ID
from tests.conftest import Site
from tests.preservation import configured_store, snapshot
from tests.standin_control import StandIn
from tests.test_preferences import interview_example

pytestmark = pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)

HOSTILE_REASON = "Declined: <script>alert(1)</script>\n```\n# not a heading"


def sunset(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), prog_name="sunset", terminal_width=200)


def test_a_decision_after_the_report_was_sealed_is_sealed_as_a_dated_addendum(
    site: Site, standin: StandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    interview_example(site.ledger, standin, sessions=1)
    with site.ledger.session() as db:
        run = db.get(DeprecationRun, "run-1")
        assert run is not None
        run.retirement_on = date(2027, 1, 1)
        db.add(run)
    before, after, *_ = list_preferences(site.ledger, EXAMPLE_MODEL_ID)
    assert before.id is not None and after.id is not None
    decide_preference(
        site.ledger, before.id, status=PreferenceStatus.ACTED_ON, reason="Done.", actor="ada"
    )
    store = configured_store()
    snapshot(site.ledger, store, str(site.weights), "run-1", WeightsReader(None))
    seal_report(
        site.ledger,
        store,
        run_id="run-1",
        protocol=None,
        organization=Settings().organization,
        reports_dir=tmp_path / "reports",
    )
    with site.ledger.session() as db:
        report = db.exec(select(Report)).one()
    report_versions = store.primary.client.list_object_versions(
        Bucket=store.bucket, Prefix=report.key
    )["Versions"]
    assert pending_addenda(site.ledger, EXAMPLE_MODEL_ID) == []  # the report says it

    # The store is unreachable: the decision is kept, and the next run seals it.
    monkeypatch.setenv("SUNSET_S3_ENDPOINT_URL", "http://127.0.0.1:9")
    unreachable = sunset(
        "preference", str(after.id), "--status", "declined", "--reason", HOSTILE_REASON
    )
    monkeypatch.setenv("SUNSET_S3_ENDPOINT_URL", site.env["SUNSET_S3_ENDPOINT_URL"])
    decided = sunset(
        "preference", str(after.id), "--status", "declined", "--reason", HOSTILE_REASON
    )
    again = sunset("preference", str(after.id), "--status", "declined", "--reason", HOSTILE_REASON)

    assert unreachable.exit_code == 1
    assert "The decision is recorded; the same command run again seals" in unreachable.stderr
    assert decided.exit_code == 0, decided.output
    with site.ledger.session() as db:
        changes = list(
            db.exec(select(PreferenceStatusChange).order_by(col(PreferenceStatusChange.id)))
        )
    assert [c.addendum_path for c in changes[:1]] == [None]  # decided before the seal
    path = changes[1].addendum_path
    assert path == f"{ADDENDA_DIR}/{changes[1].at:%Y-%m-%d}-preference-{after.id}-decision-2.md"
    assert f"Sealed as an addendum: s3://{store.bucket}/" in decided.stdout
    assert path in decided.stdout
    assert again.exit_code == 0 and "Sealed" not in again.stdout  # sealed once

    with site.ledger.session() as db:
        package = db.get(Snapshot, report.snapshot_id)
    assert package is not None
    bag = site.download_package(f"s3://{store.bucket}/{package.prefix}", tmp_path / "bag")
    addendum = (bag / path).read_text("utf-8")
    assert f"```text\n{after.quote}\n```" in addendum  # the model's words, verbatim
    assert "Status: **noted**, now **declined**. Reason:" in addendum
    assert "> Declined: &lt;script>alert(1)&lt;/script>\n> ```\n> # not a heading" in addendum
    assert "after version 1 of the report was sealed" in addendum
    manifest = (bag / "manifest-sha256.txt").read_text("utf-8")
    assert f"  {path}\n" in manifest
    validation = subprocess.run([sys.executable, "-m", "bagit", "--validate", str(bag)])
    assert validation.returncode == 0
    # The sealed report is the version it was: no new object version, the same bytes.
    assert (
        store.primary.client.list_object_versions(Bucket=store.bucket, Prefix=report.key)[
            "Versions"
        ]
        == report_versions
    )
    assert (bag / "data/report/report.md").read_bytes() == Path(report.local_path).read_bytes()
