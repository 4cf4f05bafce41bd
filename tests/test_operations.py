"""The operating mode, for real: `sunset ops up` on PostgreSQL, a worker, the UI in Chromium.

One `sunset ops up` runs for the whole module: the local services, `prefect server start`
on a fresh PostgreSQL database, the deployments from prefect.yaml (`prefect deploy`) and
one process worker. Runs are started the two documented ways, watched through the API,
and looked at in the UI with headless Chromium. The last test presses Ctrl-C.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import psycopg
import pytest
from prefect import get_client
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterKey,
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.objects import FlowRun, TaskRun
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_API_URL, temporary_settings

from deployments.ops import (
    APPROVAL_REQUESTED_AUTOMATION,
    DEPRECATE_DEPLOYMENT,
    FIXITY_FAILED_AUTOMATION,
    RUN_FAILED_AUTOMATION,
)
from sunset.ledger import CatalogModel, open_ledger
from sunset_dev.devstack import free_port
from sunset_dev.example_model import (
    EXAMPLE_MODEL_ID,
    EXAMPLE_REPLACEMENT_ID,
    register_example_models,
    write_example_recipients,
    write_example_weights,
)
from tasks.events import AUDIT_INCOMPLETE_EVENT, FIXITY_FAILED_EVENT, RUN_TAG_PREFIX
from tests.conftest import POSTGRES_ADMIN
from tests.test_deprecate_flow import ALL_STEPS

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
SUNSET = str(Path(sys.executable).with_name("sunset"))
PREFECT = str(Path(sys.executable).with_name("prefect"))
T = TypeVar("T")

# What the audit flow does when a snapshot fails its check, and when a run could not
# complete, from a process of its own.
EMIT_AUDIT_EVENTS = f"""
from prefect.events import emit_event
from prefect.events.worker import EventsWorker
emit_event(
    event={FIXITY_FAILED_EVENT!r},
    resource={{"prefect.resource.id": "sunset.snapshot.s-123", "sunset.model-id": "m"}},
    payload={{"failures": ["data/weights/model-00001.safetensors: SHA-256 differs"]}},
)
emit_event(
    event={AUDIT_INCOMPLETE_EVENT!r},
    resource={{"prefect.resource.id": "sunset.audit.a-123"}},
    payload={{
        "text": "Sunset: Audit audit-2026-12-01 could not complete: could not audit replica",
        "run_url": "http://ui.example/runs/flow-run/1",
    }},
)
EventsWorker.drain_all()
"""


# --------------------------------------------------------------------------- fixtures


@dataclass
class Webhook:
    """An HTTP endpoint on 127.0.0.1 that keeps every JSON body POSTed to it."""

    url: str
    received: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture(scope="module")
def webhook() -> Iterator[Webhook]:
    received: list[dict[str, Any]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                received.append(json.loads(body))
            except ValueError:  # kept: a test that times out waiting for an alert shows it
                received.append({"kind": "not-json", "body": body.decode(errors="replace")})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:  # keep the test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Webhook(f"http://127.0.0.1:{server.server_port}/alerts", received)
    server.shutdown()
    server.server_close()


@dataclass
class Operations:
    """The running `sunset ops up`: its process, its state file and what it points at."""

    process: subprocess.Popen[str]
    output: Path
    state: dict[str, Any]
    exports: dict[str, str]
    ledger_url: str
    weights: Path
    recipients: Path

    @property
    def api_url(self) -> str:
        return str(self.state["api_url"])

    def env(self) -> dict[str, str]:
        """The environment a release manager's shell has after copying the exports."""
        return _clean_env() | self.exports

    @contextmanager
    def client(self) -> Iterator[SyncPrefectClient]:
        """A Prefect client of this server, whatever else the test session talks to."""
        with temporary_settings(updates={PREFECT_API_URL: self.api_url}):
            with get_client(sync_client=True) as client:
                yield client


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "SUNSET_"))}


def _fresh_database(prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return name


def _drop_database(name: str) -> None:
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def operations(tmp_path_factory: pytest.TempPathFactory, webhook: Webhook) -> Iterator[Operations]:
    prefect_db, ledger_db = _fresh_database("sunset_prefect"), _fresh_database("sunset_ledger")
    ledger_url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{ledger_db}"
    data_dir = tmp_path_factory.mktemp("operations")
    output = data_dir / "ops-up.out"
    env = _clean_env() | {
        "SUNSET_DATA_DIR": str(data_dir),
        "SUNSET_DATABASE_URL": ledger_url,
        "SUNSET_ALERT_WEBHOOK_URL": webhook.url,
        # A waiting run asks again within 3 s of the slot coming free (default: up to 30 s).
        "PREFECT_SERVER_CONCURRENCY_MAXIMUM_CONCURRENCY_SLOT_WAIT_SECONDS": "3",
        # A paused run reads an approver's answer within 2 s (default: 10 s).
        "SUNSET_APPROVAL_POLL_S": "2",
    }
    argv = [SUNSET, "ops", "up", "--port", str(free_port())]
    argv += ["--prefect-database-url", f"postgresql+asyncpg://postgres@127.0.0.1:5432/{prefect_db}"]
    with open(output, "w") as out:
        process = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=env, text=True, start_new_session=True
        )
    state_file = data_dir / "operations" / "operations.json"
    try:
        # Ready once it has printed its last export (it writes the state file just before).
        _wait_for(
            lambda: "export PREFECT_API_URL=" in output.read_text() or _exited(process, output),
            timeout=240,
            what="`sunset ops up` to be ready",
        )
        exports = dict(re.findall(r"^export (\w+)=(\S+)$", output.read_text(), re.M))
        ledger = open_ledger(ledger_url)
        register_example_models(ledger)
        with ledger.session() as db:
            for model_id in ("ops-a", "ops-b", "ops-c"):
                db.add(
                    CatalogModel(
                        id=model_id,
                        display_name=f"Ops {model_id[-1].upper()}",
                        replacement_id=EXAMPLE_REPLACEMENT_ID,
                    )
                )
        ledger.dispose()
        yield Operations(
            process=process,
            output=output,
            state=json.loads(state_file.read_text()),
            exports=exports,
            ledger_url=ledger_url,
            weights=write_example_weights(data_dir / "example" / "weights"),
            recipients=write_example_recipients(data_dir / "example" / "users.csv"),
        )
    finally:
        if process.poll() is None:  # the Ctrl-C test did not run or did not stop it
            os.kill(process.pid, signal.SIGINT)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        _drop_database(prefect_db)
        _drop_database(ledger_db)


def _exited(process: subprocess.Popen[str], output: Path) -> bool:
    if process.poll() is None:
        return False
    raise AssertionError(f"`sunset ops up` exited early:\n{output.read_text()[-3000:]}")


def _wait_for(condition: Callable[[], T], *, timeout: float, what: str, every: float = 1.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


# --------------------------------------------------------------------------- helpers


def run_cli(
    argv: list[str], env: dict[str, str], timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)


def wait_until_final(ops: Operations, flow_run_ids: list[UUID], timeout: float) -> list[FlowRun]:
    def finals() -> list[FlowRun] | None:
        with ops.client() as client:
            runs = [client.read_flow_run(i) for i in flow_run_ids]
        return runs if all(r.state and r.state.is_final() for r in runs) else None

    return _wait_for(finals, timeout=timeout, what=f"flow runs {flow_run_ids} to end", every=2)


def task_runs(ops: Operations, flow_run_id: UUID) -> list[TaskRun]:
    with ops.client() as client:
        found = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return sorted(found, key=lambda t: t.start_time or t.created)


def busy_interval(ops: Operations, flow_run_id: UUID) -> tuple[Any, Any]:
    """From the first step's start to the last step's end: when the run did its work."""
    runs = task_runs(ops, flow_run_id)
    return min(t.start_time for t in runs), max(t.end_time for t in runs)


def log_text(ops: Operations, flow_run_id: UUID) -> str:
    with ops.client() as client:
        logs = client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
        )
    return "\n".join(log.message for log in logs)


def model_status(ops: Operations, model_id: str) -> str:
    ledger = open_ledger(ops.ledger_url)
    with ledger.session() as db:
        model = db.get(CatalogModel, model_id)
        assert model is not None
        status = str(model.serving_status)
    ledger.dispose()
    return status


def render_in_chromium(url: str, profile: Path, screenshot: Path | None = None) -> str:
    """The page's text after its scripts ran, as headless Chromium renders it."""
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is needed (.ci/run installs it: apt-get install chromium)"
    argv = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=15000",
        "--window-size=1400,1000",
    ]
    if screenshot is not None:
        argv.append(f"--screenshot={screenshot}")
    done = subprocess.run([*argv, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", done.stdout, flags=re.S)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


# --------------------------------------------------------------------------- tests


def test_via_deployment_refuses_without_a_prefect_server(tmp_path: Path) -> None:
    done = run_cli(
        [
            SUNSET,
            "deprecate",
            "any-model",
            "--weights",
            str(tmp_path),
            "--recipients",
            str(tmp_path / "users.csv"),
            "--via-deployment",
        ],
        # No server in the environment, and none in a Prefect profile either.
        env=_clean_env() | {"SUNSET_DATA_DIR": str(tmp_path), "PREFECT_HOME": str(tmp_path)},
    )

    assert done.returncode == 1
    assert "No Prefect server is configured: set PREFECT_API_URL" in done.stderr
    assert "Traceback" not in done.stderr


def test_deprecation_via_deployment_completes_and_shows_in_the_ui(
    operations: Operations, tmp_path: Path
) -> None:
    done = run_cli(
        [
            SUNSET,
            "deprecate",
            EXAMPLE_MODEL_ID,
            "--weights",
            str(operations.weights),
            "--recipients",
            str(operations.recipients),
            "--via-deployment",
            "--wait",
        ],
        env=operations.env(),
    )

    assert done.returncode == 0, done.stdout + done.stderr
    link = re.search(r"http://\S+/v2/runs/flow-run/([0-9a-f-]{36})", done.stdout)
    assert link is not None, done.stdout
    assert f"Started announce-{EXAMPLE_MODEL_ID} on {DEPRECATE_DEPLOYMENT}" in done.stdout
    assert f"announce-{EXAMPLE_MODEL_ID} ended Completed. `sunset status" in done.stdout
    flow_run_id = UUID(link.group(1))
    with operations.client() as client:
        run = client.read_flow_run(flow_run_id)
        deployment = client.read_deployment_by_name(DEPRECATE_DEPLOYMENT)
    assert run.state is not None and run.state.is_completed()
    assert run.deployment_id == deployment.id
    assert f"model:{EXAMPLE_MODEL_ID}" in run.tags
    assert [t.name.rsplit("-", 1)[0] for t in task_runs(operations, flow_run_id)] == ALL_STEPS
    assert model_status(operations, EXAMPLE_MODEL_ID) == "deprecated"

    # The printed link, rendered by the UI the Prefect server serves.
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "ui-flow-run-task-runs.png"
    screenshot.unlink(missing_ok=True)
    steps_page = render_in_chromium(
        f"{link.group(0)}?tab=TaskRuns", tmp_path / "profile-1", screenshot=screenshot
    )
    artifacts_page = render_in_chromium(f"{link.group(0)}?tab=Artifacts", tmp_path / "profile-2")

    assert f"announce-{EXAMPLE_MODEL_ID}" in steps_page
    assert f"{len(ALL_STEPS)} Task runs ({len(ALL_STEPS)} Completed)" in steps_page, steps_page[
        :2000
    ]
    for step in ALL_STEPS:
        assert re.search(rf"\b{step}-\w+ Completed", steps_page), step
    assert f"report-{EXAMPLE_MODEL_ID}" in artifacts_page, artifacts_page[:2000]
    assert "Post-deployment report" in artifacts_page
    assert screenshot.stat().st_size > 50_000  # a rendered page, not a blank one


def test_ops_up_prints_the_api_key_its_stand_in_takes(operations: Operations) -> None:
    from sunset_dev.devstack import STAND_IN_API_KEY

    printed = operations.output.read_text()
    assert f"export SUNSET_ANTHROPIC_API_KEY={STAND_IN_API_KEY}\n" in printed
    # With only the printed settings, a deprecation's preflight finds the key accepted.
    checked = run_cli(
        [sys.executable, "-c", CHECK_KEY, operations.exports["SUNSET_MESSAGES_BASE_URL"]],
        env=operations.env(),
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


CHECK_KEY = """
import sys
from sunset.config import Settings
from sunset.interview.client import AnthropicMessages
settings = Settings()
client = AnthropicMessages(base_url=sys.argv[1], api_key=settings.anthropic_api_key)
client.check_model("acme-chat-1", role="the model", fix="serve it")
"""


def test_prefect_deployment_run_starts_the_same_flow(operations: Operations) -> None:
    done = run_cli(
        [
            PREFECT,
            "deployment",
            "run",
            DEPRECATE_DEPLOYMENT,
            "--param",
            "request="
            + json.dumps(
                {
                    "model_id": EXAMPLE_MODEL_ID,
                    "weights": str(operations.weights),
                    "recipients": str(operations.recipients),
                    "retire": True,
                    "notice_override_reason": "Retired early in the operations test.",
                }
            ),
            "--watch",
        ],
        env=operations.env(),
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "Flow run finished successfully in 'Completed'" in done.stdout
    assert model_status(operations, EXAMPLE_MODEL_ID) == "retired"


def test_a_second_run_of_one_model_waits_while_another_model_runs_alongside(
    operations: Operations,
) -> None:
    files = {"weights": str(operations.weights), "recipients": str(operations.recipients)}
    # Each of the first two interview requests is answered 10 s late: runs last long
    # enough to overlap whatever the machine's load.
    faults = urllib.request.Request(
        f"{operations.exports['SUNSET_MESSAGES_BASE_URL']}/_standin/faults",
        data=json.dumps([{"delay": 10}, {"delay": 10}]).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    urllib.request.urlopen(faults, timeout=10).close()

    with temporary_settings(updates={PREFECT_API_URL: operations.api_url}):
        first = run_deployment(
            DEPRECATE_DEPLOYMENT, parameters={"request": {"model_id": "ops-a"} | files}, timeout=0
        )

        def first_holds_its_slot() -> bool:
            with operations.client() as client:
                try:  # made by the first run of the model, once it starts
                    limit = client.read_global_concurrency_limit_by_name("deprecate-ops-a")
                except ObjectNotFound:
                    return False
            return limit.active_slots == 1

        _wait_for(first_holds_its_slot, timeout=90, what="the first ops-a run to hold its slot")
        second = run_deployment(
            DEPRECATE_DEPLOYMENT, parameters={"request": {"model_id": "ops-a"} | files}, timeout=0
        )
        other = run_deployment(
            DEPRECATE_DEPLOYMENT, parameters={"request": {"model_id": "ops-b"} | files}, timeout=0
        )
    first_run, second_run, other_run = wait_until_final(
        operations, [first.id, second.id, other.id], timeout=180
    )

    assert first_run.state.is_completed() and other_run.state.is_completed()
    # The second run waited for the first, then found nothing left to do.
    assert "holds the concurrency limit deprecate-ops-a; this run waits" in log_text(
        operations, second.id
    )
    first_start, first_end = busy_interval(operations, first.id)
    second_start, _ = busy_interval(operations, second.id)
    assert second_start >= first_end
    # A harmless duplicate: completed, named for what it found, and no failure alert
    # (test_alerts_post_failed_runs... checks that none arrived).
    assert second_run.state.is_completed() and second_run.state.name == "Nothing to do"
    assert second_run.state.message == "ops-a is already deprecated; there is nothing to do."
    # The other model's run worked while the first did.
    other_start, other_end = busy_interval(operations, other.id)
    assert other_start < first_end and first_start < other_end
    assert model_status(operations, "ops-a") == model_status(operations, "ops-b") == "deprecated"


def test_approvers_are_told_and_a_rejected_retirement_shows_as_rejected_in_the_ui(
    operations: Operations, webhook: Webhook, tmp_path: Path
) -> None:
    # Followed with --wait, its output a file, as in a CI log: no terminal.
    followed = tmp_path / "deprecate-wait.out"
    with open(followed, "w") as out:
        following = subprocess.Popen(
            [
                SUNSET,
                "deprecate",
                "ops-c",
                "--weights",
                str(operations.weights),
                "--recipients",
                str(operations.recipients),
                "--retire",
                "--notice-override",
                "Retired early in the operations test.",
                "--approvals",
                "2",
                "--via-deployment",
                "--wait",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=operations.env() | {"COLUMNS": "400"},  # one line a change, for the asserts
            text=True,
        )
    link = _wait_for(
        lambda: re.search(r"http://\S+/v2/runs/flow-run/([0-9a-f-]{36})", followed.read_text()),
        timeout=120,
        what="`sunset deprecate --via-deployment --wait` to print the run's page",
    )
    flow_run_id = UUID(link.group(1))

    def paused() -> FlowRun | None:
        with operations.client() as client:
            run = client.read_flow_run(flow_run_id)
        return run if run.state and run.state.is_paused() else None

    waiting = _wait_for(paused, timeout=180, what="the ops-c run to wait for approval")
    [run_id] = [t.removeprefix(RUN_TAG_PREFIX) for t in waiting.tags if t.startswith("sunset-")]
    told = _wait_for(
        lambda: next((a for a in webhook.received if a.get("kind") == "approval-requested"), None),
        timeout=60,
        what="the approval-requested alert",
    )
    assert told["text"] == (
        f"Sunset: ops-c waits for 2 approval(s) before it becomes retired (run {run_id}): "
        f"{told['url']}"
    )
    assert told["url"].endswith(f"/runs/flow-run/{flow_run_id}")
    assert (told["model_id"], told["run_id"], told["flow_run_id"]) == (
        "ops-c",
        run_id,
        str(flow_run_id),
    )
    assert told["summary"].startswith("# Approval needed: Ops C (`ops-c`) active → **retired**")

    # A release manager's shell: the Prefect API and nothing else, as the README says.
    home = tmp_path / "home"
    shell = _clean_env() | {
        "PREFECT_API_URL": operations.api_url,
        "PREFECT_HOME": str(home / ".prefect"),
        "HOME": str(home),
        "LOGNAME": "alice",
        "USER": "alice",
    }
    approved = run_cli([SUNSET, "approve", str(flow_run_id), "--reason", "report read"], env=shell)
    rejected = run_cli(
        [SUNSET, "reject", run_id[:8], "--as", "bob", "--reason", "a customer still needs it"],
        env=shell | {"LOGNAME": "bob", "USER": "bob"},
    )
    [final] = wait_until_final(operations, [flow_run_id], timeout=120)
    following.wait(60)
    follow_lines = followed.read_text().splitlines()

    assert approved.returncode == 0, approved.stderr
    assert approved.stdout.startswith(
        f"Recorded: alice (login:alice) approved run {run_id} (ops-c); 1 of 2 approvals "
        "so far; the run waits for 1 more, from a different person."
    )
    assert rejected.returncode == 0, rejected.stderr
    assert rejected.stdout.startswith(f"Recorded: bob (login:bob) rejected run {run_id} (ops-c)")
    assert not (home / ".sunset").exists()  # no ledger was made on the way
    assert final.state is not None and final.state.is_completed()
    assert final.state.name == "Rejected"
    assert model_status(operations, "ops-c") == "active"
    # --wait said when the run began to wait, and how it ended, named.
    assert following.returncode == 0, follow_lines
    assert any(
        line.startswith("retire-ops-c: Paused")
        and line.endswith(
            f"waiting for approval: sunset approve {flow_run_id} --reason TEXT (or sunset reject)"
        )
        for line in follow_lines
    ), follow_lines
    assert follow_lines[-1] == (
        "retire-ops-c ended Rejected: Rejected by bob; the serving status did not change."
    ), follow_lines

    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "ui-flow-run-rejected.png"
    screenshot.unlink(missing_ok=True)
    page = render_in_chromium(link.group(0), tmp_path / "profile", screenshot=screenshot)

    assert "retire-ops-c" in page
    # The state badge in the run's header, just before its start date.
    assert re.search(r"\bRejected \d{4}/\d{2}/\d{2} ", page), page[:2000]
    assert screenshot.stat().st_size > 50_000  # a rendered page, not a blank one

    # The report the run sealed before it asked for approval, read in the UI.
    with operations.client() as client:
        reports = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["report-ops-c"])),
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
        )
    report = max(reports, key=lambda artifact: str(artifact.created))  # the last sealed
    report_url = link.group(0).replace(
        f"runs/flow-run/{flow_run_id}", f"artifacts/artifact/{report.id}"
    )
    report_shot = ARTIFACTS / "ui-report-artifact.png"
    report_shot.unlink(missing_ok=True)
    report_page = render_in_chromium(
        report_url, tmp_path / "profile-report", screenshot=report_shot
    )

    # The Markdown rendered: its headings and text, not the name of a file elsewhere.
    assert "Post-deployment report: Ops C (ops-c)" in report_page, report_page[:3000]
    for heading in (
        "1. Model and timeline",
        "3. Notices to users",
        "4. Preservation",
        "5. Interview",
    ):
        assert heading in report_page, heading
    assert re.search(r"Version \d+, sealed in the package", report_page), report_page[:3000]
    assert report_shot.stat().st_size > 50_000


def test_alerts_post_failed_runs_and_the_audit_s_events_to_the_webhook(
    operations: Operations, webhook: Webhook
) -> None:
    with temporary_settings(updates={PREFECT_API_URL: operations.api_url}):
        failing = run_deployment(
            DEPRECATE_DEPLOYMENT,
            parameters={
                "request": {
                    "model_id": "not-in-the-catalog",
                    "weights": str(operations.weights),
                    "recipients": str(operations.recipients),
                }
            },
            timeout=0,
        )
        failing_drill = run_deployment(
            "resurrection-drill/drill", parameters={"model_id": "not-in-the-catalog"}, timeout=0
        )
    emitted = run_cli([sys.executable, "-c", EMIT_AUDIT_EVENTS], env=operations.env())
    assert emitted.returncode == 0, emitted.stderr

    def alert(kind: str, needle: str, what: str) -> dict[str, Any]:
        """The first alert of ``kind`` that mentions ``needle``, waited for; on a timeout
        the message lists everything the webhook received, bodies that were not JSON too."""
        try:
            return _wait_for(
                lambda: next(
                    (
                        a
                        for a in webhook.received
                        if a.get("kind") == kind and needle in json.dumps(a)
                    ),
                    None,
                ),
                timeout=120,
                what=what,
            )
        except AssertionError as timed_out:
            raise AssertionError(f"{timed_out}; the webhook received {webhook.received}") from None

    fixity = alert("fixity-check-failed", "sunset.snapshot.s-123", "the fixity alert")
    failed = alert("run-failed", str(failing.id), "the failed-run alert")
    drill = alert("run-failed", str(failing_drill.id), "the failed drill's alert")
    incomplete = alert("audit-incomplete", "sunset.audit.a-123", "the audit alert")

    assert fixity["text"] == "Sunset: fixity check failed for sunset.snapshot.s-123"
    assert fixity["url"] is None  # this event named no run
    assert (drill["flow"], drill["state"]) == ("resurrection-drill", "Failed")
    assert incomplete["text"].endswith("could not audit replica")
    assert incomplete["url"] == "http://ui.example/runs/flow-run/1"
    assert fixity["details"]["failures"][0].endswith("SHA-256 differs")
    assert (failed["flow"], failed["state"]) == ("deprecate-model", "Failed")
    assert failed["text"].startswith("Sunset: deprecate-model run announce-not-in-the-catalog")
    assert "Model 'not-in-the-catalog' is not in the catalog" in failed["text"]
    assert f"/runs/flow-run/{failing.id}" in failed["url"]
    # Earlier runs that ended Rejected or Nothing to do were no failures: no alert of theirs.
    deprecation_failed = ("run-failed", "deprecate-model")
    failures = [a for a in webhook.received if (a["kind"], a.get("flow")) == deprecation_failed]
    assert [a["flow_run_id"] for a in failures] == [str(failing.id)]


def test_ops_setup_again_changes_nothing(operations: Operations, webhook: Webhook) -> None:
    done = run_cli([SUNSET, "ops", "setup", "--alert-webhook", webhook.url], env=operations.env())

    assert done.returncode == 0, done.stdout + done.stderr
    assert "Work pool sunset: already there." in done.stdout
    assert DEPRECATE_DEPLOYMENT in done.stdout
    assert webhook.url not in done.stdout + done.stderr
    with operations.client() as client:
        for name in (
            RUN_FAILED_AUTOMATION,
            FIXITY_FAILED_AUTOMATION,
            APPROVAL_REQUESTED_AUTOMATION,
        ):
            assert len(client.read_automations_by_name(name)) == 1


def test_an_unknown_deployment_is_refused_with_what_to_do(operations: Operations) -> None:
    done = run_cli(
        [
            SUNSET,
            "deprecate",
            "ops-a",
            "--weights",
            str(operations.weights),
            "--recipients",
            str(operations.recipients),
            "--via-deployment",
            "--deployment",
            "deprecate-model/nope",
        ],
        env=operations.env(),
    )

    assert done.returncode == 1
    assert "Deployment 'deprecate-model/nope' is not on the Prefect server" in done.stderr
    assert "register the deployments with `sunset ops setup`" in done.stderr


def test_ctrl_c_stops_the_worker_the_server_and_the_services(operations: Operations) -> None:
    pids = [service["pid"] for service in operations.state["services"].values()]
    assert len(pids) == 5  # seaweedfs, smtp, messages, prefect-server, prefect-worker

    operations.process.send_signal(signal.SIGINT)
    returncode = operations.process.wait(90)

    assert returncode == 0, operations.output.read_text()[-3000:]
    assert operations.output.read_text().rstrip().endswith("Stopped.")
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
