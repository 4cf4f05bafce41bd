"""The flip inside the flow: rolled back when the check fails, gated by approvals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from prefect import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.settings import PREFECT_API_URL
from sqlmodel import select

from deployments.ops import submit_decision
from flows import deprecate as deprecate_flow
from sunset.errors import GatewayError, InputError
from sunset.ledger import (
    Approval,
    CatalogModel,
    DeprecationRun,
    RunState,
    StatusTransition,
    utcnow,
)
from sunset.runs.request import DeprecationRequest
from sunset.serving.guards import status_at
from sunset_dev.example_model import EXAMPLE_MODEL_ID
from tests.conftest import Site
from tests.http_receivers import gateway_server
from tests.paused_runs import in_background, wait_for_pause

pytestmark = [
    pytest.mark.usefixtures("prefect_server"),
    pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True),
]


def run_flow(site: Site, requested_by: str | None = None, **overrides: Any) -> Any:
    fields: dict[str, Any] = {
        "model_id": EXAMPLE_MODEL_ID,
        "weights": str(site.weights),
        "recipients": str(site.recipients),
    } | overrides
    return deprecate_flow.deprecate_model(DeprecationRequest(**fields), requested_by)


def serving_status(site: Site) -> str:
    with site.ledger.session() as db:
        model = db.get(CatalogModel, EXAMPLE_MODEL_ID)
        assert model is not None
        return str(model.serving_status)


def approval_artifact(run_id: str) -> str:
    with get_client(sync_client=True) as client:
        [artifact] = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[f"approval-{run_id}"]))
        )
    return str(artifact.data)


def transitions(site: Site) -> list[StatusTransition]:
    with site.ledger.session() as db:
        return list(db.exec(select(StatusTransition).order_by(StatusTransition.id)))


def test_a_failed_check_after_the_flip_rolls_back_the_catalog_and_the_gateway(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    active = {"status": "active", "replacement": "sunset-example-2"}
    with gateway_server("gateway-token", lagging=True) as gateway:
        gateway.routes[EXAMPLE_MODEL_ID] = [active]
        monkeypatch.setenv("SUNSET_GATEWAY", "http")
        monkeypatch.setenv("SUNSET_GATEWAY_URL", gateway.url)
        monkeypatch.setenv("SUNSET_GATEWAY_TOKEN", "gateway-token")

        with pytest.raises(GatewayError, match="shows sunset-example-1 as active, not deprecated"):
            run_flow(site)

        assert serving_status(site) == "active"
        assert gateway.current(EXAMPLE_MODEL_ID) == active
        assert [r["status"] for r in gateway.routes[EXAMPLE_MODEL_ID] if r] == [
            "active",
            "deprecated",  # the flip
            "active",  # its rollback
        ]
        [undone] = transitions(site)
        assert undone.rolled_back_at is not None
        assert "shows sunset-example-1 as active, not deprecated" in (undone.rollback_reason or "")
        assert status_at(site.ledger, EXAMPLE_MODEL_ID, utcnow()) == "active"
        with site.ledger.session() as db:
            assert db.exec(select(DeprecationRun)).one().state == RunState.FAILED

        # With the gateway repaired, the same request resumes the run and the flip holds.
        gateway.lagging = False
        outcome = run_flow(site)

    assert outcome.status == "deprecated" and serving_status(site) == "deprecated"
    assert gateway.current(EXAMPLE_MODEL_ID) == {
        "status": "deprecated",
        "replacement": "sunset-example-2",
    }
    assert [t.rolled_back_at is None for t in transitions(site)] == [False, True]


def test_retirement_waits_for_two_distinct_approvers(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUNSET_APPROVAL_POLL_S", "1")
    reason = "test run: the notice period is compressed"
    with in_background(
        run_flow,
        site=site,
        retire=True,
        approvals=2,
        notice_override_reason=reason,
        requested_by="alice",
    ) as running:
        run = wait_for_pause(site.ledger, running)
        assert run.flow_run_id is not None
        assert serving_status(site) == "active"
        assert "# Approval needed: Sunset Example 1" in approval_artifact(run.id)
        with pytest.raises(InputError, match="not accepted"):
            submit_decision(run.flow_run_id, approver="", decision="approve", reason="x")
        submit_decision(run.flow_run_id, approver="bob", decision="approve", reason="report read")
        wait_for_pause(site.ledger, running, decisions=1)
        submit_decision(run.flow_run_id, approver="Bob", decision="approve", reason="me again")
        wait_for_pause(site.ledger, running, decisions=2)
        assert serving_status(site) == "active"
        submit_decision(run.flow_run_id, approver="carol", decision="approve", reason="ok")
        outcome = running.result(timeout=120)

    assert outcome.status == "retired" and serving_status(site) == "retired"
    with site.ledger.session() as db:
        decisions = db.exec(select(Approval).order_by(Approval.id)).all()
        recorded = db.get(DeprecationRun, run.id)
    assert [(d.approver, d.decision, d.counted) for d in decisions] == [
        ("bob", "approve", True),
        ("Bob", "approve", False),  # the same person twice does not make two approvals
        ("carol", "approve", True),
    ]
    assert recorded is not None and recorded.notice_override_reason == reason
    [retired] = transitions(site)
    assert retired.actor == "alice" and retired.run_id == run.id
    assert reason in retired.reason
    assert retired.reason.endswith("approved by bob (report read), carol (ok)")
    routing = json.loads((site.data_dir / "routing.json").read_text())
    assert routing["models"][EXAMPLE_MODEL_ID]["status"] == "retired"


def test_a_rejection_from_the_terminal_ends_the_run_with_nothing_changed(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUNSET_APPROVAL_POLL_S", "1")
    env = os.environ | {"PREFECT_API_URL": str(PREFECT_API_URL.value())}
    with in_background(
        run_flow, site=site, retire=True, approvals=1, notice_override_reason="test"
    ) as running:
        run = wait_for_pause(site.ledger, running)
        rejected = subprocess.run(
            [
                sys.executable,
                "-m",
                "sunset.cli",
                "reject",
                run.id[:12],
                "--as",
                "dana",
                "--reason",
                "users still depend on it",
            ],
            env=env,
            capture_output=True,
            text=True,
        )
        outcome = running.result(timeout=120)

    assert rejected.returncode == 0, rejected.stderr
    assert "dana decided to reject" in rejected.stdout
    assert outcome.rejected_by == "dana" and outcome.status == "active"
    assert serving_status(site) == "active" and transitions(site) == []
    assert not (site.data_dir / "routing.json").exists()
    with site.ledger.session() as db:
        assert db.get(DeprecationRun, run.id).state == RunState.REJECTED  # type: ignore[union-attr]
        [decision] = db.exec(select(Approval)).all()
    assert (decision.approver, decision.decision, decision.reason) == (
        "dana",
        "reject",
        "users still depend on it",
    )
    late = subprocess.run(
        [sys.executable, "-m", "sunset.cli", "approve", run.id, "--reason", "too late"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert late.returncode == 1 and "is not waiting for an approval" in late.stderr
