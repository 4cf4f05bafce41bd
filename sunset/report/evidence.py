"""What the operators see beside a sealed report: the package's files and their checks."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import col, select

from sunset.ledger import FixityEvent, Ledger, SnapshotFile
from sunset.preservation.records import snapshot_files
from sunset.runs.deprecation import package_of_run


@dataclass(frozen=True)
class PackageEvidence:
    """The run's package as the manifest lists it, and every fixity check of the run."""

    files: list[SnapshotFile]
    checks: list[FixityEvent]


def package_evidence(ledger: Ledger, run_id: str) -> PackageEvidence:
    """The files of the run's package, by path, and the run's fixity checks, oldest first."""
    snapshot = package_of_run(ledger, run_id)
    with ledger.session() as db:
        checks = db.exec(
            select(FixityEvent)
            .where(FixityEvent.run_id == run_id)
            .order_by(col(FixityEvent.checked_at))
        ).all()
    return PackageEvidence(snapshot_files(ledger, snapshot.id), list(checks))
