"""audit_preservation: fast-check everything, deep-check a share, repair, extend the locks."""

from __future__ import annotations

from typing import Any

from prefect import Flow, flow
from prefect.client.schemas.objects import FlowRun
from prefect.states import State

from sunset.config import Settings
from sunset.ledger import open_ledger
from sunset.preservation.audit import AuditSummary, finish_audit
from sunset.services import connect
from tasks.audit import (
    begin_audit,
    conclude_audit,
    deep_verify_share,
    extend_retention,
    fast_verify_replicas,
    repair_damage,
)


def _close_audit_run(flow: Flow[..., Any], flow_run: FlowRun, state: State[Any]) -> None:
    ledger = open_ledger(Settings().ledger_url)
    error = None if state.is_completed() else (state.message or state.name)
    finish_audit(ledger, str(flow_run.id), error=error)
    ledger.dispose()


@flow(
    name="audit-preservation",
    on_completion=[_close_audit_run],
    on_failure=[_close_audit_run],
)
def audit_preservation(
    deep_budget_bytes: int | None = None, deep_period_days: int | None = None
) -> AuditSummary:
    """Audit every preserved package on every replica, repair damage, keep the locks ahead.

    Fast checks cover every object every run; deep checks re-read a rolling share, the
    objects checked longest ago first. A damaged object is restored from a replica whose
    copy matches the manifest; where none does, the run fails and emits the Prefect event
    ``sunset.preservation.irreparable``.

    Args:
        deep_budget_bytes: Bytes this run may re-read; default SUNSET_AUDIT_DEEP_BUDGET_BYTES.
        deep_period_days: Every byte should be re-read this often; default
            SUNSET_AUDIT_DEEP_PERIOD_DAYS.

    Raises:
        PreservationError: an object has no good copy left, or its lock could not be kept.
    """
    services = connect(Settings())
    audit_id = begin_audit(services)
    fast = fast_verify_replicas(services, audit_id)
    deep = deep_verify_share(services, audit_id, deep_budget_bytes, deep_period_days)
    repairs = repair_damage(services, audit_id, fast, deep)
    retention = extend_retention(services, audit_id)
    return conclude_audit(services, audit_id, fast, deep, repairs, retention)
