"""Assembling the post-deployment report from the ledger, and sealing it into the package.

The report is a function of the ledger alone: regenerated later for the same run it is
byte for byte the same. Everything the model or a user wrote is untrusted text and is
shown verbatim inside fences that it cannot close.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from sqlmodel import select

from sunset.interview.protocol import LoadedProtocol
from sunset.interview.transcript import transcript_jsonl
from sunset.ledger import (
    CatalogModel,
    Delivery,
    DeprecationRun,
    FixityEvent,
    InterviewSession,
    InterviewTurn,
    Ledger,
    Report,
    Snapshot,
    SnapshotFile,
    StepAttempt,
)
from sunset.package import INTERVIEW_DIR, REPORT_DIR, WEIGHTS_DIR, PayloadEntry, payload_manifest
from sunset.preserve import add_payload, verify_snapshot, write_tag_files
from sunset.runs import FLIP_STEP, REPORT_STEP
from sunset.store import ObjectStore

REPORT_NAME = "report.md"

_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("sunset.report", "templates"),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
)


def verbatim(text: str) -> str:
    """Untrusted text as a fenced block that nothing inside it can close or escape."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


_TEMPLATES.filters["verbatim"] = verbatim


@dataclass(frozen=True)
class SealedReport:
    version: int
    key: str
    local_path: str
    sha256: str
    package: str


def render_report(ledger: Ledger, run_id: str) -> str:
    """The Markdown report of a run, from the ledger only."""
    return _TEMPLATES.get_template("report.md.j2").render(_facts(ledger, run_id))


def seal_report(
    ledger: Ledger,
    store: ObjectStore,
    *,
    run_id: str,
    protocol: LoadedProtocol,
    organization: str,
    reports_dir: Path,
) -> SealedReport:
    """Put the transcripts and the report into the package, rewrite its manifests, and
    read the new files back before recording the report as sealed."""
    with ledger.session() as db:
        snapshot = db.exec(select(Snapshot).where(Snapshot.run_id == run_id)).one()
        sessions = db.exec(
            select(InterviewSession)
            .where(InterviewSession.run_id == run_id)
            .order_by(InterviewSession.session_index)
        ).all()
        previous = db.exec(select(Report).where(Report.run_id == run_id)).all()
    written = {f"{INTERVIEW_DIR}/protocol.yaml": protocol.source}
    for session in sessions:
        written[f"{INTERVIEW_DIR}/session-{session.session_index}.jsonl"] = transcript_jsonl(
            ledger, session.id
        )
    report = render_report(ledger, run_id).encode("utf-8")
    written[f"{REPORT_DIR}/{REPORT_NAME}"] = report
    for path, data in written.items():
        add_payload(ledger, store, snapshot.id, path, data)
    write_tag_files(ledger, store, snapshot.id, organization)
    verify_snapshot(
        ledger,
        store,
        snapshot_id=snapshot.id,
        run_id=run_id,
        organization=organization,
        paths=list(written),
    )
    digest = hashlib.sha256(report).hexdigest()
    same = [r for r in previous if r.sha256 == digest]
    if same:  # a retried step that sealed the very same bytes already
        latest = same[-1]
        return SealedReport(latest.version, latest.key, latest.local_path, digest, snapshot.prefix)
    version = len(previous) + 1
    local = reports_dir / snapshot.model_id / snapshot.id / f"report-v{version}.md"
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_bytes(report)
    key = f"{snapshot.prefix}{REPORT_DIR}/{REPORT_NAME}"
    with ledger.session() as db:
        db.add(
            Report(
                run_id=run_id,
                snapshot_id=snapshot.id,
                version=version,
                key=key,
                sha256=digest,
                local_path=str(local),
            )
        )
    return SealedReport(version, key, str(local), digest, f"s3://{store.bucket}/{snapshot.prefix}")


def _session_turns(ledger: Ledger, session_id: str) -> list[InterviewTurn]:
    with ledger.session() as db:
        return list(
            db.exec(
                select(InterviewTurn)
                .where(InterviewTurn.session_id == session_id)
                .order_by(InterviewTurn.seq)
            )
        )


def _facts(ledger: Ledger, run_id: str) -> dict[str, Any]:
    with ledger.session() as db:
        run = db.get(DeprecationRun, run_id)
        assert run is not None
        model = db.get(CatalogModel, run.model_id)
        assert model is not None
        replacement = db.get(CatalogModel, model.replacement_id) if model.replacement_id else None
        snapshot = db.exec(select(Snapshot).where(Snapshot.run_id == run_id)).one()
        files = db.exec(
            select(SnapshotFile)
            .where(SnapshotFile.snapshot_id == snapshot.id)
            .order_by(SnapshotFile.path)
        ).all()
        deliveries = db.exec(
            select(Delivery).where(Delivery.run_id == run_id).order_by(Delivery.recipient)
        ).all()
        events = db.exec(
            select(FixityEvent)
            .where(FixityEvent.run_id == run_id, FixityEvent.path.startswith(WEIGHTS_DIR))  # type: ignore[attr-defined]
            .order_by(FixityEvent.checked_at, FixityEvent.path)
        ).all()
        sessions = db.exec(
            select(InterviewSession)
            .where(InterviewSession.run_id == run_id)
            .order_by(InterviewSession.session_index)
        ).all()
        attempts = db.exec(
            select(StepAttempt).where(StepAttempt.run_id == run_id).order_by(StepAttempt.id)
        ).all()
    weights = [f for f in files if f.path.startswith(WEIGHTS_DIR + "/")]
    weights_manifest = payload_manifest(
        (PayloadEntry(f.path, f.size, f.sha256, f.sha512) for f in weights), "sha512"
    )
    latest_check: dict[str, FixityEvent] = {}
    for event in events:
        latest_check[event.path] = event
    return {
        "run": run,
        "model": model,
        "replacement": replacement,
        "snapshot": snapshot,
        "weights": weights,
        "weights_bytes": sum(f.size for f in weights),
        "weights_manifest_sha256": hashlib.sha256(weights_manifest).hexdigest(),
        "checks": [latest_check[f.path] for f in weights if f.path in latest_check],
        "deliveries": deliveries,
        "sent": sum(d.state == "sent" for d in deliveries),
        "failed": sum(d.state == "failed" for d in deliveries),
        "sessions": [(s, _session_turns(ledger, s.id)) for s in sessions],
        # Only the steps that ran before the report, so a later regeneration is identical.
        "attempts": [a for a in attempts if a.step not in (REPORT_STEP, FLIP_STEP)],
        "target": "retired" if run.parameters.get("retire") else "deprecated",
    }
