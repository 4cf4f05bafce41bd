"""deprecate_model: preflight -> notify -> snapshot -> verify -> interview -> report
-> (approval) -> flip.

With ``fingerprint``, a model that runs here is also fingerprinted after verification and
drilled (restored, loaded from the package alone, its fingerprint replayed) before the report.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from prefect import flow

from flows.limits import one_deprecation_per_model
from flows.serving import approval_gate, close_ledger_run, flip_serving, tag_with_model
from sunset.config import Settings
from sunset.runs.lifecycle import run_lease
from sunset.runs.request import DeprecationRequest, check_model_id, target_status
from sunset.services import connect
from tasks.drill import drill_package
from tasks.fingerprint import record_fingerprint
from tasks.interview import run_interviews
from tasks.notify import notify_users
from tasks.preflight import preflight
from tasks.report import assemble_report
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
    rejected_by: str | None = None


@flow(
    name="deprecate-model",
    flow_run_name="deprecate-{model_id}",
    on_completion=[close_ledger_run],
    on_failure=[close_ledger_run],
)
def deprecate_model(
    model_id: str,
    weights: str,
    recipients: str | None = None,
    retire: bool = False,
    retirement_date: date | None = None,
    protocol: str | None = None,
    sessions: int = 1,
    notice_override_reason: str | None = None,
    deployment_summary: str | None = None,
    operator_analysis: str | None = None,
    recipients_from_ledger: bool = False,
    approvals: int = 0,
    requested_by: str | None = None,
    fingerprint: bool = False,
) -> DeprecationOutcome:
    """Deprecate a model: tell its users, preserve and verify its weights, interview it,
    seal the report, and only then change its serving status.

    One run per model at a time: a run started while another run of the same model is
    in progress waits for it to end, then starts (or resumes) from preflight.

    Args:
        model_id: The catalog id of the model to deprecate.
        weights: Directory holding the model's files as they are served.
        recipients: CSV of the users to notify (columns email, name[, webhook_url, usage]).
        retire: Retire the model at the end instead of marking it deprecated.
        retirement_date: Announced retirement date; default: the minimum notice from today.
        protocol: Interview protocol YAML; default: Sunset's standard protocol.
        sessions: How many interview sessions to run.
        notice_override_reason: Why a shorter notice than the minimum is acceptable.
        deployment_summary: Markdown file: usage, notable uses, incidents (for the report).
        operator_analysis: Markdown file: the operators' interpretation (for the report).
        recipients_from_ledger: Notify the model's users imported into the ledger instead
            of a CSV.
        approvals: Distinct approvers (0, 1 or 2) who must approve in the paused run's
            form before the model is retired.
        requested_by: Who asked for the run; recorded with the status transition.
        fingerprint: Run the model from its weights directory (one GGUF file) to seal a
            fingerprint in the package, and prove before the flip that the package alone
            reproduces it (a resurrection drill). Needs the local-model extra.
    """
    # Before the id names anything (a tag, a concurrency limit, a ledger row).
    check_model_id(model_id)
    tag_with_model(model_id)
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
        recipients_from_ledger=recipients_from_ledger,
        approvals=approvals,
        fingerprint=fingerprint,
    )
    lease_seconds = services.settings.run_lease_seconds
    with one_deprecation_per_model(model_id, services.ledger, lease_seconds) as slot_lease:
        start = preflight(services, request, requested_by, slot_lease)
        run_id, validated = start.run_id, start.validated
        target = target_status(request)
        with run_lease(services.ledger, run_id, lease_seconds):
            notify_users(services, run_id, validated)
            snapshot = snapshot_weights(services, run_id, validated)
            verify_preservation(services, run_id, snapshot)
            if fingerprint:
                record_fingerprint(services, run_id, validated, snapshot)
            run_interviews(services, run_id, validated)
            if fingerprint:
                drill_package(services, model_id, snapshot.snapshot_id, run_id)
            report = assemble_report(services, run_id, validated)
            if retire and approvals:
                gate = approval_gate(services, run_id, target, approvals)
                if gate.rejected_by:
                    unchanged = str(validated.model.serving_status)
                    return DeprecationOutcome(
                        run_id,
                        model_id,
                        report.package,
                        report.local_path,
                        unchanged,
                        gate.rejected_by,
                    )
            status = flip_serving(
                services,
                run_id,
                target,
                actor=requested_by or "unnamed requester",
                reason=validated.flip_reason(run_id),
            )
    return DeprecationOutcome(run_id, model_id, report.package, report.local_path, str(status))
