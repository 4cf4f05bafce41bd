"""Steps of the approval gate: tell who must decide what is to be approved, record each
decision."""

from __future__ import annotations

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.events import emit_event
from prefect.utilities.urls import url_for

from sunset.ledger import ServingStatus
from sunset.runs.steps import APPROVAL_STEP, DECISION_STEP
from sunset.services import Services
from sunset.serving.approvals import GateState, PendingApproval, pending_approval, record_decision
from tasks.events import APPROVAL_REQUESTED_EVENT, related_flow_run, run_resource
from tasks.prefect_calls import current_flow_run_id
from tasks.step import step


@step(APPROVAL_STEP, cache=False)
def request_approval(
    services: Services, run_id: str, target: ServingStatus, required: int
) -> PendingApproval:
    """Publish the summary an approver decides on, as a Markdown artifact of the run, and
    emit ``sunset.approval.requested`` so that the approvers are told (an automation of
    `sunset ops setup` posts it to the alert webhook)."""
    pending = pending_approval(services.ledger, run_id, target, required)
    create_markdown_artifact(
        key=f"approval-{run_id}",
        markdown=pending.summary,
        description=f"What is to be approved before the model becomes {target.value}",
    )
    flow_run_id = str(current_flow_run_id())
    emit_event(
        event=APPROVAL_REQUESTED_EVENT,
        resource=run_resource(run_id, pending.model_id),
        related=[related_flow_run(flow_run_id)],
        payload={
            "model_id": pending.model_id,
            "run_id": run_id,
            "flow_run_id": flow_run_id,
            "target_status": target.value,
            "required": required,
            "approvers": pending.state.approvers,
            "summary": pending.summary,
            # Known where PREFECT_UI_URL is (Prefect derives it from PREFECT_API_URL).
            "url": url_for("flow-run", obj_id=flow_run_id),
        },
    )
    get_run_logger().info(
        "Waiting for %d approval(s); %d recorded so far", required, len(pending.state.approvers)
    )
    return pending


@step(DECISION_STEP, cache=False)
def record_approval(
    services: Services,
    run_id: str,
    target: ServingStatus,
    required: int,
    approver: str,
    identity: str | None,
    decision: str,
    reason: str,
) -> GateState:
    """Record one approver's decision; a rejection ends the run with nothing changed."""
    state = record_decision(
        services.ledger,
        run_id=run_id,
        flow_run_id=str(current_flow_run_id()),
        target=target,
        required=required,
        approver=approver,
        identity=identity,
        decision=decision,
        reason=reason,
    )
    logger = get_run_logger()
    logger.info("%s (%s) decided: %s (%s)", approver, identity or "Prefect UI", decision, reason)
    if state.note:
        logger.warning(state.note)
    return state
