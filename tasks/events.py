"""Every Prefect event Sunset emits, the resources they are about, the tags Sunset puts on
its flow runs, and the flows whose failure is an alert, named once.

The preservation audit and the approval gate emit the events (tasks/audit.py,
tasks/approval.py); the operators' automations match them (deployments/ops.py).
Resource ids are ``sunset.<kind>.<id>``.
"""

from __future__ import annotations

from uuid import UUID

from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL

# A fixity check failed, repaired or not: one per snapshot and audit run.
FIXITY_FAILED_EVENT = "sunset.fixity.failed"
# An object of the snapshot has no good copy left on any replica.
IRREPARABLE_EVENT = "sunset.preservation.irreparable"
# An audit run could not complete: a replica did not answer. One per run.
AUDIT_INCOMPLETE_EVENT = "sunset.preservation.audit-incomplete"
# A package that had open damage or an incomplete audit is healthy again.
ALL_CLEAR_EVENT = "sunset.preservation.all-clear"
# Deep checks did not re-read every object within the period.
DEEP_AUDIT_BEHIND_EVENT = "sunset.preservation.deep-audit-behind"
# A run paused until enough people approve the change of a model's serving status.
APPROVAL_REQUESTED_EVENT = "sunset.approval.requested"
# Prefect's own events for a flow run that ended badly.
FLOW_RUN_FAILED_EVENTS = frozenset({"prefect.flow-run.Failed", "prefect.flow-run.Crashed"})
# The flows a failed or crashed run of which is an alert (tests/test_project.py checks
# that each is a flow's name).
ALERTING_FLOWS = (
    "deprecate-model",
    "reinstate-model",
    "resurrection-drill",
    "audit-preservation",
    "send-reminders",
    "reschedule-retirement",
    "cancel-deprecation",
)
# The state an audit run that could not complete ends in: of type FAILED, but not named
# Failed, so that its own could-not-audit alert is the only one it raises.
AUDIT_INCOMPLETE_STATE = "Incomplete"

SNAPSHOT_RESOURCE_PREFIX = "sunset.snapshot."
AUDIT_RESOURCE_PREFIX = "sunset.audit."
RUN_RESOURCE_PREFIX = "sunset.run."

# Flow run tags: the model a run is about, and (from its approval gate on) its Sunset run,
# so that `sunset approve` finds a waiting run through the Prefect API alone.
MODEL_TAG_PREFIX = "model:"
RUN_TAG_PREFIX = "sunset-run:"


def snapshot_resource(snapshot_id: str, model_id: str | None = None) -> dict[str, str]:
    """The resource of an event about a preserved snapshot (of a model, if named)."""
    resource = {
        "prefect.resource.id": f"{SNAPSHOT_RESOURCE_PREFIX}{snapshot_id}",
        "prefect.resource.name": snapshot_id,
    }
    return resource | ({"sunset.model-id": model_id} if model_id else {})


def audit_resource(audit_id: str) -> dict[str, str]:
    """The resource of an event about an audit run as a whole."""
    return {"prefect.resource.id": f"{AUDIT_RESOURCE_PREFIX}{audit_id}"}


def related_audit(audit_id: str) -> dict[str, str]:
    """The audit run an event about one snapshot came from."""
    return audit_resource(audit_id) | {"prefect.resource.role": "audit"}


def run_resource(run_id: str, model_id: str) -> dict[str, str]:
    """The resource of an event about a deprecation or reinstatement run."""
    return {
        "prefect.resource.id": f"{RUN_RESOURCE_PREFIX}{run_id}",
        "prefect.resource.name": run_id,
        "sunset.model-id": model_id,
    }


def related_flow_run(flow_run_id: str) -> dict[str, str]:
    """The flow run an event came from (automations read it as ``flow_run``)."""
    return {
        "prefect.resource.id": f"prefect.flow-run.{flow_run_id}",
        "prefect.resource.role": "flow-run",
    }


def flow_run_page(flow_run_id: UUID | str) -> str | None:
    """The flow run's page in the Prefect UI (the v2 UI, Prefect's default), or None when
    no Prefect server is configured."""
    api = PREFECT_API_URL.value()
    if not api:
        return None
    base = str(PREFECT_UI_URL.value() or str(api).removesuffix("/api")).rstrip("/")
    return f"{base}/v2/runs/flow-run/{flow_run_id}"
