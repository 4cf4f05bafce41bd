"""reinstate_model: plan -> re-verify the package -> restore -> check the copy
-> (approval) -> flip -> tell the deprecation's users."""

from __future__ import annotations

from dataclasses import dataclass

from prefect import flow

from flows.serving import (
    approval_gate,
    close_ledger_run,
    ends_in_named_state,
    flip_serving,
    tag_with_model,
)
from sunset.config import Settings
from sunset.preservation.restore import ReinstatementRequest
from sunset.runs.deliveries import unknown_of_run
from sunset.runs.lifecycle import run_lease
from sunset.services import connect
from tasks.notify import notify_reinstated
from tasks.reinstate import check_restored, plan, restore_weights, reverify_package


@dataclass(frozen=True)
class ReinstatementOutcome:
    """Where things ended up: what the terminal shows at the end of a reinstatement."""

    run_id: str
    model_id: str
    snapshot_id: str
    destination: str
    status: str
    rejected_by: str | None = None
    unknown_deliveries: str | None = None  # the notices of unknown fate, and what to run


@flow(
    name="reinstate-model",
    flow_run_name="reinstate-{model_id}",
    on_completion=[close_ledger_run],
    on_failure=[close_ledger_run],
)
@ends_in_named_state
def reinstate_model(
    model_id: str,
    destination: str,
    reason: str,
    snapshot_id: str | None = None,
    status: str = "active",
    approvals: int = 0,
    requested_by: str | None = None,
) -> ReinstatementOutcome:
    """Bring a retired model back from its preserved package.

    Args:
        model_id: The catalog id of the retired (or on-request) model.
        destination: Where to restore the weights: an empty local directory, or
            s3://BUCKET/PREFIX on the configured S3 endpoint.
        reason: Why the model comes back; recorded with the status transition.
        snapshot_id: The preserved snapshot to restore; default: the latest stored one.
        status: 'active' (served again) or 'on_request' (available on request).
        approvals: Distinct approvers (0, 1 or 2) who must approve before the flip.
        requested_by: Who asked for the reinstatement; recorded with the transition.
    """
    tag_with_model(model_id)
    services = connect(Settings())
    request = ReinstatementRequest(
        model_id=model_id,
        destination=destination,
        reason=reason,
        snapshot_id=snapshot_id,
        status=status,
        approvals=approvals,
    )
    start = plan(services, request, requested_by)
    run_id, checked = start.run_id, start.plan
    with run_lease(services.ledger, run_id, services.settings.run_lease_seconds):
        reverify_package(services, run_id, checked)
        restored = restore_weights(services, run_id, checked)
        check_restored(services, run_id, checked)
        if approvals:
            gate = approval_gate(services, run_id, checked.target, approvals)
            if gate.rejected_by:
                return ReinstatementOutcome(
                    run_id,
                    model_id,
                    checked.snapshot.id,
                    restored.destination,
                    str(checked.current),
                    gate.rejected_by,
                )
        flipped = flip_serving(
            services,
            run_id,
            checked.target,
            actor=requested_by or "unnamed requester",
            reason=f"reinstatement run {run_id} from snapshot {checked.snapshot.id}: {reason}",
        )
        notify_reinstated(services, run_id, checked.target, reason)
    return ReinstatementOutcome(
        run_id,
        model_id,
        checked.snapshot.id,
        restored.destination,
        str(flipped),
        unknown_deliveries=unknown_of_run(services.ledger, run_id, model_id),
    )
