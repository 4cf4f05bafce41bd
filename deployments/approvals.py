"""Answering a paused run's approval form from a terminal, through the Prefect API alone.

``sunset approve`` and ``sunset reject`` find the waiting flow run by the id they are
given: the Prefect flow run id (what ``sunset deprecate --via-deployment`` prints) or the
Sunset run id (``sunset runs``), whole or its first 8 or more characters; the approval
gate tags its flow run with the Sunset run id for this. They answer the form with who is
deciding (``decider_identity``), then read back what the decision did, which the gate
writes as a flow run input once it has recorded it. No ledger is opened: ``PREFECT_API_URL``
is all they need.
"""

from __future__ import annotations

import getpass
import json
import time
from dataclasses import dataclass
from uuid import UUID

import httpx
from prefect import get_client
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
from prefect.flow_runs import resume_flow_run
from prefect.input.run_input import keyset_from_paused_state
from prefect.settings import PREFECT_API_KEY, PREFECT_API_URL, PREFECT_CLOUD_API_URL

from deployments.ops import require_server
from sunset.errors import InputError
from sunset.runs.history import SHORTEST_RUN_PREFIX
from sunset.serving.approvals import APPROVE, REJECT, GateState, decision_outcome_key
from tasks.events import MODEL_TAG_PREFIX, RUN_TAG_PREFIX


@dataclass(frozen=True)
class WaitingRun:
    """A flow run paused at its approval gate, as the Prefect API shows it."""

    flow_run_id: UUID
    name: str
    run_id: str | None  # the Sunset run id, from the gate's tag
    model_id: str | None  # from the flow run's model tag


def find_waiting_run(given: str) -> WaitingRun:
    """The one paused flow run whose Prefect id or Sunset run id starts with ``given``.

    Raises:
        InputError: the id is too short, matches several waiting runs, names a run that
            is not waiting (saying what it is), or matches none; or no server answers.
    """
    server = require_server()
    needle = given.strip().lower()
    if len(needle) < SHORTEST_RUN_PREFIX:
        raise InputError(
            f"Run id {given!r} is too short; give at least its first "
            f"{SHORTEST_RUN_PREFIX} characters."
        )
    with get_client(sync_client=True) as client:
        try:
            paused = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))
                )
            )
        except httpx.TransportError as exc:
            raise InputError(
                f"No Prefect server answers at {server} ({exc}): set PREFECT_API_URL to the "
                "server the run is on, or start it, and run again."
            ) from None
        found = [run for run in paused if any(i.startswith(needle) for i in _ids(run))]
        if len(found) == 1:
            return _waiting_run(found[0])
        if found:
            raise InputError(
                f"{len(found)} waiting runs have ids that start with {given!r}; give more "
                "of the id."
            )
        ended = _run_with_whole_id(client, needle)
    if ended is not None:
        state = ended.state.name if ended.state else "without a state"
        raise InputError(
            f"Run {given} ({ended.name}) is not waiting for an approval (it is {state}); "
            "nothing was recorded."
        )
    raise InputError(
        f"No run waiting for an approval on the Prefect server at {server} has an id that "
        f"starts with {given!r}; give the flow run id that `sunset deprecate "
        "--via-deployment` printed, or the Sunset run id (`sunset runs`)."
    )


def _ids(run: FlowRun) -> list[str]:
    """The flow run's Prefect id and, from its tag, its Sunset run id."""
    return [i for i in (str(run.id), _tagged(run, RUN_TAG_PREFIX)) if i]


def _tagged(run: FlowRun, prefix: str) -> str | None:
    return next((t.removeprefix(prefix) for t in run.tags if t.startswith(prefix)), None)


def _waiting_run(run: FlowRun) -> WaitingRun:
    return WaitingRun(
        run.id, run.name, _tagged(run, RUN_TAG_PREFIX), _tagged(run, MODEL_TAG_PREFIX)
    )


def _run_with_whole_id(client: SyncPrefectClient, whole: str) -> FlowRun | None:
    """The flow run of a whole Sunset run id or Prefect flow run id, whatever its state."""
    tagged = client.read_flow_runs(
        flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[f"{RUN_TAG_PREFIX}{whole}"]))
    )
    if tagged:
        return tagged[0]
    try:
        return client.read_flow_run(UUID(whole))
    except (ValueError, ObjectNotFound):  # not a UUID, or no such flow run
        return None


def decider_identity() -> str:
    """Who is deciding: ``prefect:<handle>``, the Prefect Cloud user whose API key this
    process uses, or else ``login:<user>``, the login running it on this machine.

    A Prefect server of one's own has no accounts, so there it is the login.
    """
    user = _prefect_cloud_user()
    return f"prefect:{user}" if user else f"login:{getpass.getuser()}"


def _prefect_cloud_user() -> str | None:
    api_url, key = PREFECT_API_URL.value(), PREFECT_API_KEY.value()
    cloud = str(PREFECT_CLOUD_API_URL.value()).rstrip("/")
    if not (api_url and key and str(api_url).startswith(cloud)):
        return None
    response = httpx.get(f"{cloud}/me/", headers={"Authorization": f"Bearer {key}"}, timeout=30)
    if response.status_code != httpx.codes.OK:  # a service account's key names no user
        return None
    handle = response.json().get("handle")
    return str(handle) if handle else None


def submit_decision(
    flow_run_id: UUID, *, approver: str, identity: str | None, decision: str, reason: str
) -> str:
    """Answer a paused run's approval form from outside the flow.

    Returns:
        The flow run input key under which the gate writes what the decision did.

    Raises:
        InputError: the flow run is not waiting for a decision, or the answer is invalid.
    """
    if decision not in (APPROVE, REJECT):
        raise InputError(f"A decision is {APPROVE!r} or {REJECT!r}, not {decision!r}.")
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(flow_run_id).state
    if state is None or not state.is_paused():
        raise InputError(
            f"Flow run {flow_run_id} is not waiting for an approval (it is "
            f"{state.name if state else 'unknown'}); nothing was recorded."
        )
    answer = {"approver": approver, "identity": identity, "decision": decision, "reason": reason}
    try:
        resume_flow_run(flow_run_id, run_input=answer)
    except RuntimeError as exc:  # the server validates the answer against the form
        raise InputError(f"The decision was not accepted: {exc}.") from None
    return decision_outcome_key(keyset_from_paused_state(state)["response"])


def await_outcome(
    flow_run_id: UUID, outcome_key: str, *, timeout: float = 60.0, poll_seconds: float = 1.0
) -> GateState | None:
    """What the decision did, once the run has recorded it; None if it has not within
    ``timeout`` seconds (the run reads answers every SUNSET_APPROVAL_POLL_S seconds)."""
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            try:
                value = client.read_flow_run_input(flow_run_id, outcome_key)
            except PrefectHTTPStatusError as exc:
                if exc.response.status_code != httpx.codes.NOT_FOUND:
                    raise
            else:
                return GateState.from_json(json.loads(value))
            if time.monotonic() > deadline:
                return None
            time.sleep(poll_seconds)
