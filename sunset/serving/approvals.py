"""The approval gate: one or two distinct people say yes before a serving status changes.

Decisions are ledger rows, counted per run and target status, so a run resumed after a
crash keeps the approvals it already had. One person counts once: an approval whose
recorded identity (the Prefect account or login that ran ``sunset approve``) or typed
name matches an earlier counted approval is recorded but not counted. One rejection ends
the run: it is marked rejected and nothing about the model's serving changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlmodel import select

from sunset.ledger import (
    Approval,
    CatalogModel,
    DeliverySummary,
    DeprecationRun,
    Ledger,
    Report,
    Restoration,
    RunState,
    ServingStatus,
    utcnow,
)
from sunset.preservation.standing import is_verified, latest_snapshot

APPROVE, REJECT = "approve", "reject"


@dataclass(frozen=True)
class GateState:
    """Where a run's approval gate stands."""

    required: int
    approvers: list[str]
    rejected_by: str | None = None
    note: str | None = None  # e.g. why the latest decision did not count

    @property
    def approved(self) -> bool:
        return self.rejected_by is None and len(self.approvers) >= self.required

    @property
    def waiting(self) -> bool:
        return self.rejected_by is None and not self.approved

    def outcome(self) -> str:
        """What the person who just decided is told about the run."""
        if self.rejected_by is not None:
            return "the run ends as Rejected; the model's serving status stays as it is."
        counted = f"{len(self.approvers)} of {self.required} approvals"
        if self.approved:
            return f"that makes {counted}: the run continues."
        missing = self.required - len(self.approvers)
        note = f"{self.note} " if self.note else ""
        return f"{note}{counted} so far; the run waits for {missing} more, from a different person."

    def as_json(self) -> dict[str, Any]:
        """The gate state as JSON, for whoever decided from outside the flow."""
        return {
            "required": self.required,
            "approvers": self.approvers,
            "rejected_by": self.rejected_by,
            "note": self.note,
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> GateState:
        """The gate state that ``as_json`` gave."""
        return cls(value["required"], value["approvers"], value["rejected_by"], value["note"])


@dataclass(frozen=True)
class PendingApproval:
    """What the flow shows while it waits: the summary, and the decisions so far."""

    model_id: str
    summary: str
    state: GateState


def decision_outcome_key(response_key: str) -> str:
    """Where the flow writes the gate state after recording the answer stored at
    ``response_key`` (a flow run input key), for the one who gave it to read."""
    return f"{response_key}-outcome"


def gate_state(ledger: Ledger, run_id: str, target: ServingStatus, required: int) -> GateState:
    """The decisions recorded so far for the run's move to ``target``."""
    decisions = _decisions(ledger, run_id, target)
    rejected = next((d for d in decisions if d.decision == REJECT), None)
    approvers = [d.approver for d in decisions if d.decision == APPROVE and d.counted]
    return GateState(required, approvers, rejected.approver if rejected else None)


def _decisions(ledger: Ledger, run_id: str, target: ServingStatus) -> list[Approval]:
    with ledger.session() as db:
        return list(
            db.exec(
                select(Approval)
                .where(Approval.run_id == run_id, Approval.target_status == target)
                .order_by(Approval.id)  # type: ignore[arg-type]
            )
        )


def record_decision(
    ledger: Ledger,
    *,
    run_id: str,
    flow_run_id: str | None,
    target: ServingStatus,
    required: int,
    approver: str,
    identity: str | None,
    decision: str,
    reason: str,
) -> GateState:
    """Record one decision; a rejection marks the run rejected in the same transaction.

    ``identity`` is who ran the command (None for an answer in the Prefect UI's form). A
    second approval by someone who already approved, known by the same identity or the
    same name, is recorded but not counted.
    """
    approver = approver.strip()
    counted_before = [
        d for d in _decisions(ledger, run_id, target) if d.decision == APPROVE and d.counted
    ]
    earlier = next(
        (
            d
            for d in counted_before
            if (identity is not None and d.approver_identity == identity)
            or d.approver.casefold() == approver.casefold()
        ),
        None,
    )
    counted = decision == REJECT or earlier is None
    with ledger.session() as db:
        db.add(
            Approval(
                run_id=run_id,
                flow_run_id=flow_run_id,
                target_status=target,
                approver=approver,
                approver_identity=identity,
                decision=decision,
                reason=reason,
                counted=counted,
            )
        )
        if decision == REJECT:
            run = db.get(DeprecationRun, run_id)
            assert run is not None
            run.state, run.finished_at, run.lease_expires_at = RunState.REJECTED, utcnow(), None
            db.add(run)
    after = gate_state(ledger, run_id, target, required)
    if earlier is not None:
        who = f"{approver} ({identity})" if identity else approver
        note = (
            f"Not counted: {who} already approved as {earlier.approver}; a second, different "
            "approver is needed."
        )
        return GateState(after.required, after.approvers, after.rejected_by, note)
    return after


def pending_approval(
    ledger: Ledger, run_id: str, target: ServingStatus, required: int
) -> PendingApproval:
    """What approvers decide on: the run's model, the summary and the decisions so far."""
    with ledger.session() as db:
        run = db.get(DeprecationRun, run_id)
        assert run is not None
    return PendingApproval(
        run.model_id,
        approval_summary(ledger, run_id, target, required),
        gate_state(ledger, run_id, target, required),
    )


def approval_summary(ledger: Ledger, run_id: str, target: ServingStatus, required: int) -> str:
    """What an approver needs to see, as Markdown (shown as a Prefect artifact)."""
    with ledger.session() as db:
        run = db.get(DeprecationRun, run_id)
        assert run is not None
        model = db.get(CatalogModel, run.model_id)
        assert model is not None
        snapshot = latest_snapshot(db, model.id)
        report = (
            db.exec(
                select(Report)
                .where(Report.snapshot_id == snapshot.id)
                .order_by(Report.version.desc())  # type: ignore[attr-defined]
            ).first()
            if snapshot
            else None
        )
        summaries = db.exec(select(DeliverySummary).where(DeliverySummary.run_id == run_id)).all()
        restoration = db.exec(select(Restoration).where(Restoration.run_id == run_id)).first()
    lines = [
        f"# Approval needed: {model.display_name} (`{model.id}`) {model.serving_status} → "
        f"**{target.value}**",
        "",
        "| | |",
        "|---|---|",
        f"| Run | `{run.id}` ({run.kind}), requested by {run.requested_by or 'unnamed'} |",
        f"| Approvals required | {required} (distinct approvers) |",
    ]
    if run.notice_days is not None:
        override = (
            f"; **shortened, override: {run.notice_override_reason}**"
            if run.notice_override_reason
            else ""
        )
        lines.append(
            f"| Notice | {run.notice_days} days (minimum {run.minimum_notice_days}){override} |"
        )
    for s in summaries:
        lines.append(
            f"| Notices by {s.channel} | {s.sent} sent, {s.failed} failed, "
            f"{s.unconfirmed} unconfirmed, {s.skipped} without an address |"
        )
    if snapshot is not None:
        verified = "passed" if is_verified(ledger, snapshot.id) else "**NOT passed**"
        lines.append(
            f"| Package | `{snapshot.id}` at s3://{snapshot.bucket}/{snapshot.prefix}; "
            f"verification {verified} |"
        )
    if report is not None:
        lines.append(f"| Report | v{report.version}, SHA-256 `{report.sha256}` |")
    if restoration is not None:
        lines.append(
            f"| Restored to | {restoration.destination} ({restoration.files} files, "
            f"{restoration.state}) |"
        )
    lines += [
        "",
        "Decide in this form (approver, decision, reason), or from a terminal:",
        "",
        f"    sunset approve {run.id} --reason '...'",
        f"    sunset reject {run.id} --reason '...'",
    ]
    return "\n".join(lines) + "\n"
