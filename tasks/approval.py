"""Steps of the approval gate: show what is to be approved, record each decision."""

from __future__ import annotations

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from sunset.ledger import ServingStatus
from sunset.runs.steps import APPROVAL_STEP, DECISION_STEP
from sunset.services import Services
from sunset.serving.approvals import (
    GateState,
    PendingApproval,
    approval_summary,
    gate_state,
    record_decision,
)
from tasks.step import step


@step(APPROVAL_STEP, cache=False)
def request_approval(
    services: Services, run_id: str, target: ServingStatus, required: int
) -> PendingApproval:
    """Publish the summary an approver decides on, as a Markdown artifact of the run."""
    summary = approval_summary(services.ledger, run_id, target, required)
    create_markdown_artifact(
        key=f"approval-{run_id}",
        markdown=summary,
        description=f"What is to be approved before the model becomes {target.value}",
    )
    state = gate_state(services.ledger, run_id, target, required)
    get_run_logger().info(
        "Waiting for %d approval(s); %d recorded so far", required, len(state.approvers)
    )
    return PendingApproval(summary, state)


@step(DECISION_STEP, cache=False)
def record_approval(
    services: Services,
    run_id: str,
    target: ServingStatus,
    required: int,
    approver: str,
    decision: str,
    reason: str,
) -> GateState:
    """Record one approver's decision; a rejection ends the run with nothing changed."""
    state = record_decision(
        services.ledger,
        run_id=run_id,
        flow_run_id=flow_run.get_id(),
        target=target,
        required=required,
        approver=approver,
        decision=decision,
        reason=reason,
    )
    logger = get_run_logger()
    logger.info("%s decided: %s (%s)", approver, decision, reason)
    if state.note:
        logger.warning(state.note)
    return state
