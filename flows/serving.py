"""How both flows end: the approval gate, then the guarded flip in one transaction.

``approval_gate`` pauses the flow run with a RunInput form (approver, decision, reason)
until enough distinct approvers said yes, or one said no. ``sunset approve RUN`` and
``sunset reject RUN`` answer the same form from a terminal through
``deployments.ops.submit_decision``.
``flip_serving`` changes catalog and gateway together: if the check after the flip
fails, the Prefect transaction rolls both back.
"""

from __future__ import annotations

from typing import Any, Literal

from prefect import Flow, get_client
from prefect.client.schemas.objects import FlowRun
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.states import State
from prefect.transactions import transaction
from pydantic import Field

from sunset.config import Settings
from sunset.ledger import ServingStatus, open_ledger
from sunset.runs.lifecycle import finish_run_of_flow_run
from sunset.services import Services
from sunset.serving.approvals import GateState
from tasks.approval import record_approval, request_approval
from tasks.prefect_calls import current_flow_run_id
from tasks.serving import check_serving, flip_serving_status, route_gateway


class ApprovalInput(RunInput):
    """The form an approver fills in, in the Prefect UI or through `sunset approve`."""

    approver: str = Field(min_length=1, max_length=200, description="Your name, as recorded.")
    decision: Literal["approve", "reject"] = Field(description="approve, or reject")
    reason: str = Field(min_length=1, max_length=2000, description="Why; it is recorded.")


def approval_gate(
    services: Services, run_id: str, target: ServingStatus, required: int
) -> GateState:
    """Wait until ``required`` distinct approvers approved, or one rejected."""
    pending = request_approval(services, run_id, target, required)
    state = pending.state
    while state.waiting:
        answer = pause_flow_run(
            wait_for_input=ApprovalInput.with_initial_data(description=pending.summary),
            timeout=services.settings.approval_timeout_s,
            poll_interval=services.settings.approval_poll_s,
        )
        state = record_approval(
            services, run_id, target, required, answer.approver, answer.decision, answer.reason
        )
    return state


def flip_serving(
    services: Services, run_id: str, target: ServingStatus, actor: str, reason: str
) -> ServingStatus:
    """Flip catalog and gateway, then check both; a failed check rolls both back."""
    with transaction():
        flip = flip_serving_status(services, run_id, target, actor, reason)
        route_gateway(services, run_id, flip)
        check_serving(services, run_id, flip)
    return flip.to_status


def close_ledger_run(flow: Flow[..., Any], flow_run: FlowRun, state: State[Any]) -> None:
    """Flow hook: mark the ledger run of this flow run completed or failed."""
    ledger = open_ledger(Settings().ledger_url)
    error = None if state.is_completed() else (state.message or state.name)
    finish_run_of_flow_run(ledger, str(flow_run.id), error=error)
    ledger.dispose()


def tag_with_model(model_id: str) -> None:
    """Tag the running flow run with its model, whichever way it was started."""
    with get_client(sync_client=True) as client:
        current = client.read_flow_run(current_flow_run_id())
        client.update_flow_run(current.id, tags=sorted({*current.tags, f"model:{model_id}"}))
