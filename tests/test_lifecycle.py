"""The serving-status lifecycle: the state machine, its guards, its history, the gateways."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlmodel import select

from sunset.config import Settings
from sunset.errors import GatewayError, GuardRefused, InputError
from sunset.ledger import (
    AttemptState,
    CatalogModel,
    DeprecationRun,
    FixityEvent,
    Ledger,
    PreservedObject,
    Report,
    Restoration,
    RunState,
    ServingStatus,
    Snapshot,
    SnapshotFile,
    StatusTransition,
    StepAttempt,
    utcnow,
)
from sunset.preservation.weights import WeightsReader
from sunset.runs.lifecycle import begin_deprecation
from sunset.runs.request import DeprecationRequest
from sunset.runs.steps import NOTIFY_STEP
from sunset.runs.validation import validate_request
from sunset.serving.gateway import HttpGateway, Route, RoutingFile, check_route
from sunset.serving.guards import flip_status
from sunset.serving.history import status_at
from sunset.serving.lifecycle import (
    CANCELLATION,
    DEPRECATION,
    REINSTATEMENT,
    TARGETS_BY_KIND,
    check_move,
)
from sunset_dev.example_model import EXAMPLE_MODEL_ID
from tests.conftest import Site
from tests.http_receivers import gateway_server

A, D, R, Q = "active", "deprecated", "retired", "on_request"
LEGAL = {
    (A, D, DEPRECATION),
    (A, R, DEPRECATION),
    (D, R, DEPRECATION),
    (Q, R, DEPRECATION),
    (R, A, REINSTATEMENT),
    (R, Q, REINSTATEMENT),
    (Q, A, REINSTATEMENT),
    (D, A, CANCELLATION),
}
EVERY_MOVE = list(itertools.product(ServingStatus, ServingStatus, TARGETS_BY_KIND))


@pytest.mark.unit
@pytest.mark.parametrize(("current", "target", "kind"), EVERY_MOVE)
def test_only_the_moves_of_the_state_machine_are_allowed(
    current: ServingStatus, target: ServingStatus, kind: str
) -> None:
    if (current.value, target.value, kind) in LEGAL:
        check_move(current, target, kind)
    else:
        with pytest.raises(GuardRefused, match="cannot"):
            check_move(current, target, kind)


def make_run(
    ledger: Ledger,
    *,
    kind: str = DEPRECATION,
    state: RunState = RunState.RUNNING,
    lease_s: int = 60,
    status: ServingStatus | None = None,
) -> str:
    with ledger.session() as db:
        if status is not None:
            model = db.get(CatalogModel, EXAMPLE_MODEL_ID)
            assert model is not None
            model.serving_status = status
            db.add(model)
        run = DeprecationRun(
            model_id=EXAMPLE_MODEL_ID,
            kind=kind,
            state=state,
            lease_expires_at=utcnow() + timedelta(seconds=lease_s),
        )
        db.add(run)
    return run.id


def add_snapshot(ledger: Ledger, run_id: str, *, verified: bool) -> str:
    with ledger.session() as db:
        snapshot = Snapshot(
            id=f"snap-{run_id[:8]}",
            run_id=run_id,
            model_id=EXAMPLE_MODEL_ID,
            endpoint="http://s3",
            bucket="b",
            prefix="p/",
            state="stored",
        )
        db.add(snapshot)
        db.flush()  # the snapshot row first: the file and the held copy refer to it
        db.add(
            SnapshotFile(
                snapshot_id=snapshot.id,
                path="data/weights/w.bin",
                size=1,
                sha256="0" * 64,
                sha512="0" * 128,
                crc64nvme="AAAAAAAAAAA=",
            )
        )
        db.add(
            PreservedObject(
                snapshot_id=snapshot.id,
                replica="primary",
                endpoint="http://s3",
                bucket="b",
                path="data/weights/w.bin",
                size=1,
                sha256="0" * 64,
                sha512="0" * 128,
                crc64nvme="AAAAAAAAAAA=",
                retain_until=utcnow() + timedelta(days=365),
            )
        )
    if verified:
        verify(ledger, snapshot.id, run_id)
    return snapshot.id


def verify(ledger: Ledger, snapshot_id: str, run_id: str) -> None:
    with ledger.session() as db:
        for method in ("fast", "deep"):
            db.add(
                FixityEvent(
                    snapshot_id=snapshot_id,
                    run_id=run_id,
                    bucket="b",
                    replica="primary",
                    path="data/weights/w.bin",
                    method=method,
                    outcome="ok",
                )
            )


def complete_step(ledger: Ledger, run_id: str, step: str) -> None:
    with ledger.session() as db:
        db.add(StepAttempt(run_id=run_id, step=step, attempt=1, state=AttemptState.COMPLETED))


def model_state(ledger: Ledger) -> tuple[str, int]:
    with ledger.session() as db:
        model = db.get(CatalogModel, EXAMPLE_MODEL_ID)
        assert model is not None
        return str(model.serving_status), len(db.exec(select(StatusTransition)).all())


@pytest.mark.parametrize(
    ("state", "lease_s", "message"),
    [
        (RunState.FAILED, 60, "is failed"),
        (RunState.SUPERSEDED, 60, "is superseded"),
        (RunState.REJECTED, 60, "is rejected"),
        (RunState.COMPLETED, 60, "is completed"),
        (RunState.RUNNING, -1, "is stale"),
    ],
)
def test_no_flip_from_a_failed_stale_or_finished_run(
    site: Site, state: RunState, lease_s: int, message: str
) -> None:
    run_id = make_run(site.ledger, state=state, lease_s=lease_s)
    add_snapshot(site.ledger, run_id, verified=True)
    complete_step(site.ledger, run_id, NOTIFY_STEP)

    with pytest.raises(GuardRefused, match=message):
        flip_status(
            site.ledger, run_id=run_id, target=ServingStatus.DEPRECATED, actor="a", reason="r"
        )

    assert model_state(site.ledger) == ("active", 0)


def test_deprecation_waits_for_the_notices(site: Site) -> None:
    run_id = make_run(site.ledger)
    add_snapshot(site.ledger, run_id, verified=True)

    with pytest.raises(GuardRefused, match="notices .* have not all gone out"):
        flip_status(
            site.ledger, run_id=run_id, target=ServingStatus.DEPRECATED, actor="a", reason="r"
        )
    complete_step(site.ledger, run_id, NOTIFY_STEP)
    flip_status(site.ledger, run_id=run_id, target=ServingStatus.DEPRECATED, actor="a", reason="r")

    assert model_state(site.ledger) == ("deprecated", 1)


def test_retirement_waits_for_verification_and_the_sealed_report(site: Site) -> None:
    # Not for notices: a retirement is told after its flip held, when it is true.
    ledger = site.ledger
    run_id = make_run(ledger)
    snapshot_id = add_snapshot(ledger, run_id, verified=False)

    def retire() -> object:
        return flip_status(
            ledger, run_id=run_id, target=ServingStatus.RETIRED, actor="ada", reason="end of life"
        )

    with pytest.raises(GuardRefused, match="has not passed verification"):
        retire()
    verify(ledger, snapshot_id, run_id)
    with pytest.raises(GuardRefused, match="before its report is sealed"):
        retire()
    assert model_state(ledger) == ("active", 0)
    with ledger.session() as db:
        db.add(
            Report(
                run_id=run_id,
                snapshot_id=snapshot_id,
                version=1,
                key="k",
                sha256="0" * 64,
                local_path="/r",
            )
        )

    flip = retire()
    again = retire()  # a resumed run finds its flip already done

    assert flip == again
    assert model_state(ledger) == ("retired", 1)
    with ledger.session() as db:
        transition = db.exec(select(StatusTransition)).one()
    assert (transition.from_status, transition.to_status) == ("active", "retired")
    assert (transition.actor, transition.reason, transition.run_id) == (
        "ada",
        "end of life",
        run_id,
    )


def test_reinstatement_waits_for_the_restored_files_to_be_checked(site: Site) -> None:
    ledger = site.ledger
    old_run = make_run(ledger, state=RunState.COMPLETED)
    snapshot_id = add_snapshot(ledger, old_run, verified=True)
    run_id = make_run(ledger, kind=REINSTATEMENT, status=ServingStatus.RETIRED)

    def reinstate() -> object:
        return flip_status(
            ledger, run_id=run_id, target=ServingStatus.ACTIVE, actor="ada", reason="needed"
        )

    with pytest.raises(GuardRefused, match="before this run restored its weights"):
        reinstate()
    with ledger.session() as db:
        restoration = Restoration(
            run_id=run_id, snapshot_id=snapshot_id, destination="/srv", state="restored"
        )
        db.add(restoration)
    with pytest.raises(GuardRefused, match="before this run restored its weights"):
        reinstate()
    with ledger.session() as db:
        restoration.state = "verified"
        db.add(restoration)
    reinstate()

    assert model_state(ledger) == ("active", 1)


def test_status_at_any_past_moment_skips_flips_that_were_rolled_back(site: Site) -> None:
    ledger = site.ledger
    moment = datetime(2026, 1, 1, 12, tzinfo=UTC)
    run_id = make_run(ledger, state=RunState.COMPLETED)
    with ledger.session() as db:
        model = db.get(CatalogModel, EXAMPLE_MODEL_ID)
        assert model is not None
        model.created_at, model.serving_status = moment - timedelta(days=30), ServingStatus.RETIRED
        db.add(model)
        # Deprecated on day 0; a retirement on day 31 was rolled back; retired on day 59.
        for days, before, after, undone in ((0, A, D, None), (31, D, R, 31), (59, D, R, None)):
            db.add(
                StatusTransition(
                    model_id=EXAMPLE_MODEL_ID,
                    from_status=before,
                    to_status=after,
                    run_id=run_id,
                    actor="ada",
                    reason="r",
                    at=moment + timedelta(days=days),
                    rolled_back_at=moment + timedelta(days=undone) if undone else None,
                    rollback_reason="rolled back: the check failed" if undone else None,
                )
            )

    def at(days: float) -> str | None:
        found = status_at(ledger, EXAMPLE_MODEL_ID, moment + timedelta(days=days))
        return found.value if found else None

    assert [at(-31), at(-1), at(0), at(15), at(45), at(60)] == [None, A, D, D, D, R]
    shown = subprocess.run(
        [sys.executable, "-m", "sunset.cli", "status", EXAMPLE_MODEL_ID, "--at", "2026-02-15"],
        env=os.environ | site.env,
        capture_output=True,
        text=True,
    )
    assert shown.returncode == 0, shown.stderr
    assert "sunset-example-1 was deprecated at 2026-02-15 23:59:59 UTC" in shown.stdout


def test_the_minimum_notice_depends_on_the_model_class_and_an_override_is_recorded(
    site: Site,
) -> None:
    with site.ledger.session() as db:
        model = db.get(CatalogModel, EXAMPLE_MODEL_ID)
        assert model is not None
        model.model_class = "frontier"
        db.add(model)
    settings = Settings(minimum_notice_days_by_class={"frontier": 120})
    today = date(2026, 3, 1)
    request = DeprecationRequest(
        model_id=EXAMPLE_MODEL_ID,
        weights=str(site.weights),
        recipients=str(site.recipients),
        retirement_date=today + timedelta(days=90),
    )

    with pytest.raises(
        InputError, match="90 days .* fewer than the required 120 for model class 'frontier'"
    ):
        validate_request(site.ledger, request, settings, weights=WeightsReader(None), today=today)
    assert (
        validate_request(
            site.ledger, request, Settings(), weights=WeightsReader(None), today=today
        ).terms.override_reason
        is None
    )
    overridden = DeprecationRequest(**(vars(request) | {"notice_override_reason": "security fix"}))
    validated = validate_request(
        site.ledger, overridden, settings, weights=WeightsReader(None), today=today
    )
    run = begin_deprecation(
        site.ledger, validated, flow_run_id=None, lease_seconds=60, requested_by="ada"
    )

    with site.ledger.session() as db:
        recorded = db.get(DeprecationRun, run.id)
    assert recorded is not None
    assert (recorded.notice_days, recorded.minimum_notice_days) == (90, 120)
    assert recorded.notice_override_reason == "security fix"
    assert recorded.requested_by == "ada"
    assert "notice shortened to 90 of 120 days: security fix" in validated.flip_reason(run.id)


@pytest.mark.unit
def test_the_routing_file_keeps_every_model_and_refuses_to_guess_when_corrupt(
    tmp_path: Path,
) -> None:
    routing = RoutingFile(tmp_path / "routing.json")

    routing.write("m1", Route(ServingStatus.RETIRED, "m2"))
    routing.write("m2", Route(ServingStatus.ACTIVE))
    routing.write("m1", None)

    assert routing.read("m1") is None
    assert routing.read("m2") == Route(ServingStatus.ACTIVE)
    document = json.loads((tmp_path / "routing.json").read_text())
    assert document["models"]["m2"]["status"] == "active"
    (tmp_path / "routing.json").write_text("{not json")
    with pytest.raises(GatewayError, match="is not valid JSON"):
        routing.read("m2")


def test_the_http_gateway_writes_reads_and_deletes_routes_with_its_token() -> None:
    with gateway_server("gw-token") as server:
        gateway = HttpGateway(server.url, token=SecretStr("gw-token"))
        gateway.write("m.1", Route(ServingStatus.DEPRECATED, "m.2"))
        read = gateway.read("m.1")
        gateway.write("m.1", None)
        gone = gateway.read("m.1")
        with pytest.raises(GatewayError, match="refused PUT for m.1 with 401"):
            HttpGateway(server.url, token=SecretStr("wrong")).write(
                "m.1", Route(ServingStatus.ACTIVE)
            )

    assert read == Route(ServingStatus.DEPRECATED, "m.2") and gone is None
    assert server.requests == [("PUT", "m.1"), ("GET", "m.1"), ("DELETE", "m.1"), ("GET", "m.1")]


def test_a_lagging_gateway_fails_the_check() -> None:
    with gateway_server("t", lagging=True) as server:
        gateway = HttpGateway(server.url, token=SecretStr("t"))
        gateway.write("m", Route(ServingStatus.ACTIVE))
        gateway.write("m", Route(ServingStatus.RETIRED))
        with pytest.raises(GatewayError, match="shows m as active, not retired"):
            check_route(gateway, "m", Route(ServingStatus.RETIRED))
