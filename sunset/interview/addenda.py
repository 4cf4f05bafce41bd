"""Addenda: a decision about a preference, made after the report that lists it was sealed,
sealed into the package beside the report, so the package itself says what became of it.

A sealed report version is never rewritten: each such decision becomes a dated file of
its own, ``data/report/addenda/<date>-preference-<id>-decision-<n>.md``, added to the
manifests and verified on every replica like the report. A decision made before a report
version was sealed is in that report and needs none. A decision whose addendum could not
be sealed (the store was unreachable, the process died) is sealed by the next call.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_
from sqlalchemy.orm import aliased
from sqlmodel import col, func, select

from sunset.ledger import (
    DeprecationRun,
    InterviewPreference,
    Ledger,
    PreferenceStatusChange,
    Report,
    Snapshot,
)
from sunset.preservation.package import REPORT_DIR
from sunset.preservation.replicas import ReplicatedStore
from sunset.preservation.seal import add_payload, write_tag_files
from sunset.preservation.verify import verify_snapshot
from sunset.report.render import inline, quoted, verbatim

ADDENDA_DIR = f"{REPORT_DIR}/addenda"


@dataclass(frozen=True)
class Addendum:
    """A decision that needs an addendum, with what it says and the report it follows."""

    change: PreferenceStatusChange
    preference: InterviewPreference
    report: Report  # the latest version of the report, sealed before the decision

    @property
    def path(self) -> str:
        """Where the package holds it."""
        return (
            f"{ADDENDA_DIR}/{self.change.at:%Y-%m-%d}-preference-{self.preference.id}"
            f"-decision-{self.change.id}.md"
        )

    def text(self) -> str:
        """The addendum in Markdown: the model's words verbatim, people's words quoted."""
        change, preference, report = self.change, self.preference, self.report
        return "\n".join(
            [
                f"# Addendum: what became of a preference of {inline(preference.model_id)}",
                "",
                f"Decided {_moment(change.at)} by {inline(change.actor)}, after version "
                f"{report.version} of the report was sealed ({_moment(report.sealed_at)}); "
                "that report is unchanged.",
                "",
                f"Preference {preference.id}, stated in session {preference.session_index}, "
                f"turn {preference.turn_seq} ({inline(preference.question_id)}), in the "
                "model's words:",
                "",
                verbatim(preference.quote),
                "",
                f"Status: **{change.from_status}**, now **{change.to_status}**. Reason:",
                "",
                quoted(change.reason),
                "",
            ]
        )


@dataclass(frozen=True)
class SealedAddendum:
    path: str
    package: str  # s3://bucket/prefix/


def pending_addenda(ledger: Ledger, model_id: str) -> list[Addendum]:
    """The decisions about ``model_id``'s preferences made after the latest version of
    their report was sealed, whose addendum is not sealed yet, oldest first."""
    # Report versions are numbered per package, across the deprecation's runs: the one
    # to compare with is the package's latest, whichever run of the deprecation sealed it.
    latest = (
        select(Report.snapshot_id, func.max(Report.version).label("version"))
        .group_by(col(Report.snapshot_id))
        .subquery()
    )
    asked_in = aliased(DeprecationRun)
    sealed_by = aliased(DeprecationRun)
    with ledger.session() as db:
        rows = db.exec(
            select(PreferenceStatusChange, InterviewPreference, Report)
            .join(InterviewPreference)
            .join(asked_in, col(asked_in.id) == InterviewPreference.run_id)
            .join(
                sealed_by,
                or_(
                    col(sealed_by.id) == col(asked_in.id),
                    col(sealed_by.deprecation_id) == col(asked_in.deprecation_id),
                ),
            )
            .join(Report, col(Report.run_id) == col(sealed_by.id))
            .join(
                latest,
                (latest.c.snapshot_id == Report.snapshot_id) & (latest.c.version == Report.version),
            )
            .where(
                InterviewPreference.model_id == model_id,
                col(PreferenceStatusChange.addendum_path).is_(None),
                col(PreferenceStatusChange.at) > col(Report.sealed_at),
            )
            .order_by(col(PreferenceStatusChange.id))
        ).all()
    return [Addendum(change, preference, report) for change, preference, report in rows]


def seal_addenda(
    ledger: Ledger, store: ReplicatedStore, *, model_id: str, organization: str
) -> list[SealedAddendum]:
    """Seal every pending addendum of ``model_id`` into the package its report is in:
    put, recorded, manifests rewritten, then read back from every replica.

    Raises:
        VerificationFailed: a replica does not hold what was written.
    """
    sealed: list[SealedAddendum] = []
    pending = pending_addenda(ledger, model_id)
    for snapshot_id in dict.fromkeys(addendum.report.snapshot_id for addendum in pending):
        addenda = [a for a in pending if a.report.snapshot_id == snapshot_id]
        for addendum in addenda:
            add_payload(ledger, store, snapshot_id, addendum.path, addendum.text().encode())
        write_tag_files(ledger, store, snapshot_id, organization)
        paths = [addendum.path for addendum in addenda]
        verify_snapshot(
            ledger,
            store,
            snapshot_id=snapshot_id,
            run_id=None,
            organization=organization,
            paths=paths,
        )
        with ledger.session() as db:
            snapshot = db.get(Snapshot, snapshot_id)
            assert snapshot is not None
            for addendum in addenda:
                change = db.get(PreferenceStatusChange, addendum.change.id)
                assert change is not None
                change.addendum_path = addendum.path
                db.add(change)
        package = f"s3://{store.bucket}/{snapshot.prefix}"
        sealed += [SealedAddendum(path, package) for path in paths]
    return sealed


def _moment(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")
