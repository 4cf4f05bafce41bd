"""The flip inside the flow: rolled back when the check fails, gated by approvals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.events import Event
from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter
from prefect.settings import PREFECT_API_URL
from sqlmodel import select

from deployments.approvals import submit_decision
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
from sunset.serving.history import status_at
from sunset_dev.example_model import EXAMPLE_MODEL_ID
from tasks.events import APPROVAL_REQUESTED_EVENT
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
        # Started once more, it finds nothing to do, and ends in a state that says so.
        again = deprecate_flow.deprecate_model(
            DeprecationRequest(
                model_id=EXAMPLE_MODEL_ID,
                weights=str(site.weights),
                recipients=str(site.recipients),
            ),
            return_state=True,
        )

    assert outcome.status == "deprecated" and serving_status(site) == "deprecated"
    assert gateway.current(EXAMPLE_MODEL_ID) == {
        "status": "deprecated",
        "replacement": "sunset-example-2",
    }
    assert [t.rolled_back_at is None for t in transitions(site)] == [False, True]
    assert again.is_completed() and again.name == "Nothing to do"
    assert again.message == f"{EXAMPLE_MODEL_ID} is already deprecated; there is nothing to do."
    assert len(transitions(site)) == 2


def decide_from_a_terminal(home: Path, login: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """`sunset approve|reject` in a release manager's shell: PREFECT_API_URL, a login and a
    home directory, and no Sunset setting at all."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUNSET_", "PREFECT_"))}
    env |= {
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "PREFECT_HOME": str(home / ".prefect"),
        "HOME": str(home),
        "LOGNAME": login,
        "USER": login,
    }
    return subprocess.run(
        [sys.executable, "-m", "sunset.cli", *argv], env=env, capture_output=True, text=True
    )


def test_retirement_waits_for_two_distinct_approvers(
    site: Site, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SUNSET_APPROVAL_POLL_S", "1")
    home = tmp_path / "home"
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
            submit_decision(
                UUID(run.flow_run_id), approver="", identity=None, decision="approve", reason="x"
            )
        # By the Prefect flow run id that `sunset deprecate --via-deployment` prints ...
        first = decide_from_a_terminal(
            home, "bob", "approve", run.flow_run_id, "--reason", "report read"
        )
        wait_for_pause(site.ledger, running, decisions=1)
        # ... and by the short Sunset run id of `sunset runs`, the same login as another name.
        again = decide_from_a_terminal(
            home, "bob", "approve", run.id[:8], "--as", "Robert", "--reason", "me again"
        )
        wait_for_pause(site.ledger, running, decisions=2)
        assert serving_status(site) == "active"
        last = decide_from_a_terminal(home, "carol", "approve", run.id[:8], "--reason", "ok")
        outcome = running.result(timeout=120)

    for done in (first, again, last):
        assert done.returncode == 0, done.stderr
    assert first.stdout.startswith(
        f"Recorded: bob (login:bob) approved run {run.id} ({EXAMPLE_MODEL_ID}); 1 of 2 "
        "approvals so far; the run waits for 1 more, from a different person."
    )
    assert "Not counted: Robert (login:bob) already approved as bob" in again.stdout
    assert "continues" not in first.stdout + again.stdout
    assert last.stdout.rstrip().endswith("that makes 2 of 2 approvals: the run continues.")
    assert outcome.status == "retired" and serving_status(site) == "retired"
    with site.ledger.session() as db:
        decisions = db.exec(select(Approval).order_by(Approval.id)).all()
        recorded = db.get(DeprecationRun, run.id)
    assert [(d.approver, d.approver_identity, d.counted) for d in decisions] == [
        ("bob", "login:bob", True),
        ("Robert", "login:bob", False),  # one login counts once, whatever name it types
        ("carol", "login:carol", True),
    ]
    assert recorded is not None and recorded.notice_override_reason == reason
    [retired] = transitions(site)
    assert retired.actor == "alice" and retired.run_id == run.id
    assert reason in retired.reason
    assert retired.reason.endswith("approved by bob (report read), carol (ok)")
    routing = json.loads((site.data_dir / "routing.json").read_text())
    assert routing["models"][EXAMPLE_MODEL_ID]["status"] == "retired"

    # Deciding needed no ledger, and made none; a command that reads one says it is missing.
    listed = decide_from_a_terminal(home, "bob", "runs")
    assert listed.returncode == 1
    assert f"There is no ledger at {home / '.sunset' / 'ledger.db'}" in listed.stderr
    assert not (home / ".sunset").exists()


def approval_requests(run_id: str, timeout: float = 30.0) -> list[Event]:
    """The run's approval.requested events, once the server has stored at least one.

    The server writes events in batches after it receives them, so a read right
    after the run may come back empty; it is asked again until the deadline.
    """
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            page = client.read_events(
                EventFilter(
                    event=EventNameFilter(name=[APPROVAL_REQUESTED_EVENT]),
                    resource=EventResourceFilter(id=[f"sunset.run.{run_id}"]),
                ),
                limit=10,
            )
            if page.events or time.monotonic() > deadline:
                return page.events
            time.sleep(0.2)


def test_a_rejection_from_the_terminal_ends_the_run_as_rejected_with_nothing_changed(
    site: Site, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SUNSET_APPROVAL_POLL_S", "1")
    home = tmp_path / "home"
    with in_background(
        run_flow, site=site, retire=True, approvals=1, notice_override_reason="test"
    ) as running:
        run = wait_for_pause(site.ledger, running)
        rejected = decide_from_a_terminal(
            home, "dana", "reject", run.id[:12], "--reason", "users still depend on it"
        )
        outcome = running.result(timeout=120)

    assert rejected.returncode == 0, rejected.stderr
    assert rejected.stdout.startswith(
        f"Recorded: dana (login:dana) rejected run {run.id} ({EXAMPLE_MODEL_ID}); the run "
        "ends as Rejected; the model's serving status stays as it is."
    )
    assert outcome.rejected_by == "dana" and outcome.status == "active"
    assert serving_status(site) == "active" and transitions(site) == []
    assert not (site.data_dir / "routing.json").exists()
    assert run.flow_run_id is not None
    with get_client(sync_client=True) as client:
        final = client.read_flow_run(UUID(run.flow_run_id)).state
    assert final is not None and final.is_completed() and final.name == "Rejected"
    assert final.message == "Rejected by dana; the serving status did not change."
    with site.ledger.session() as db:
        assert db.get(DeprecationRun, run.id).state == RunState.REJECTED  # type: ignore[union-attr]
        [decision] = db.exec(select(Approval)).all()
    assert (decision.approver, decision.approver_identity, decision.decision) == (
        "dana",
        "login:dana",
        "reject",
    )
    assert decision.reason == "users still depend on it"

    # The run told everyone it waited: one event, with what to decide on and where.
    [requested] = approval_requests(run.id)
    assert requested.payload["model_id"] == EXAMPLE_MODEL_ID
    assert requested.payload["flow_run_id"] == run.flow_run_id
    assert (requested.payload["target_status"], requested.payload["required"]) == ("retired", 1)
    assert requested.payload["summary"].startswith("# Approval needed: Sunset Example 1")
    assert requested.payload["url"].endswith(f"/runs/flow-run/{run.flow_run_id}")
    assert f"prefect.flow-run.{run.flow_run_id}" in {r.id for r in requested.related}

    late = decide_from_a_terminal(home, "erin", "approve", run.id, "--reason", "too late")
    assert late.returncode == 1
    assert (
        f"Run {run.id} (retire-{EXAMPLE_MODEL_ID}) is not waiting for an approval (it is "
        "Rejected); nothing was recorded." in late.stderr
    )
