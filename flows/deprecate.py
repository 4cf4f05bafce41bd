"""deprecate_model: preflight -> notify -> snapshot -> verify -> interview -> report
-> (approval) -> flip; with ``retire``: preflight -> snapshot -> ... -> flip -> notify ->
the final report version (the one that lists the retirement's notices too).

Users are told only what is true when they read it: a deprecation announces the
retirement, with preservation and the interview still ahead; a retirement tells nothing
until its flip held (so a rejection or a failed step has told nobody anything new), then
that the model is retired.

With ``fingerprint``, a model that runs here is also fingerprinted after verification and
drilled (restored, loaded from the package alone, its fingerprint replayed) before the report.
"""

from __future__ import annotations

from dataclasses import dataclass

from prefect import flow
from prefect.runtime import flow_run

from flows.limits import one_deprecation_per_model
from flows.serving import (
    approval_gate,
    close_ledger_run,
    ends_in_named_state,
    flip_serving,
    tag_with_model,
)
from sunset.config import Settings
from sunset.runs.deliveries import unknown_of_run
from sunset.runs.lifecycle import run_lease
from sunset.runs.request import DeprecationRequest, run_name
from sunset.runs.validation import target_status
from sunset.services import connect
from tasks.drill import drill_package
from tasks.fingerprint import record_fingerprint
from tasks.interview import run_interviews
from tasks.notify import notify_retired, notify_users
from tasks.preflight import preflight
from tasks.report import assemble_report, seal_final_report
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
    unknown_deliveries: str | None = None  # the notices of unknown fate, and what to run
    # Locked versions the package does not use (a killed snapshot's), one line each.
    leftovers: tuple[str, ...] = ()


def _run_name() -> str:
    # The request arrives as a DeprecationRequest in process, as its JSON from a deployment.
    return run_name(DeprecationRequest.model_validate(flow_run.parameters["request"]))


@flow(
    name="deprecate-model",
    flow_run_name=_run_name,
    on_completion=[close_ledger_run],
    on_failure=[close_ledger_run],
)
@ends_in_named_state
def deprecate_model(
    request: DeprecationRequest, requested_by: str | None = None
) -> DeprecationOutcome:
    """Deprecate a model: tell its users, preserve and verify its weights, interview it,
    seal the report, and only then change its serving status.

    One run per model at a time: a run started while another run of the same model is
    in progress waits for it to end, then starts (or resumes) from preflight.

    Args:
        request: What to deprecate, and how: the fields of ``DeprecationRequest``, each
            with its description (the deployment's form shows them).
        requested_by: Who asked for the run; recorded with the status transition.
    """
    # The request's model id was checked before it names anything (a tag, a concurrency
    # limit, a ledger row): a DeprecationRequest refuses an unsafe one.
    model_id = request.model_id
    tag_with_model(model_id)
    services = connect(Settings())
    lease_seconds = services.settings.run_lease_seconds
    with one_deprecation_per_model(model_id, services.ledger, lease_seconds) as slot_lease:
        start = preflight(services, request, requested_by, slot_lease)
        run_id, validated = start.run_id, start.validated
        target = target_status(request)
        with run_lease(services.ledger, run_id, lease_seconds):
            if not request.retire:
                notify_users(services, run_id, validated)
            snapshot = snapshot_weights(services, run_id, validated)
            verify_preservation(services, run_id, snapshot, request.all_digests)
            if request.fingerprint:
                record_fingerprint(services, run_id, validated, snapshot)
            run_interviews(services, run_id, validated)
            if request.fingerprint:
                drill_package(services, model_id, snapshot.snapshot_id, run_id)
            report = assemble_report(services, run_id, validated)
            if request.retire and request.approvals:
                gate = approval_gate(services, run_id, target, request.approvals)
                if gate.rejected_by:
                    unchanged = str(validated.model.serving_status)
                    return DeprecationOutcome(
                        run_id,
                        model_id,
                        report.package,
                        report.local_path,
                        unchanged,
                        gate.rejected_by,
                        leftovers=snapshot.leftovers,
                    )
            status = flip_serving(
                services,
                run_id,
                target,
                actor=requested_by or "unnamed requester",
                reason=validated.flip_reason(run_id),
            )
            if request.retire:
                notify_retired(services, run_id, validated, requested_by)
                report = seal_final_report(services, run_id, validated)
    return DeprecationOutcome(
        run_id,
        model_id,
        report.package,
        report.local_path,
        str(status),
        unknown_deliveries=unknown_of_run(services.ledger, run_id, model_id),
        leftovers=snapshot.leftovers,
    )
