"""What the operators see beside a sealed report: the package's files and their checks."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import col, select

from sunset.ledger import FixityEvent, Ledger, SnapshotFile
from sunset.preservation.records import snapshot_files
from sunset.runs.deprecation import package_of_run


@dataclass(frozen=True)
class ReplicaVerification:
    """One replica's checks in a run, summed: what an operator reads first."""

    replica: str
    bucket: str
    objects: int  # distinct objects checked
    fast_checks: int
    deep_checks: int
    bytes_read: int
    not_ok: list[str]  # "path: outcome (method)" of every check that was not ok

    @property
    def verdict(self) -> str:
        return "all ok" if not self.not_ok else f"{len(self.not_ok)} not ok"


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


def verification_summary(checks: list[FixityEvent]) -> list[ReplicaVerification]:
    """The checks summed per replica, in the order each replica was first checked; the
    checks that were not ok are named one by one."""
    by_replica: dict[tuple[str, str], list[FixityEvent]] = {}
    for check in checks:
        by_replica.setdefault((check.replica or check.bucket, check.bucket), []).append(check)
    return [
        ReplicaVerification(
            replica=replica,
            bucket=bucket,
            objects=len({c.path for c in theirs}),
            fast_checks=sum(c.method == "fast" for c in theirs),
            deep_checks=sum(c.method == "deep" for c in theirs),
            bytes_read=sum(c.bytes_read for c in theirs),
            not_ok=[f"{c.path}: {c.outcome} ({c.method})" for c in theirs if c.outcome != "ok"],
        )
        for (replica, bucket), theirs in by_replica.items()
    ]
