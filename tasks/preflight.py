"""Preflight: every input checked, and the run begun or resumed, before anything changes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from prefect import get_run_logger
from prefect.runtime import flow_run

from sunset.readiness import prove_services
from sunset.runs.continuation import check_same_bytes, package_to_compare
from sunset.runs.lifecycle import begin_deprecation
from sunset.runs.request import DeprecationRequest
from sunset.runs.steps import PREFLIGHT_STEP
from sunset.runs.validation import ValidatedRequest, validate_request
from sunset.services import Services
from tasks.progress import progress_artifact
from tasks.step import step


@dataclass(frozen=True)
class Preflight:
    run_id: str
    validated: ValidatedRequest
    summary: dict[str, Any]  # what the ledger records of this attempt


# Never cached nor retried: it decides, each time, whether the run may start or resume.
@step(PREFLIGHT_STEP, opens_run=True, retries=0, cache=False)
def preflight(
    services: Services,
    request: DeprecationRequest,
    requested_by: str | None,
    orchestrator_lease_id: str | None = None,
) -> Preflight:
    """Validate the request whole, prove every service the run will use, then start or
    resume the model's deprecation run.

    ``orchestrator_lease_id``: this flow run's lease on the model's deprecation slot,
    recorded with the run so that a resumed run can free it if this process dies.

    Bad input (including a bucket without Object Lock, on any replica, and weights that are
    not the bytes of the deprecation's package) and a service that refuses a setting (a
    wrong API key, a model id the Messages API does not serve, a refused SMTP login) fail
    here with one sentence naming what to fix, and leave the ledger, the buckets, every
    mailbox and the serving status untouched. A service that does not answer is asked
    again, like any step's retries (``sunset.readiness``); preflight itself is not retried.
    """
    settings = services.settings
    validated = validate_request(
        services.ledger, request, settings, weights=services.weights, today=date.today()
    )
    proven = prove_services(services, validated.model.id, on_retry=get_run_logger().warning)
    package = package_to_compare(services.ledger, request)
    if package is not None:  # a later run of the deprecation: its weights must be the package's
        with progress_artifact("Bytes of weights compared with the package") as progress:
            check_same_bytes(
                services.ledger,
                package,
                request,
                validated.sources,
                services.weights,
                progress=progress,
            )
    run = begin_deprecation(
        services.ledger,
        validated,
        flow_run_id=flow_run.get_id(),
        lease_seconds=settings.run_lease_seconds,
        requested_by=requested_by,
        orchestrator_lease_id=orchestrator_lease_id,
    )
    return Preflight(
        run.id,
        validated,
        summary={
            "model": validated.model.id,
            "files": len(validated.sources),
            "recipients": len(validated.recipients),
            "protocol_sha256": validated.protocol.sha256,
            "retirement_on": validated.retirement_on.isoformat(),
            "notice_days": validated.terms.notice_days,
            "minimum_notice_days": validated.terms.minimum_notice_days,
            "notice_override_reason": validated.terms.override_reason,
            "weights_same_as_package": package.id if package else None,
            "services_proven": proven,
        },
    )
