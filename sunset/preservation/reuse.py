"""Reusing a package: a later run of a deprecation preserves nothing anew when the weights
it was given are, byte for byte, the weights its package already holds.

The comparison reads and hashes the source files and uploads nothing; any difference
(a file missing, added, of another size or with other bytes) refuses the run with one
sentence naming the files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from sunset.errors import InputError
from sunset.ledger import Snapshot, SnapshotFile
from sunset.preservation.package import WEIGHTS_DIR
from sunset.preservation.replicas import ReplicatedStore
from sunset.preservation.snapshot import SnapshotSummary
from sunset.preservation.weights import SourceFile, WeightsReader

READ_CHUNK = 8 * 1024 * 1024
SHOWN_DIFFERENCES = 5


def listing_differences(
    package_files: Sequence[SnapshotFile], sources: Sequence[SourceFile]
) -> list[str]:
    """How the weights' files differ from the package's by name and size, cheaply: no
    byte is read."""
    preserved = _weights_of(package_files)
    given = {source.relative_path: source for source in sources}
    differences = [
        f"{path} is {given[path].size} bytes, {preserved[path].size} in the package"
        for path in sorted(preserved.keys() & given.keys())
        if given[path].size != preserved[path].size
    ]
    differences += [f"{path} is missing" for path in sorted(preserved.keys() - given.keys())]
    differences += [
        f"{path} is not in the package" for path in sorted(given.keys() - preserved.keys())
    ]
    return differences


def content_differences(
    package_files: Sequence[SnapshotFile],
    sources: Sequence[SourceFile],
    reader: WeightsReader,
    progress: Callable[[int, int], None] | None = None,
) -> list[str]:
    """The weights files whose bytes differ from the package's (SHA-256), each read once.

    Call it after ``listing_differences`` found none: it compares the files both hold.
    """
    preserved = _weights_of(package_files)
    total = sum(source.size for source in sources)
    done = 0
    differences = []
    for source in sources:
        digest = hashlib.sha256()
        with reader.open(source) as stream:
            while chunk := stream.read(READ_CHUNK):
                digest.update(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
        recorded = preserved[source.relative_path].sha256
        if digest.hexdigest() != recorded:
            differences.append(
                f"{source.relative_path} holds other bytes (SHA-256 {digest.hexdigest()[:12]}, "
                f"{recorded[:12]} in the package)"
            )
    if progress:
        progress(total, total)
    return differences


def refuse_changed_weights(package: Snapshot, weights: str, differences: Sequence[str]) -> None:
    """Refuse a run whose weights are not the package's, naming the files that differ.

    Raises:
        InputError: when there is any difference.
    """
    if not differences:
        return
    shown = "; ".join(differences[:SHOWN_DIFFERENCES])
    if len(differences) > SHOWN_DIFFERENCES:
        shown += f"; and {len(differences) - SHOWN_DIFFERENCES} more"
    raise InputError(
        f"The weights at {weights} are not the ones this deprecation preserved in package "
        f"{package.id}: {shown}. Point --weights at the files that were preserved, or pass "
        "--new-snapshot REASON to preserve these weights in a new package."
    )


def reused_package(
    store: ReplicatedStore,
    package: Snapshot,
    package_files: Sequence[SnapshotFile],
    sources: Sequence[SourceFile],
) -> SnapshotSummary:
    """The snapshot step's account of a reused package: its weights, none sent."""
    weights = _weights_of(package_files)
    return SnapshotSummary(
        snapshot_id=package.id,
        location=f"s3://{package.bucket}/{package.prefix}",
        files=len(sources),
        payload_bytes=sum(f.size for f in weights.values()),
        uploaded_files=0,
        skipped_files=len(sources),
        manifest_sha256=package.manifest_sha256 or "",
        replicas=tuple(c.name for c in store.copies),
        reused_from_run=package.run_id,
    )


def _weights_of(package_files: Sequence[SnapshotFile]) -> dict[str, SnapshotFile]:
    prefix = f"{WEIGHTS_DIR}/"
    return {f.path.removeprefix(prefix): f for f in package_files if f.path.startswith(prefix)}
