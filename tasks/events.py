"""Every Prefect event Sunset emits, and the resources they are about, named once.

The preservation audit emits them (tasks/audit.py); the operators' automations match
them (deployments/ops.py). Resource ids are ``sunset.<kind>.<id>``.
"""

from __future__ import annotations

# A fixity check failed, repaired or not: one per snapshot and audit run.
FIXITY_FAILED_EVENT = "sunset.fixity.failed"
# An object of the snapshot has no good copy left on any replica.
IRREPARABLE_EVENT = "sunset.preservation.irreparable"
# Deep checks did not re-read every object within the period.
DEEP_AUDIT_BEHIND_EVENT = "sunset.preservation.deep-audit-behind"
# Prefect's own events for a flow run that ended badly.
FLOW_RUN_FAILED_EVENTS = frozenset({"prefect.flow-run.Failed", "prefect.flow-run.Crashed"})

SNAPSHOT_RESOURCE_PREFIX = "sunset.snapshot."
AUDIT_RESOURCE_PREFIX = "sunset.audit."


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
