"""Versions a killed snapshot left behind: adopted when they hold the file's bytes,
otherwise named as locked leftovers.

A process killed between an upload and its record leaves a locked version that the
ledger does not know. The resumed snapshot reads the file again: a version with exactly
the bytes read now (same size and full-object CRC64NVME, which the store computed itself
on receipt, under a COMPLIANCE lock) is the package's own write and is recorded instead
of being sent a second time; the verify step then re-reads it whole against the SHA-256
recorded (a collision-resistant digest, where the CRC is not). Any other version under
the package's weights that the package does not use is recorded as a ``LeftoverVersion``
and named in the run's outcome and in the report: it cannot be deleted before its lock
ends, so it must not go unexplained.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from sqlmodel import col, select

from sunset.ledger import Ledger, LeftoverVersion, PreservedObject, Snapshot, utcnow
from sunset.preservation.package import WEIGHTS_DIR
from sunset.preservation.store import (
    LOCK_MODE,
    Digests,
    DigestStream,
    ListedVersion,
    ObjectStore,
    StoredObject,
    read_exactly,
)
from sunset.preservation.weights import SourceFile, WeightsReader

# (replica, object key) -> versions there that no ledger row records.
Strays = Mapping[tuple[str, str], Sequence[ListedVersion]]


@dataclass(frozen=True)
class Adoption:
    """What a resumed snapshot found of one unrecorded file: the digests of its bytes as
    read now, and by replica the version already holding exactly those bytes."""

    digests: Digests
    stored: dict[str, StoredObject]


def stray_versions(
    copies: Sequence[ObjectStore], snapshot: Snapshot, held: Collection[PreservedObject]
) -> dict[tuple[str, str], list[ListedVersion]]:
    """Every version of the package's weights on every replica that no ``held`` row
    records (delete markers aside): one version listing per replica."""
    recorded = {(row.replica, snapshot.prefix + row.path, row.version_id) for row in held}
    strays: dict[tuple[str, str], list[ListedVersion]] = {}
    for copy in copies:
        for version in copy.list_versions(f"{snapshot.prefix}{WEIGHTS_DIR}/"):
            if version.delete_marker:
                continue
            if (copy.name, version.key, version.version_id) not in recorded:
                strays.setdefault((copy.name, version.key), []).append(version)
    return strays


def adopt_unrecorded(
    targets: Sequence[ObjectStore],
    key: str,
    source: SourceFile,
    weights: WeightsReader,
    strays: Strays,
    part_size: int,
) -> Adoption:
    """Read ``source`` once and find, on each target, whether the current version of
    ``key``, unrecorded, holds exactly its bytes, locked."""
    stream = DigestStream()
    with weights.open(source) as reader:
        while chunk := read_exactly(reader, part_size):
            stream.update(chunk)
    digests = stream.result()
    stored: dict[str, StoredObject] = {}
    for copy in targets:
        # Only the current version can be the package's: one under a newer version would
        # be shadowed, and the fast check would rightly fail it.
        current = next((v for v in strays.get((copy.name, key), []) if v.is_latest), None)
        if current is None or current.size != digests.size:
            continue
        head = copy.head(key, current.version_id)
        if (
            head is not None
            and head.crc64nvme == digests.crc64nvme
            and head.lock_mode == LOCK_MODE
            and head.retain_until is not None
        ):
            stored[copy.name] = head
    return Adoption(digests, stored)


def record_leftovers(
    ledger: Ledger,
    copies: Sequence[ObjectStore],
    snapshot: Snapshot,
    run_id: str,
    strays: Strays,
) -> list[LeftoverVersion]:
    """Record each stray version as a leftover (once: a rerun finds the same ones), with
    its lock as the store reports it; return every leftover of the package."""
    by_name = {copy.name: copy for copy in copies}
    with ledger.session() as db:
        known = {
            (row.replica, row.key, row.version_id)
            for row in db.exec(
                select(LeftoverVersion).where(LeftoverVersion.snapshot_id == snapshot.id)
            )
        }
        for (replica, key), versions in strays.items():
            copy = by_name[replica]
            for version in versions:
                if (replica, key, version.version_id) in known:
                    continue
                head = copy.head(key, version.version_id)
                db.add(
                    LeftoverVersion(
                        snapshot_id=snapshot.id,
                        run_id=run_id,
                        replica=replica,
                        endpoint=copy.endpoint,
                        bucket=copy.bucket,
                        key=key,
                        version_id=version.version_id,
                        size=version.size,
                        retain_until=head.retain_until if head else None,
                        found_at=utcnow(),
                    )
                )
    return leftovers_of(ledger, snapshot.id)


def leftovers_of(ledger: Ledger, snapshot_id: str) -> list[LeftoverVersion]:
    """The package's recorded leftovers, by replica and key."""
    with ledger.session() as db:
        return list(
            db.exec(
                select(LeftoverVersion)
                .where(LeftoverVersion.snapshot_id == snapshot_id)
                .order_by(
                    col(LeftoverVersion.replica), col(LeftoverVersion.key), col(LeftoverVersion.id)
                )
            )
        )


def describe(leftovers: Iterable[LeftoverVersion]) -> tuple[str, ...]:
    """One line per leftover: where it is, which version, its size and its lock."""
    return tuple(
        f"s3://{row.bucket}/{row.key} version {row.version_id} ({row.size} bytes, "
        + (f"locked until {row.retain_until:%Y-%m-%d})" if row.retain_until else "not locked)")
        for row in leftovers
    )
