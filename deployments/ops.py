"""Operating Sunset on a Prefect server: work pool, deployments, alerts, and runs.

Everything here talks to the Prefect API named by ``PREFECT_API_URL`` and can be run
again at any time: what is already right stays as it is, what differs is put right.
``sunset ops setup`` and ``sunset ops up`` call it; so does
``sunset deprecate --via-deployment``. ``sunset approve``/``reject`` answer a paused run's
approval form through ``deployments/approvals.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

from prefect import get_client
from prefect.blocks.webhook import Webhook
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.events.actions import CallWebhook
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_API_URL
from prefect.types import SecretDict
from prefect.workers.process import ProcessWorker
from pydantic import SecretStr

from sunset.errors import InputError, SunsetError
from sunset.runs.request import DeprecationRequest, run_name
from tasks.events import (
    ALERTING_FLOWS,
    ALL_CLEAR_EVENT,
    APPROVAL_REQUESTED_EVENT,
    AUDIT_INCOMPLETE_EVENT,
    FIXITY_FAILED_EVENT,
    FLOW_RUN_FAILED_EVENTS,
    flow_run_page,
)
from tasks.prefect_calls import sync_result

PROJECT_ROOT = Path(__file__).resolve().parent.parent
WORK_POOL = "sunset"
DEPRECATE_FLOW = "deprecate-model"
DEPRECATE_DEPLOYMENT = f"{DEPRECATE_FLOW}/manual"
ALERT_WEBHOOK_BLOCK = "sunset-alerts"
RUN_FAILED_AUTOMATION = "sunset: run failed"
FIXITY_FAILED_AUTOMATION = "sunset: fixity check failed"
APPROVAL_REQUESTED_AUTOMATION = "sunset: approval requested"
AUDIT_INCOMPLETE_AUTOMATION = "sunset: audit could not complete"
ALL_CLEAR_AUTOMATION = "sunset: package healthy again"
# Names earlier versions gave automations that one of the above replaces.
REPLACED_AUTOMATIONS = ("sunset: deprecation run failed",)

# Webhook bodies: JSON with a `text` line that chat webhooks (Slack, Mattermost) show as is.
RUN_FAILED_PAYLOAD = """{
  "kind": "run-failed",
  "text": {{ ("Sunset: " ~ flow.name ~ " run " ~ flow_run.name ~ " ended " ~ flow_run.state.name
             ~ ": " ~ (flow_run.state.message or "no message")) | tojson }},
  "flow": {{ flow.name | tojson }},
  "flow_run": {{ flow_run.name | tojson }},
  "flow_run_id": {{ flow_run.id | string | tojson }},
  "state": {{ flow_run.state.name | tojson }},
  "tags": {{ flow_run.tags | tojson }},
  "url": {{ flow_run | ui_url | tojson }}
}"""


# The webhook body of an event the audit emits: its own `text` line (for one without, the
# fallback and the resource), the resource, and every fact it carries.
_AUDIT_PAYLOAD = """{
  "kind": "<kind>",
  "text": {{ (event.payload.text or ("<fallback> " ~ event.resource.id)) | tojson }},
  "resource": {{ event.resource | tojson }},
  "details": {{ event.payload | tojson }},
  "url": {{ (event.payload.run_url or none) | tojson }},
  "occurred": {{ event.occurred | string | tojson }}
}"""

APPROVAL_REQUESTED_PAYLOAD = """{
  "kind": "approval-requested",
  "text": {{ ("Sunset: " ~ event.payload.model_id ~ " waits for " ~ event.payload.required
             ~ " approval(s) before it becomes " ~ event.payload.target_status ~ " (run "
             ~ event.payload.run_id ~ "): " ~ (flow_run | ui_url)) | tojson }},
  "model_id": {{ event.payload.model_id | tojson }},
  "run_id": {{ event.payload.run_id | tojson }},
  "flow_run_id": {{ event.payload.flow_run_id | tojson }},
  "target_status": {{ event.payload.target_status | tojson }},
  "required": {{ event.payload.required | tojson }},
  "approvers": {{ event.payload.approvers | tojson }},
  "summary": {{ event.payload.summary | tojson }},
  "url": {{ flow_run | ui_url | tojson }}
}"""


def audit_payload(kind: str, fallback: str) -> str:
    return _AUDIT_PAYLOAD.replace("<kind>", kind).replace("<fallback>", fallback)


FIXITY_FAILED_PAYLOAD = audit_payload("fixity-check-failed", "Sunset: fixity check failed for")
AUDIT_INCOMPLETE_PAYLOAD = audit_payload("audit-incomplete", "Sunset: audit could not complete:")
ALL_CLEAR_PAYLOAD = audit_payload("all-clear", "Sunset: all clear for")


def require_server() -> str:
    """The API URL of the Prefect server this process talks to.

    Raises:
        InputError: no server is configured, so Prefect would start a temporary one that
            no worker watches.
    """
    url = PREFECT_API_URL.value()
    if not url:
        raise InputError(
            "No Prefect server is configured: set PREFECT_API_URL to its API (for example "
            "http://127.0.0.1:4200/api, which `sunset ops up` prints) and run again."
        )
    return str(url)


def ensure_work_pool(name: str = WORK_POOL) -> bool:
    """Create the process work pool that Sunset's workers serve; True if it was created."""
    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(name)
            return False
        except ObjectNotFound:
            client.create_work_pool(
                WorkPoolCreate(
                    name=name,
                    type="process",
                    description="Sunset's flow runs; any worker started with "
                    f"`prefect worker start --pool {name}` runs them.",
                    base_job_template=ProcessWorker.get_default_base_job_template(),
                )
            )
            return True


def deploy_project(root: Path = PROJECT_ROOT) -> list[str]:
    """Register every deployment in ``root/prefect.yaml`` with the server; return their names.

    Runs ``prefect deploy --all``, so prefect.yaml stays the one description of them.
    """
    if not (root / "prefect.yaml").is_file():
        raise InputError(f"No prefect.yaml in {root}; run this from a Sunset checkout.")
    env = os.environ | {"PREFECT_API_URL": require_server()}
    done = subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
        raise SunsetError(f"`prefect deploy --all` failed in {root}:\n{tail}")
    with get_client(sync_client=True) as client:
        deployments = client.read_deployments()
        flows = {flow.id: flow.name for flow in client.read_flows()}
    return sorted(f"{flows[d.flow_id]}/{d.name}" for d in deployments)


def ensure_alerts(webhook_url: str) -> list[str]:
    """Post to ``webhook_url`` when a run fails or crashes, a fixity check fails, an audit
    could not complete, a package is healthy again, or a run waits for approval.

    Saves the URL in the Webhook block ``sunset-alerts`` and (re)creates the automations
    that call it; returns their names.
    """
    block = Webhook(
        method="POST",
        url=SecretStr(webhook_url),
        headers=SecretDict({"Content-Type": "application/json"}),
        # The operator names the URL; alert gateways commonly live on the private network.
        allow_private_urls=True,
    )
    block_id: UUID = sync_result(block.save(ALERT_WEBHOOK_BLOCK, overwrite=True))

    def on_event(name: str, description: str, event: str, payload: str) -> AutomationCore:
        return AutomationCore(
            name=name,
            description=description,
            trigger=EventTrigger(expect={event}, posture=Posture.Reactive, threshold=1),
            actions=[CallWebhook(block_document_id=block_id, payload=payload)],
        )

    automations = [
        AutomationCore(
            name=RUN_FAILED_AUTOMATION,
            description=f"A run of {', '.join(ALERTING_FLOWS)} failed or crashed.",
            trigger=EventTrigger(
                expect=set(FLOW_RUN_FAILED_EVENTS),
                match_related={
                    "prefect.resource.role": "flow",
                    "prefect.resource.name": list(ALERTING_FLOWS),
                },
                posture=Posture.Reactive,
                threshold=1,
            ),
            actions=[CallWebhook(block_document_id=block_id, payload=RUN_FAILED_PAYLOAD)],
        ),
        on_event(
            FIXITY_FAILED_AUTOMATION,
            f"The preservation audit emitted {FIXITY_FAILED_EVENT}.",
            FIXITY_FAILED_EVENT,
            FIXITY_FAILED_PAYLOAD,
        ),
        on_event(
            AUDIT_INCOMPLETE_AUTOMATION,
            f"The preservation audit emitted {AUDIT_INCOMPLETE_EVENT}.",
            AUDIT_INCOMPLETE_EVENT,
            AUDIT_INCOMPLETE_PAYLOAD,
        ),
        on_event(
            ALL_CLEAR_AUTOMATION,
            f"The preservation audit emitted {ALL_CLEAR_EVENT}.",
            ALL_CLEAR_EVENT,
            ALL_CLEAR_PAYLOAD,
        ),
        on_event(
            APPROVAL_REQUESTED_AUTOMATION,
            f"A run emitted {APPROVAL_REQUESTED_EVENT}: it waits for approvers.",
            APPROVAL_REQUESTED_EVENT,
            APPROVAL_REQUESTED_PAYLOAD,
        ),
    ]
    with get_client(sync_client=True) as client:
        for name in [*REPLACED_AUTOMATIONS, *(a.name for a in automations)]:
            for existing in client.read_automations_by_name(name):
                client.delete_automation(existing.id)
        for automation in automations:
            client.create_automation(automation)
    return [automation.name for automation in automations]


def start_deprecation(
    request: DeprecationRequest,
    requested_by: str | None,
    *,
    deployment: str = DEPRECATE_DEPLOYMENT,
) -> FlowRun:
    """Create a flow run of the deployment for a worker to pick up; return it at once."""
    server = require_server()
    try:
        return sync_result(
            run_deployment(
                deployment,
                parameters={"request": request.parameters(), "requested_by": requested_by},
                flow_run_name=run_name(request),
                timeout=0,
            )
        )
    except ObjectNotFound:
        raise InputError(
            f"Deployment {deployment!r} is not on the Prefect server at {server}; "
            "register the deployments with `sunset ops setup` and run again."
        ) from None


def follow(
    flow_run_id: UUID,
    on_progress: Callable[[FlowRun, list[str]], None],
    *,
    poll_seconds: float = 2.0,
) -> FlowRun:
    """Poll the flow run until it ends, reporting its state and the steps it finished."""
    with get_client(sync_client=True) as client:
        while True:
            run = client.read_flow_run(flow_run_id)
            task_runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            )
            finished = sorted(
                (t for t in task_runs if t.state and t.state.is_completed()),
                # The server stamps `created` on every run; the last fallback only
                # keeps the key a datetime where the client's schema allows None.
                key=lambda t: t.end_time or t.created or datetime.min.replace(tzinfo=UTC),
            )
            # Task run names are the step's name and a short key: notify_users-816.
            on_progress(run, [t.name.rsplit("-", 1)[0] for t in finished])
            if run.state is not None and run.state.is_final():
                return run
            time.sleep(poll_seconds)


def flow_run_url(flow_run_id: UUID) -> str:
    """The flow run's page in the Prefect UI (the v2 UI, Prefect's default).

    Raises:
        InputError: no Prefect server is configured.
    """
    require_server()
    url = flow_run_page(flow_run_id)
    assert url is not None  # a server is configured
    return url
