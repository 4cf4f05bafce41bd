"""How both flows end: the approval gate, the guarded flip in one transaction, and a final
state an operator can read.

``approval_gate`` pauses the flow run with a RunInput form (approver, decision, reason)
until enough distinct approvers said yes, or one said no. ``sunset approve RUN`` and
``sunset reject RUN`` answer the same form from a terminal through
``deployments.approvals``, and read back what the decision did from the flow run input
the gate writes after recording it.
``flip_serving`` changes catalog and gateway together: if the check after the flip
fails, the Prefect transaction rolls both back.
``ends_in_named_state`` gives a run that changed nothing a completed state that says why:
Rejected, or Nothing to do; a run that left notices of unknown fate says so in its
completed state's message.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable
from typing import Any, Literal, ParamSpec, Protocol, TypeVar

from prefect import Flow, get_client
from prefect.client.schemas.objects import FlowRun
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.states import Completed, State
from prefect.transactions import transaction
from pydantic import Field

from sunset.config import Settings
from sunset.errors import NothingToDo
from sunset.ledger import ServingStatus, open_ledger
from sunset.runs.lifecycle import finish_run_of_flow_run
from sunset.services import Services
from sunset.serving.approvals import GateState, decision_outcome_key
from tasks.approval import record_approval, request_approval
from tasks.events import MODEL_TAG_PREFIX, RUN_TAG_PREFIX
from tasks.prefect_calls import current_flow_run_id
from tasks.serving import check_serving, flip_serving_status, route_gateway

# Completed states (no failure alert) of runs that changed no serving status.
REJECTED_STATE = "Rejected"
NOTHING_TO_DO_STATE = "Nothing to do"


class ApprovalInput(RunInput):
    """The form an approver fills in, in the Prefect UI or through `sunset approve`."""

    approver: str = Field(min_length=1, max_length=200, description="Your name, as recorded.")
    decision: Literal["approve", "reject"] = Field(description="approve, or reject")
    reason: str = Field(min_length=1, max_length=2000, description="Why; it is recorded.")
    identity: str | None = Field(
        default=None,
        max_length=200,
        description="Filled in by `sunset approve`: the Prefect account or login that "
        "decides. Leave it empty here.",
    )


def approval_gate(
    services: Services, run_id: str, target: ServingStatus, required: int
) -> GateState:
    """Wait until ``required`` distinct approvers approved, or one rejected."""
    _tag_flow_run(f"{RUN_TAG_PREFIX}{run_id}")
    pending = request_approval(services, run_id, target, required)
    state = pending.state
    while state.waiting:
        answer = pause_flow_run(
            wait_for_input=ApprovalInput.with_initial_data(description=pending.summary),
            timeout=services.settings.approval_timeout_s,
            poll_interval=services.settings.approval_poll_s,
        )
        state = record_approval(
            services,
            run_id,
            target,
            required,
            answer.approver,
            answer.identity,
            answer.decision,
            answer.reason,
        )
        with get_client(sync_client=True) as client:
            client.create_flow_run_input(
                current_flow_run_id(),
                decision_outcome_key(answer.metadata.key),
                json.dumps(state.as_json()),
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


class Outcome(Protocol):
    """What a flow that may be rejected returns."""

    @property
    def rejected_by(self) -> str | None: ...

    @property
    def unknown_deliveries(self) -> str | None: ...


P = ParamSpec("P")
OutcomeT = TypeVar("OutcomeT", bound=Outcome)


def ends_in_named_state(body: Callable[P, OutcomeT]) -> Callable[P, OutcomeT | State[Any]]:
    """Let a flow that changed nothing end in a completed state named for why.

    A rejected run ends ``Rejected`` (its outcome is the state's result); a start that
    found the model already where it would take it ends ``Nothing to do``. Both are
    completed states, so neither reads as a failure nor sets off the failure alert. A
    run that left notices nobody knows arrived ends ``Completed`` with a message naming
    them and the command that settles them. Put it under ``@flow``.
    """

    @functools.wraps(body)
    def ending(*args: P.args, **kwargs: P.kwargs) -> OutcomeT | State[Any]:
        try:
            outcome = body(*args, **kwargs)
        except NothingToDo as exc:
            return Completed(name=NOTHING_TO_DO_STATE, message=str(exc))
        if outcome.rejected_by is not None:
            message = f"Rejected by {outcome.rejected_by}; the serving status did not change."
            return Completed(name=REJECTED_STATE, message=message, data=outcome)
        if outcome.unknown_deliveries is not None:
            return Completed(message=outcome.unknown_deliveries, data=outcome)
        return outcome

    # Prefect resolves a flow's annotations in the module of the function it is given, this
    # one; give it the body's signature with the types resolved in the body's module.
    ending.__signature__ = inspect.signature(body, eval_str=True)  # type: ignore[attr-defined]
    return ending


def close_ledger_run(flow: Flow[..., Any], flow_run: FlowRun, state: State[Any]) -> None:
    """Flow hook: mark the ledger run of this flow run completed or failed."""
    ledger = open_ledger(Settings().ledger_url)
    error = None if state.is_completed() else (state.message or state.name)
    finish_run_of_flow_run(ledger, str(flow_run.id), error=error)
    ledger.dispose()


def tag_with_model(model_id: str) -> None:
    """Tag the running flow run with its model, whichever way it was started."""
    _tag_flow_run(f"{MODEL_TAG_PREFIX}{model_id}")


def _tag_flow_run(tag: str) -> None:
    with get_client(sync_client=True) as client:
        current = client.read_flow_run(current_flow_run_id())
        client.update_flow_run(current.id, tags=sorted({*current.tags, tag}))
