"""deprecate_model: preflight -> notify -> snapshot -> verify -> interview -> report -> flip.

With ``fingerprint``, a model that runs here is also fingerprinted after verification and
drilled (restored, loaded from the package alone, its fingerprint replayed) before the report.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from prefect import Flow, flow, get_client
from prefect.client.schemas.objects import FlowRun
from prefect.runtime import flow_run
from prefect.states import State
from sqlmodel import select

from sunset.config import Settings
from sunset.ledger import DeprecationRun
from sunset.runs import DeprecationRequest, finish_run, run_lease
from sunset.services import connect
from tasks.drill import drill_package
from tasks.fingerprint import record_fingerprint
from tasks.interview import run_interviews
from tasks.notify import notify_users
from tasks.preflight import preflight
from tasks.report import assemble_report
from tasks.serving import flip_serving_status
from tasks.snapshot import snapshot_weights
from tasks.verify import verify_preservation


@dataclass(frozen=True)
class DeprecationOutcome:
    """Where things ended up: what the terminal shows at the end of a run."""

    run_id: str
    model_id: str
    package: str
    report: str
    status: str


def _close_ledger_run(flow: Flow[..., Any], run: FlowRun, state: State[Any]) -> None:
    settings = Settings()
    services = connect(settings)
    with services.ledger.session() as db:
        ledger_run = db.exec(
            select(DeprecationRun).where(DeprecationRun.flow_run_id == str(run.id))
        ).first()
    if ledger_run is not None:
        error = None if state.is_completed() else (state.message or state.name)
        finish_run(services.ledger, ledger_run.id, error=error)
    services.ledger.dispose()


def _tag_with_model(model_id: str) -> None:
    # Tags on the flow run itself, whichever way it was started (CLI, deployment, UI).
    with get_client(sync_client=True) as client:
        current = client.read_flow_run(flow_run.get_id())
        client.update_flow_run(current.id, tags=sorted({*current.tags, f"model:{model_id}"}))


@flow(
    name="deprecate-model",
    flow_run_name="deprecate-{model_id}",
    on_completion=[_close_ledger_run],
    on_failure=[_close_ledger_run],
)
def deprecate_model(
    model_id: str,
    weights: str,
    recipients: str,
    retire: bool = False,
    retirement_date: date | None = None,
    protocol: str | None = None,
    sessions: int = 1,
    notice_override_reason: str | None = None,
    deployment_summary: str | None = None,
    operator_analysis: str | None = None,
    fingerprint: bool = False,
) -> DeprecationOutcome:
    """Deprecate a model: tell its users, preserve and verify its weights, interview it,
    seal the report, and only then change its serving status.

    Args:
        model_id: The catalog id of the model to deprecate.
        weights: Directory holding the model's files as they are served.
        recipients: CSV of the users to notify (columns email, name).
        retire: Retire the model at the end instead of marking it deprecated.
        retirement_date: Announced retirement date; default: the minimum notice from today.
        protocol: Interview protocol YAML; default: Sunset's standard protocol.
        sessions: How many interview sessions to run.
        notice_override_reason: Why a shorter notice than the minimum is acceptable.
        deployment_summary: Markdown file: usage, notable uses, incidents (for the report).
        operator_analysis: Markdown file: the operators' interpretation (for the report).
        fingerprint: Run the model from its weights directory (one GGUF file) to seal a
            fingerprint in the package, and prove before the flip that the package alone
            reproduces it (a resurrection drill). Needs the local-model extra.
    """
    _tag_with_model(model_id)
    services = connect(Settings())
    request = DeprecationRequest(
        model_id=model_id,
        weights=weights,
        recipients=recipients,
        retire=retire,
        retirement_date=retirement_date,
        protocol=protocol,
        sessions=sessions,
        notice_override_reason=notice_override_reason,
        deployment_summary=deployment_summary,
        operator_analysis=operator_analysis,
        fingerprint=fingerprint,
    )
    start = preflight(services, request)
    run_id, validated = start.run_id, start.validated
    with run_lease(services.ledger, run_id, services.settings.run_lease_seconds):
        notify_users(services, run_id, validated)
        snapshot = snapshot_weights(services, run_id, validated)
        verify_preservation(services, run_id, snapshot)
        if fingerprint:
            record_fingerprint(services, run_id, validated, snapshot)
        run_interviews(services, run_id, validated)
        if fingerprint:
            drill_package(services, model_id, snapshot.snapshot_id, run_id)
        report = assemble_report(services, run_id, validated)
        status = flip_serving_status(services, run_id, validated)
    return DeprecationOutcome(run_id, model_id, report.package, report.local_path, status)
