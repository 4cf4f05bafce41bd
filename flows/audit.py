"""audit_preservation: fast-check everything, deep-check a share, repair, extend the locks,
conclude."""

from __future__ import annotations

from typing import Any

from prefect import Flow, flow
from prefect.client.schemas.objects import FlowRun
from prefect.states import Failed, State

from sunset.config import Settings
from sunset.ledger import AuditState, open_ledger, utcnow
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
from tasks.events import AUDIT_INCOMPLETE_STATE


def audit_run_name() -> str:
    """audit-<date>: the day's audit, as alerts and `sunset audit` name it."""
    return f"audit-{utcnow():%Y-%m-%d}"


def _close_audit_run(flow: Flow[..., Any], flow_run: FlowRun, state: State[Any]) -> None:
    ledger = open_ledger(Settings().ledger_url)
    error = None if state.is_completed() else (state.message or state.name)
    finish_audit(ledger, str(flow_run.id), error=error)
    ledger.dispose()


@flow(
    name="audit-preservation",
    flow_run_name=audit_run_name,
    on_completion=[_close_audit_run],
    on_failure=[_close_audit_run],
    on_crashed=[_close_audit_run],
)
def audit_preservation(
    deep_budget_bytes: int | None = None,
    deep_period_days: int | None = None,
    all_digests: bool = False,
) -> AuditSummary | State[Any]:
    """Audit every preserved package on every replica, repair damage, keep the locks ahead.

    Fast checks cover every object every run; deep checks re-read a rolling share, objects
    with open findings first, then those checked longest ago. An object proven damaged is
    restored from a copy proven good in the same run. A replica that does not answer is
    asked again with growing waits, then set aside: the run ends in the state
    ``Incomplete`` (and emits ``sunset.preservation.audit-incomplete``) without calling
    anything on it damaged or repairing from or to it.

    Args:
        deep_budget_bytes: Bytes this run may re-read; default SUNSET_AUDIT_DEEP_BUDGET_BYTES.
        deep_period_days: Every byte should be re-read this often; default
            SUNSET_AUDIT_DEEP_PERIOD_DAYS.
        all_digests: Deep checks re-hash every byte with SHA-512 as well as SHA-256 and
            CRC64NVME.

    Raises:
        PreservationError: an object has no good copy left.
    """
    services = connect(Settings())
    audit_id = begin_audit(services)
    fast = fast_verify_replicas(services, audit_id)
    deep = deep_verify_share(
        services, audit_id, fast, deep_budget_bytes, deep_period_days, all_digests
    )
    repairs = repair_damage(services, audit_id, fast, deep)
    retention = extend_retention(services, audit_id, repairs)
    summary = conclude_audit(services, audit_id, fast, deep, repairs, retention, deep_period_days)
    return ending(summary)


def ending(summary: AuditSummary) -> AuditSummary | State[Any]:
    """The summary of a run that did everything; the Incomplete state of one that could
    not (of type FAILED, not named Failed: its own alert is the one it raises)."""
    if summary.state == AuditState.INCOMPLETE:
        return Failed(name=AUDIT_INCOMPLETE_STATE, message=summary.error)
    return summary
