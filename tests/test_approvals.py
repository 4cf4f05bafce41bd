"""The approval gate's decisions: one person counts once whatever names they type, the
decider is told what their decision did, and who the decider is."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prefect.settings import (
    PREFECT_API_KEY,
    PREFECT_API_URL,
    PREFECT_CLOUD_API_URL,
    temporary_settings,
)
from sqlmodel import select

from deployments.approvals import decider_identity
from sunset.errors import InputError
from sunset.ledger import (
    Approval,
    CatalogModel,
    DeprecationRun,
    Ledger,
    RunState,
    ServingStatus,
    open_existing_ledger,
    open_ledger,
)
from sunset.serving.approvals import APPROVE, REJECT, GateState, record_decision

pytestmark = pytest.mark.unit

RUN_ID = "7c0ffee0" + "0" * 24


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    ledger = open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    with ledger.session() as db:
        db.add(CatalogModel(id="m1", display_name="Model One", serving_status="deprecated"))
        db.add(DeprecationRun(id=RUN_ID, model_id="m1"))
    yield ledger
    ledger.dispose()


def decide(
    ledger: Ledger, approver: str, identity: str | None, decision: str = APPROVE
) -> GateState:
    return record_decision(
        ledger,
        run_id=RUN_ID,
        flow_run_id=None,
        target=ServingStatus.RETIRED,
        required=2,
        approver=approver,
        identity=identity,
        decision=decision,
        reason="read the report",
    )


def recorded(ledger: Ledger) -> list[tuple[str, str | None, bool]]:
    with ledger.session() as db:
        rows = db.exec(select(Approval).order_by(Approval.id)).all()  # type: ignore[arg-type]
    return [(row.approver, row.approver_identity, row.counted) for row in rows]


def test_one_login_typing_two_names_counts_once(ledger: Ledger) -> None:
    first = decide(ledger, "bob", "login:bob")
    second = decide(ledger, "Robert", "login:bob")
    third = decide(ledger, "carol", "login:carol")

    assert first.outcome() == (
        "1 of 2 approvals so far; the run waits for 1 more, from a different person."
    )
    assert second.approvers == ["bob"] and second.waiting
    assert second.outcome() == (
        "Not counted: Robert (login:bob) already approved as bob; a second, different "
        "approver is needed. 1 of 2 approvals so far; the run waits for 1 more, from a "
        "different person."
    )
    assert third.approved and third.approvers == ["bob", "carol"]
    assert third.outcome() == "that makes 2 of 2 approvals: the run continues."
    assert recorded(ledger) == [
        ("bob", "login:bob", True),
        ("Robert", "login:bob", False),
        ("carol", "login:carol", True),
    ]


def test_a_name_already_counted_counts_once_from_any_login_or_the_form(ledger: Ledger) -> None:
    decide(ledger, "dana", "login:dana")
    from_the_form = decide(ledger, "Dana", None)
    from_another_login = decide(ledger, "DANA", "login:root")

    assert from_the_form.waiting and from_another_login.waiting
    assert [counted for *_, counted in recorded(ledger)] == [True, False, False]


def test_two_people_answering_in_the_form_count_as_two(ledger: Ledger) -> None:
    decide(ledger, "erin", None)
    state = decide(ledger, "frank", None)

    assert state.approved and state.approvers == ["erin", "frank"]


def test_a_rejection_ends_the_gate_and_the_decider_is_told_so(ledger: Ledger) -> None:
    decide(ledger, "gina", "login:gina")
    state = decide(ledger, "gina", "login:gina", decision=REJECT)

    assert state.rejected_by == "gina" and not state.waiting and not state.approved
    assert state.outcome() == (
        "the run ends as Rejected; the model's serving status stays as it is."
    )
    with ledger.session() as db:
        assert db.get(DeprecationRun, RUN_ID).state == RunState.REJECTED  # type: ignore[union-attr]


def test_the_gate_state_reaches_the_decider_unchanged(ledger: Ledger) -> None:
    decide(ledger, "hal", "login:hal")
    state = decide(ledger, "Hal", "login:hal")

    assert GateState.from_json(json.loads(json.dumps(state.as_json()))) == state


def test_a_read_only_command_finds_no_ledger_instead_of_making_one(tmp_path: Path) -> None:
    missing = tmp_path / "data" / "ledger.db"

    with pytest.raises(InputError) as refused:
        open_existing_ledger(f"sqlite:///{missing}")

    assert str(refused.value) == (
        f"There is no ledger at {missing}: set SUNSET_DATA_DIR to the data directory your "
        "runs used, or SUNSET_DATABASE_URL to the ledger's database, and run again."
    )
    assert not (tmp_path / "data").exists()


@contextmanager
def prefect_cloud_me(status: int, body: dict[str, Any]) -> Iterator[str]:
    """A stand-in for Prefect Cloud's `GET /api/me/`, answering only the key `pnu_key`."""

    class Me(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            known = self.headers["Authorization"] == "Bearer pnu_key"
            ok = self.path == "/api/me/" and known
            payload = json.dumps(body if ok else {"detail": "Unauthorized"}).encode()
            self.send_response(status if ok else 401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Me)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/api"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, {"id": "u-1", "handle": "ada", "email": "ada@example.org"}, "prefect:ada"),
        (403, {"detail": "a service account is not a user"}, "login:zoe"),
    ],
)
def test_the_decider_is_the_prefect_cloud_user_else_the_login(
    monkeypatch: pytest.MonkeyPatch, status: int, body: dict[str, Any], expected: str
) -> None:
    monkeypatch.setenv("LOGNAME", "zoe")
    with prefect_cloud_me(status, body) as cloud:
        workspace = f"{cloud}/accounts/a-1/workspaces/w-1"
        settings = {PREFECT_CLOUD_API_URL: cloud, PREFECT_API_URL: workspace}
        with temporary_settings(updates=settings | {PREFECT_API_KEY: "pnu_key"}):
            assert decider_identity() == expected
    # A server of one's own has no accounts: its login decides, and no key is sent out.
    own = {PREFECT_API_URL: "http://127.0.0.1:9/api", PREFECT_API_KEY: "pnu_key"}
    with temporary_settings(updates=own):
        assert decider_identity() == "login:zoe"
