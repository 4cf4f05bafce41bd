"""What the post-deployment report says, read from the ledger as it stood at one moment.

``report_facts`` gathers one typed group per part of the report; the template
(templates/report.md.j2) only lays them out. Nothing here reads a step's summary: the
run's own columns hold its dates and notice terms.

A report describes the whole deprecation its run belongs to, as far as it had gone when
the version was sealed: every run of it (the announcement, the retirement), its one
package with every run's checks of it, its one interview (voice.py: what the model
said, and its reply to the report). Whatever happened after that moment is left out, so a
version regenerated later is the same, byte for byte.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlmodel import Session, col, select

from sunset.ledger import (
    CatalogModel,
    Delivery,
    DeliveryDecision,
    DeliveryDecisionKind,
    DeliverySummary,
    DeprecationRun,
    DrillEvent,
    Fingerprint,
    FixityEvent,
    Ledger,
    LeftoverVersion,
    PreservedObject,
    ReportInput,
    RetirementDateChange,
    RunState,
    Snapshot,
    SnapshotFile,
    StepAttempt,
)
from sunset.notify.message import NoticeKind
from sunset.notify.notices import REACHED
from sunset.preservation.package import WEIGHTS_DIR, PayloadEntry, payload_manifest
from sunset.preservation.standing import latest_fingerprint
from sunset.report.voice import Interview, ModelReply, interview_facts, model_reply
from sunset.runs.deliveries import decide_command, is_unknown
from sunset.runs.deprecation import (
    fellow_run_ids,
    new_snapshot_reason,
    run_purpose,
)
from sunset.runs.steps import REPORT_STEP


@dataclass(frozen=True)
class Timeline:
    """Section 1: the model, its dates, and what the run asked for."""

    run: DeprecationRun
    model: CatalogModel
    replacement: CatalogModel | None
    announced_on: date
    retirement_on: date
    target: str


@dataclass(frozen=True)
class RecipientNotices:
    """What one recipient was told: the first announcement that reached them, the notice
    that gave them until the retirement date, and every notice they got."""

    recipient: str
    first_announcement: date | None  # None: no announcement reached them before
    notice_days: int | None
    received: list[Delivery]  # reached them (or may have), oldest first


@dataclass(frozen=True)
class Notices:
    """Section 3: who was told what and when, by which channel, and how much notice each
    user had, counted from the first announcement that reached them."""

    retirement_on: date
    override_reason: str | None
    summaries: list[DeliverySummary]  # this run's notices, per channel
    deliveries: list[Delivery]  # every notice of the deprecation, up to the report
    recipients: list[RecipientNotices]
    date_changes: list[RetirementDateChange]
    # What people decided about notices nobody knew arrived, oldest first.
    decisions: list[DeliveryDecision]

    @property
    def unknown(self) -> list[Delivery]:
        """The notices nobody knew arrived, and nobody had decided about, at the report."""
        latest: dict[int | None, DeliveryDecisionKind] = {
            d.delivery_id: d.decision for d in self.decisions
        }
        return [d for d in self.deliveries if is_unknown(d, latest.get(d.id))]

    @property
    def decide_command(self) -> str:
        """The command that decides about the unknown notices."""
        return decide_command(self.deliveries[0].model_id)

    def decided_about(self, decision: DeliveryDecision) -> Delivery:
        return next(d for d in self.deliveries if d.id == decision.delivery_id)

    @property
    def notice_days(self) -> list[int]:
        """The days of notice of each recipient an announcement reached, fewest first."""
        return sorted(r.notice_days for r in self.recipients if r.notice_days is not None)

    @property
    def first_announcements(self) -> list[date]:
        """The days the announcement first reached someone, earliest first."""
        return sorted({r.first_announcement for r in self.recipients if r.first_announcement})

    @property
    def untold(self) -> int:
        """Recipients no announcement reached before the retirement."""
        return sum(1 for r in self.recipients if r.first_announcement is None)


@dataclass(frozen=True)
class ReplicaHolding:
    """What one replica holds of the weights, and how long it is locked at least."""

    name: str
    endpoint: str
    bucket: str
    files: int
    bytes: int
    locked_until: date


@dataclass(frozen=True)
class Verification:
    """One run's checks of the package: the latest of each method, per weights file and
    replica."""

    run: DeprecationRun
    purpose: str
    checks: dict[str, dict[str, list[FixityEvent]]]


@dataclass(frozen=True)
class Preservation:
    """Section 4: the package, its copies, every run's checks, and the fingerprint drills."""

    snapshot: Snapshot
    # Why the release manager had this package made in place of earlier ones, and those.
    replacement_reason: str | None
    replaced: list[Snapshot]
    weights: list[SnapshotFile]
    weights_manifest_sha256: str
    verifications: list[Verification]
    replicas: list[ReplicaHolding]
    fingerprint: Fingerprint | None
    drills: list[DrillEvent]
    # Locked versions under the package's weights that the package does not use.
    leftovers: list[LeftoverVersion]

    @property
    def weights_bytes(self) -> int:
        return sum(f.size for f in self.weights)


@dataclass(frozen=True)
class StepRecord:
    """One attempt at one step, in the state it was in when the version was sealed."""

    step: str
    attempt: int
    state: str
    started_at: datetime
    error: str | None


@dataclass(frozen=True)
class RunRecord:
    """Section 8: one run of the deprecation and its steps."""

    run: DeprecationRun
    purpose: str
    ended: str | None  # how it ended; None while it was in progress
    new_snapshot_reason: str | None
    steps: list[StepRecord]


@dataclass(frozen=True)
class ReportFacts:
    """Everything the report shows, in the order of its sections."""

    timeline: Timeline
    deployment_summary: ReportInput | None
    notices: Notices
    preservation: Preservation
    interview: Interview
    operator_analysis: ReportInput | None
    reply: ModelReply
    runs: list[RunRecord]


def report_facts(ledger: Ledger, run_id: str, as_of: datetime, snapshot: Snapshot) -> ReportFacts:
    """The report's facts for a run and the deprecation it belongs to, as the ledger stood
    at ``as_of``, with ``snapshot`` as the deprecation's package."""
    with ledger.session() as db:
        run = db.get(DeprecationRun, run_id)
        assert run is not None
        runs = [
            r
            for r in db.exec(
                select(DeprecationRun)
                .where(col(DeprecationRun.id).in_(fellow_run_ids(db, run_id)))
                .order_by(col(DeprecationRun.started_at))
            )
            if r.started_at <= as_of
        ]
        run_ids = [r.id for r in runs]
        summary = latest_input(db, run_ids, "deployment_summary", as_of)
        analysis = latest_input(db, run_ids, "operator_analysis", as_of)
        return ReportFacts(
            timeline=_timeline(db, run),
            deployment_summary=summary,
            notices=_notices(db, run, as_of),
            preservation=_preservation(db, runs, snapshot, as_of),
            interview=interview_facts(db, run_ids, as_of),
            operator_analysis=analysis,
            reply=model_reply(db, run_ids, [summary, analysis], as_of),
            runs=[_run_record(db, r, run_id, as_of) for r in runs],
        )


def latest_input(
    db: Session, run_ids: list[str], kind: str, as_of: datetime | None = None
) -> ReportInput | None:
    """The newest deployment summary or operators' analysis supplied to any of the runs
    (up to ``as_of``): one deprecation's runs share them."""
    query = select(ReportInput).where(
        col(ReportInput.run_id).in_(run_ids), ReportInput.kind == kind
    )
    if as_of is not None:
        query = query.where(col(ReportInput.supplied_at) <= as_of)
    return db.exec(query.order_by(col(ReportInput.id).desc())).first()


def _timeline(db: Session, run: DeprecationRun) -> Timeline:
    model = db.get(CatalogModel, run.model_id)
    assert model is not None and run.retirement_on is not None
    replacement = db.get(CatalogModel, model.replacement_id) if model.replacement_id else None
    return Timeline(
        run=run,
        model=model,
        replacement=replacement,
        announced_on=model.deprecation_announced_on or run.started_at.date(),
        retirement_on=run.retirement_on,
        target="retired" if run.parameters.get("retire") else "deprecated",
    )


def _notices(db: Session, run: DeprecationRun, as_of: datetime) -> Notices:
    assert run.retirement_on is not None
    # A retirement tells its users after its report is sealed: that summary is not shown.
    summaries = db.exec(
        select(DeliverySummary)
        .where(DeliverySummary.run_id == run.id, col(DeliverySummary.updated_at) <= as_of)
        .order_by(col(DeliverySummary.channel))
    ).all()
    # The deprecation's notices, whichever run (or none: reminders, date changes) sent
    # them, as they stood when the report was made.
    of_deprecation = (
        Delivery.deprecation_id == run.deprecation_id
        if run.deprecation_id
        else Delivery.run_id == run.id
    )
    deliveries = db.exec(
        select(Delivery)
        .where(of_deprecation, col(Delivery.updated_at) <= as_of)
        .order_by(col(Delivery.recipient), col(Delivery.updated_at), col(Delivery.id))
    ).all()
    changes = db.exec(
        select(RetirementDateChange)
        .where(
            RetirementDateChange.deprecation_id == run.deprecation_id,
            col(RetirementDateChange.changed_at) <= as_of,
        )
        .order_by(col(RetirementDateChange.id))
    ).all()
    decisions = db.exec(
        select(DeliveryDecision)
        .where(
            col(DeliveryDecision.delivery_id).in_([d.id for d in deliveries]),
            col(DeliveryDecision.decided_at) <= as_of,
        )
        .order_by(col(DeliveryDecision.id))
    ).all()
    return Notices(
        retirement_on=run.retirement_on,
        override_reason=run.notice_override_reason,
        summaries=list(summaries),
        deliveries=list(deliveries),
        recipients=_recipient_notices(deliveries, run.retirement_on),
        date_changes=list(changes),
        decisions=list(decisions),
    )


def _recipient_notices(
    deliveries: Sequence[Delivery], retirement_on: date
) -> list[RecipientNotices]:
    by_recipient: dict[str, list[Delivery]] = {}
    for delivery in deliveries:
        by_recipient.setdefault(delivery.recipient, []).append(delivery)
    recipients = []
    for recipient, theirs in by_recipient.items():
        received = [d for d in theirs if d.state in REACHED]
        announced = [
            d.updated_at.date()  # UTC, the same on every machine
            for d in received
            if d.kind == NoticeKind.ANNOUNCEMENT.value
        ]
        first = min(announced, default=None)
        days = (retirement_on - first).days if first else None
        recipients.append(RecipientNotices(recipient, first, days, received))
    return recipients


def _preservation(
    db: Session, runs: list[DeprecationRun], snapshot: Snapshot, as_of: datetime
) -> Preservation:
    run_ids = [r.id for r in runs]
    files = db.exec(
        select(SnapshotFile)
        .where(SnapshotFile.snapshot_id == snapshot.id)
        .order_by(col(SnapshotFile.path))
    ).all()
    weights = [f for f in files if f.path.startswith(WEIGHTS_DIR + "/")]
    manifest = payload_manifest(
        (PayloadEntry(f.path, f.size, f.sha256, f.sha512) for f in weights), "sha512"
    )
    fingerprint = latest_fingerprint(db, snapshot.id)
    drills = db.exec(
        select(DrillEvent)
        .where(col(DrillEvent.run_id).in_(run_ids), col(DrillEvent.finished_at) <= as_of)
        .order_by(col(DrillEvent.finished_at))
    ).all()
    maker = next((r for r in runs if r.id == snapshot.run_id), None)
    reason = new_snapshot_reason(maker) if maker else None
    replaced = db.exec(
        select(Snapshot)
        .where(
            col(Snapshot.run_id).in_(run_ids),
            Snapshot.id != snapshot.id,
            col(Snapshot.created_at) <= snapshot.created_at,
        )
        .order_by(col(Snapshot.created_at))
    ).all()
    verifications = [
        Verification(r, run_purpose(r), checks)
        for r in runs
        if (checks := _latest_checks(db, r.id, snapshot.id, as_of))
    ]
    return Preservation(
        snapshot=snapshot,
        replacement_reason=reason,
        replaced=list(replaced) if reason else [],
        weights=weights,
        weights_manifest_sha256=hashlib.sha256(manifest).hexdigest(),
        verifications=verifications,
        replicas=_replica_holdings(db, snapshot.id),
        fingerprint=fingerprint,
        drills=list(drills),
        leftovers=list(
            db.exec(
                select(LeftoverVersion)
                .where(
                    LeftoverVersion.snapshot_id == snapshot.id,
                    col(LeftoverVersion.found_at) <= as_of,
                )
                .order_by(col(LeftoverVersion.replica), col(LeftoverVersion.key))
            )
        ),
    )


def _latest_checks(
    db: Session, run_id: str, snapshot_id: str, as_of: datetime
) -> dict[str, dict[str, list[FixityEvent]]]:
    events = db.exec(
        select(FixityEvent)
        .where(
            FixityEvent.run_id == run_id,
            FixityEvent.snapshot_id == snapshot_id,
            col(FixityEvent.path).startswith(WEIGHTS_DIR),
            col(FixityEvent.checked_at) <= as_of,
        )
        .order_by(col(FixityEvent.checked_at), col(FixityEvent.id))
    ).all()
    checks: dict[str, dict[str, list[FixityEvent]]] = {}
    for event in events:  # a later check of the same method replaces the earlier one
        by_replica = checks.setdefault(event.path, {}).setdefault(event.replica or "", [])
        by_replica[:] = [e for e in by_replica if e.method != event.method] + [event]
    return checks


def _replica_holdings(db: Session, snapshot_id: str) -> list[ReplicaHolding]:
    copies = db.exec(
        select(PreservedObject)
        .where(
            PreservedObject.snapshot_id == snapshot_id,
            col(PreservedObject.path).startswith(WEIGHTS_DIR),
        )
        .order_by(col(PreservedObject.replica), col(PreservedObject.path))
    ).all()
    holdings = []
    for name in sorted({c.replica for c in copies}):
        held = [c for c in copies if c.replica == name]
        holdings.append(
            ReplicaHolding(
                name=name,
                endpoint=held[0].endpoint,
                bucket=held[0].bucket,
                files=len(held),
                bytes=sum(c.size for c in held),
                locked_until=min(c.retain_until for c in held).date(),
            )
        )
    return holdings


def _run_record(
    db: Session, run: DeprecationRun, reported_run_id: str, as_of: datetime
) -> RunRecord:
    """A run as it stood at ``as_of``: a run that had not ended yet is in progress, and so
    is an attempt; the reported run's own report step is left out (it is being written)."""
    attempts = db.exec(
        select(StepAttempt).where(StepAttempt.run_id == run.id).order_by(col(StepAttempt.id))
    ).all()
    steps = [
        StepRecord(
            a.step,
            a.attempt,
            str(a.state) if _ended_by(a.finished_at, as_of) else "running",
            a.started_at,
            a.error if _ended_by(a.finished_at, as_of) else None,
        )
        for a in attempts
        if a.started_at <= as_of and not (run.id == reported_run_id and a.step == REPORT_STEP)
    ]
    ended = None
    if run.id != reported_run_id and run.state == RunState.SUPERSEDED:
        ended = "superseded by a later run"  # before the reported run began
    elif run.state != RunState.RUNNING and run.finished_at and _ended_by(run.finished_at, as_of):
        ended = f"{run.state} {run.finished_at.isoformat()}"
    return RunRecord(run, run_purpose(run), ended, new_snapshot_reason(run), steps)


def _ended_by(finished_at: datetime | None, as_of: datetime) -> bool:
    return finished_at is not None and finished_at <= as_of
