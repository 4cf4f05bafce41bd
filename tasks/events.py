"""Every Prefect event Sunset emits, the resources they are about, and the tags Sunset
puts on its flow runs, named once.

The preservation audit and the approval gate emit them (tasks/audit.py,
tasks/approval.py); the operators' automations match them (deployments/ops.py).
Resource ids are ``sunset.<kind>.<id>``.
"""

from __future__ import annotations

# A fixity check failed, repaired or not: one per snapshot and audit run.
FIXITY_FAILED_EVENT = "sunset.fixity.failed"
# An object of the snapshot has no good copy left on any replica.
IRREPARABLE_EVENT = "sunset.preservation.irreparable"
# Deep checks did not re-read every object within the period.
DEEP_AUDIT_BEHIND_EVENT = "sunset.preservation.deep-audit-behind"
# A run paused until enough people approve the change of a model's serving status.
APPROVAL_REQUESTED_EVENT = "sunset.approval.requested"
# Prefect's own events for a flow run that ended badly.
FLOW_RUN_FAILED_EVENTS = frozenset({"prefect.flow-run.Failed", "prefect.flow-run.Crashed"})

SNAPSHOT_RESOURCE_PREFIX = "sunset.snapshot."
AUDIT_RESOURCE_PREFIX = "sunset.audit."
RUN_RESOURCE_PREFIX = "sunset.run."

# Flow run tags: the model a run is about, and (from its approval gate on) its Sunset run,
# so that `sunset approve` finds a waiting run through the Prefect API alone.
MODEL_TAG_PREFIX = "model:"
RUN_TAG_PREFIX = "sunset-run:"


def snapshot_resource(snapshot_id: str) -> dict[str, str]:
    """The resource of an event about a preserved snapshot."""
    return {
        "prefect.resource.id": f"{SNAPSHOT_RESOURCE_PREFIX}{snapshot_id}",
        "prefect.resource.name": snapshot_id,
    }


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
