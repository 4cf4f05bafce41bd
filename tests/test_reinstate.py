"""Reinstatement: a retired model comes back from its package, files identical, status flipped."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from sqlmodel import select

from deployments.approvals import submit_decision
from flows import deprecate as deprecate_flow
from flows import reinstate as reinstate_flow
from sunset.errors import InputError, VerificationFailed
from sunset.ledger import (
    CatalogModel,
    Deprecation,
    DeprecationRun,
    DeprecationStage,
    FixityEvent,
    Restoration,
    StatusTransition,
    StepAttempt,
)
from sunset.preservation.restore import (
    LocalDirectory,
    ReinstatementRequest,
    plan_reinstatement,
    verify_restoration,
)
from sunset.runs.request import DeprecationRequest
from sunset_dev.example_model import EXAMPLE_MODEL_ID
from tests.conftest import Site
from tests.paused_runs import in_background, wait_for_pause

pytestmark = [
    pytest.mark.usefixtures("prefect_server"),
    pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True),
]


def retire(site: Site) -> Any:
    return deprecate_flow.deprecate_model(
        DeprecationRequest(
            model_id=EXAMPLE_MODEL_ID,
            weights=str(site.weights),
            recipients=str(site.recipients),
            retire=True,
            notice_override_reason="test: the notice period is compressed",
        )
    )


def notices_by_subject(site: Site) -> dict[str, int]:
    return dict(Counter(str(m["Subject"]) for m in site.mailbox()))


def deprecation_stage(site: Site) -> tuple[str, str | None]:
    with site.ledger.session() as db:
        deprecation = db.exec(select(Deprecation)).one()
    return deprecation.stage, deprecation.reason


def serving_status(site: Site) -> str:
    with site.ledger.session() as db:
        model = db.get(CatalogModel, EXAMPLE_MODEL_ID)
        assert model is not None
        return str(model.serving_status)


def weights_of(directory: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(directory)): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def test_a_retired_model_is_restored_to_a_directory_file_for_file_and_made_active(
    site: Site, tmp_path: Path
) -> None:
    retired = retire(site)
    serving = tmp_path / "serving"

    outcome = reinstate_flow.reinstate_model(
        model_id=EXAMPLE_MODEL_ID,
        destination=str(serving),
        reason="a research group needs it back",
        requested_by="ada",
    )

    assert retired.status == "retired" and outcome.status == "active"
    assert serving_status(site) == "active"
    assert weights_of(serving) == weights_of(site.weights)  # identical, and nothing else
    with site.ledger.session() as db:
        run = db.get(DeprecationRun, outcome.run_id)
        assert run is not None and run.kind == "reinstatement" and run.state == "completed"
        steps = db.exec(
            select(StepAttempt.step).where(StepAttempt.run_id == run.id).order_by(StepAttempt.id)
        ).all()
        restoration = db.exec(select(Restoration)).one()
        checks = db.exec(select(FixityEvent).where(FixityEvent.run_id == run.id)).all()
        history = db.exec(select(StatusTransition).order_by(StatusTransition.id)).all()
    assert steps == [
        "preflight",
        "verify_preservation",
        "restore_snapshot",
        "verify_restoration",
        "flip_serving_status",
        "route_gateway",
        "check_serving",
        "notify_reinstated",
    ]
    assert (restoration.state, restoration.files) == ("verified", len(weights_of(site.weights)))
    assert restoration.snapshot_id == outcome.snapshot_id and restoration.destination == str(
        serving
    )
    assert checks and all(c.outcome == "ok" for c in checks)  # the package, re-read first
    assert [(t.from_status, t.to_status) for t in history] == [
        ("active", "retired"),
        ("retired", "active"),
    ]
    assert history[1].actor == "ada" and "a research group needs it back" in history[1].reason
    routing = json.loads((site.data_dir / "routing.json").read_text())
    assert routing["models"][EXAMPLE_MODEL_ID]["status"] == "active"
    # Everyone told of the retirement is told, once, that the model is back, and why.
    assert notices_by_subject(site) == {
        "Sunset Example 1 was retired on " + str(date.today()): 3,
        "Sunset Example 1 is served again": 3,
    }
    back = [m for m in site.mailbox() if m["Subject"] == "Sunset Example 1 is served again"]
    assert "Why: a research group needs it back" in back[0].get_body(("plain",)).get_content()
    assert deprecation_stage(site) == (
        DeprecationStage.REINSTATED,
        "a research group needs it back",
    )

    # A restored file changed afterwards no longer passes; a second reinstatement is refused.
    shard = serving / "model-00001-of-00003.bin"
    shard.write_bytes(b"\0" + shard.read_bytes()[1:])
    with pytest.raises(VerificationFailed, match="model-00001-of-00003.bin .*sha256"):
        verify_restoration(
            site.ledger,
            LocalDirectory(serving),
            run_id=outcome.run_id,
            snapshot_id=outcome.snapshot_id,
        )
    again = ReinstatementRequest(EXAMPLE_MODEL_ID, str(tmp_path / "other"), reason="again")
    nothing = reinstate_flow.reinstate_model(**again.parameters(), return_state=True)
    assert nothing.is_completed() and nothing.name == "Nothing to do"
    assert nothing.message == f"{EXAMPLE_MODEL_ID} is already active; there is nothing to do."


def test_a_reinstatement_waits_for_approval_and_restores_to_a_bucket_on_request(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUNSET_APPROVAL_POLL_S", "1")
    retire(site)
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "other-model.bin").write_bytes(b"x")
    with pytest.raises(InputError, match="is not empty"):
        plan_reinstatement(
            site.ledger,
            ReinstatementRequest(EXAMPLE_MODEL_ID, str(occupied), reason="r"),
            LocalDirectory(occupied),
        )
    destination = f"s3://{site.store.bucket}/serving/{EXAMPLE_MODEL_ID}"

    with in_background(
        reinstate_flow.reinstate_model,
        model_id=EXAMPLE_MODEL_ID,
        destination=destination,
        reason="available to researchers on request",
        status="on_request",
        approvals=1,
    ) as running:
        run = wait_for_pause(site.ledger, running)
        assert run.flow_run_id is not None and run.kind == "reinstatement"
        assert serving_status(site) == "retired"
        submit_decision(
            UUID(run.flow_run_id),
            approver="erin",
            identity="login:erin",
            decision="approve",
            reason="fine",
        )
        outcome = running.result(timeout=120)

    assert outcome.status == "on_request" and serving_status(site) == "on_request"
    restored = {
        name: site.store.get_bytes(f"serving/{EXAMPLE_MODEL_ID}/{name}")
        for name in weights_of(site.weights)
    }
    assert restored == weights_of(site.weights)
    with site.ledger.session() as db:
        last = db.exec(select(StatusTransition).order_by(StatusTransition.id.desc())).first()  # type: ignore[union-attr]
    assert last is not None and last.reason.endswith("approved by erin (fine)")
    assert notices_by_subject(site)["Sunset Example 1 is available on request"] == 3
    assert deprecation_stage(site)[0] == DeprecationStage.ON_REQUEST
