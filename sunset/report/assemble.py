"""Assembling the post-deployment report from the ledger, and sealing it into the package.

A deprecation has one report, sealed into its one package in versions numbered across
its runs: v1 by the run that announced it, the next by the run that retired the model,
and one more for each later analysis. The report is a function of the ledger alone:
regenerated later for the same run it is byte for byte its last sealed version.

Everything the model or a user wrote is untrusted: the model's words appear verbatim in
fences nothing can close, people's Markdown inside quotes, and every other field escaped
(sunset/report/render.py).

The report's account of the model (its sections 2, 6 and 7, ``account.md.j2``) is what
the model is shown for its right of reply (reply.py) before the final version is sealed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import jinja2
from sqlmodel import col, select

from sunset.errors import InputError
from sunset.interview.protocol import LoadedProtocol
from sunset.interview.transcript import PROTOCOL_FILE, raw_body_path, session_files
from sunset.ledger import (
    DeprecationRun,
    Ledger,
    Report,
    ReportInput,
    ReportReply,
    Snapshot,
    utcnow,
)
from sunset.preservation.package import REPORT_DIR
from sunset.preservation.records import load_snapshot
from sunset.preservation.replicas import ReplicatedStore
from sunset.preservation.seal import add_payload, write_tag_files
from sunset.preservation.verify import verify_snapshot
from sunset.report.facts import latest_input, report_facts
from sunset.report.inputs import INPUT_KINDS
from sunset.report.render import anchor, inline, quoted, to_html, verbatim
from sunset.report.reply import replies_jsonl
from sunset.runs.deprecation import fellow_run_ids, interview_of, package_of_run

REPORT_MD = "report.md"
REPORT_HTML = "report.html"
#: Every request for the model's reply to its report and the response, verbatim.
REPLY_TRANSCRIPT = f"{REPORT_DIR}/right-of-reply.jsonl"

_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("sunset.report", "templates"),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
)
_TEMPLATES.filters["verbatim"] = verbatim
_TEMPLATES.filters["inline"] = inline
_TEMPLATES.filters["quoted"] = quoted
_TEMPLATES.filters["anchor"] = anchor
_TEMPLATES.filters["sha256"] = lambda data: hashlib.sha256(data).hexdigest()
_TEMPLATES.globals["raw_body_path"] = raw_body_path


@dataclass(frozen=True)
class SealedReport:
    """Where a sealed report version lives, in the package and on local disk."""

    version: int
    key: str
    local_path: str
    html_path: str
    sha256: str
    package: str


def record_report_input(
    ledger: Ledger, *, run_id: str, kind: str, text: str, supplied_by: str
) -> None:
    """Keep a deployment summary or an operators' analysis, unless the same text is there."""
    assert kind in INPUT_KINDS
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    with ledger.session() as db:
        latest = latest_input(db, fellow_run_ids(db, run_id), kind)
        if latest is None or latest.sha256 != digest:
            db.add(
                ReportInput(
                    run_id=run_id, kind=kind, text=text, sha256=digest, supplied_by=supplied_by
                )
            )


def report_run(ledger: Ledger, model_id: str) -> str:
    """The run whose report describes the model: the latest run that sealed one."""
    with ledger.session() as db:
        report = db.exec(
            select(Report)
            .join(DeprecationRun, col(DeprecationRun.id) == col(Report.run_id))
            .where(DeprecationRun.model_id == model_id)
            .order_by(col(Report.sealed_at).desc())
        ).first()
    if report is None:
        raise InputError(f"No report has been sealed for {model_id!r} yet; deprecate it first.")
    return report.run_id


def render_report(ledger: Ledger, run_id: str) -> str:
    """The Markdown report of a run from the ledger only: its newest sealed version byte
    for byte (a preference decided later shows up only in a newly sealed version), or,
    before one is sealed, the report as it would be sealed now."""
    sealed = _last_sealed(ledger, run_id)
    if sealed is None:
        return _markdown(ledger, run_id, utcnow(), package_of_run(ledger, run_id))
    return _markdown(ledger, run_id, sealed.sealed_at, load_snapshot(ledger, sealed.snapshot_id))


def render_report_html(ledger: Ledger, run_id: str) -> str:
    """The self-contained HTML report of a run, derived from the Markdown one."""
    return _html(ledger, run_id, render_report(ledger, run_id))


def report_account(ledger: Ledger, run_id: str) -> str:
    """The report's account of the model as it would be sealed now: its deployment summary,
    preferences and operators' analysis (sections 2, 6 and 7), in the report's own words."""
    return _markdown(ledger, run_id, utcnow(), package_of_run(ledger, run_id), "account.md.j2")


def _markdown(
    ledger: Ledger,
    run_id: str,
    as_of: datetime,
    snapshot: Snapshot,
    template: str = "report.md.j2",
) -> str:
    facts = report_facts(ledger, run_id, as_of, snapshot)
    return _TEMPLATES.get_template(template).render(vars(facts))


def _html(ledger: Ledger, run_id: str, markdown: str) -> str:
    with ledger.session() as db:
        run = db.get(DeprecationRun, run_id)
        assert run is not None
    return to_html(markdown, f"Post-deployment report: {run.model_id}")


def _last_sealed(ledger: Ledger, run_id: str) -> Report | None:
    with ledger.session() as db:
        return db.exec(
            select(Report).where(Report.run_id == run_id).order_by(col(Report.version).desc())
        ).first()


def seal_report(
    ledger: Ledger,
    store: ReplicatedStore,
    *,
    run_id: str,
    protocol: LoadedProtocol | None,
    organization: str,
    reports_dir: Path,
) -> SealedReport:
    """Put the interview's transcripts and the report into the deprecation's package,
    rewrite its manifests, and read the new files back before recording the report version
    as sealed.

    A report whose bytes differ from the last sealed one becomes the deprecation's next
    version; the package keeps every version of the object, and the ledger says which is
    which. ``protocol`` is written beside the transcripts when the interview was held under
    it (or has no session yet).
    """
    snapshot = package_of_run(ledger, run_id)
    with ledger.session() as db:
        run_ids = fellow_run_ids(db, run_id)
        sessions = interview_of(db, run_ids)
        previous = db.exec(
            select(Report)
            .where(col(Report.run_id).in_(run_ids))
            .order_by(col(Report.version), col(Report.sealed_at))
        ).all()
    written: dict[str, bytes] = {}
    if protocol is not None and all(s.protocol_sha256 == protocol.sha256 for s in sessions):
        written[PROTOCOL_FILE] = protocol.source
    for session in sessions:
        written |= session_files(ledger, session)
    sealed_at = utcnow()
    with ledger.session() as db:
        replies = db.exec(
            select(ReportReply)
            .where(col(ReportReply.run_id).in_(run_ids), col(ReportReply.recorded_at) <= sealed_at)
            .order_by(col(ReportReply.id))
        ).all()
    if replies:
        written[REPLY_TRANSCRIPT] = replies_jsonl(list(replies))
    markdown = _markdown(ledger, run_id, sealed_at, snapshot).encode("utf-8")
    page = _html(ledger, run_id, markdown.decode("utf-8")).encode("utf-8")
    written[f"{REPORT_DIR}/{REPORT_MD}"] = markdown
    written[f"{REPORT_DIR}/{REPORT_HTML}"] = page
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
    digest = hashlib.sha256(markdown).hexdigest()
    package = f"s3://{store.bucket}/{snapshot.prefix}"
    latest = previous[-1] if previous else None
    if latest and (latest.run_id, latest.snapshot_id, latest.sha256) == (
        run_id,
        snapshot.id,
        digest,
    ):  # a retry that sealed these very bytes
        html_path = str(Path(latest.local_path).with_suffix(".html"))
        return SealedReport(
            latest.version, latest.key, latest.local_path, html_path, digest, package
        )
    version = latest.version + 1 if latest else 1
    local = reports_dir / snapshot.model_id / snapshot.id / f"report-v{version}.md"
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_bytes(markdown)
    local.with_suffix(".html").write_bytes(page)
    key = f"{snapshot.prefix}{REPORT_DIR}/{REPORT_MD}"
    with ledger.session() as db:
        db.add(
            Report(
                run_id=run_id,
                snapshot_id=snapshot.id,
                version=version,
                key=key,
                sha256=digest,
                local_path=str(local),
                sealed_at=sealed_at,
            )
        )
    return SealedReport(version, key, str(local), str(local.with_suffix(".html")), digest, package)
