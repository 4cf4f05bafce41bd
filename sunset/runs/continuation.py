"""A later run of a deprecation continues what the earlier ones did: it reuses the package
they made and verified, and joins the interview they held.

Whether it can is checked before the run begins, so that a run that cannot is refused
before anyone is told anything: names and sizes of the weights in ``validate_request``
(cheap, and also the CLI's quick answer), their bytes in preflight.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from sunset.errors import InputError
from sunset.interview.protocol import LoadedProtocol
from sunset.interview.transcript import PROTOCOL_FILE
from sunset.ledger import Ledger, Snapshot
from sunset.preservation.records import snapshot_files
from sunset.preservation.reuse import (
    content_differences,
    listing_differences,
    refuse_changed_weights,
)
from sunset.preservation.weights import SourceFile, WeightsReader
from sunset.runs.deprecation import continued, interview_of, package_in_force, runs_of

if TYPE_CHECKING:
    from sunset.runs.request import DeprecationRequest


def check_continuation(
    ledger: Ledger,
    request: DeprecationRequest,
    sources: Sequence[SourceFile],
    protocol: LoadedProtocol,
) -> None:
    """Refuse a request that cannot continue the model's deprecation.

    Raises:
        InputError: a new snapshot asked for with no package to replace; weights whose
            files differ by name or size from the deprecation's package (without a new
            snapshot asked for); more sessions with no interview to join; more sessions
            or a new package for an interview held under another protocol.
    """
    model_id = request.model_id
    with ledger.session() as db:
        deprecation = continued(db, model_id)
        package = package_in_force(db, model_id)
    if request.new_snapshot_reason and package is None:
        raise InputError(
            f"{model_id} has no deprecation package for --new-snapshot to replace: this run "
            "preserves the weights anyway, so leave --new-snapshot out."
        )
    if package is not None and not request.new_snapshot_reason:
        differences = listing_differences(snapshot_files(ledger, package.id), sources)
        refuse_changed_weights(package, request.weights, differences)
    if not (request.more_sessions or request.new_snapshot_reason):
        return
    run_ids = [run.id for run in runs_of(ledger, deprecation.id)] if deprecation else []
    with ledger.session() as db:
        interview = interview_of(db, run_ids)
    if request.more_sessions and not interview:
        raise InputError(
            f"--more-sessions adds to the interview an earlier run of {model_id}'s "
            "deprecation held, and none was held yet; ask for them with --sessions N."
        )
    if any(s.protocol_sha256 != protocol.sha256 for s in interview):
        held_under = interview[-1]
        joining = (
            "more sessions join that interview"
            if request.more_sessions
            else "the new package carries that interview"
        )
        raise InputError(
            f"The interview of {model_id}'s deprecation was held under protocol "
            f"{held_under.protocol_name} {held_under.protocol_version} (SHA-256 "
            f"{held_under.protocol_sha256[:12]}), but {protocol.origin} hashes to "
            f"{protocol.sha256[:12]}; {joining}, so pass its protocol with --protocol (the "
            f"package keeps it at {PROTOCOL_FILE})."
        )


def package_to_compare(ledger: Ledger, request: DeprecationRequest) -> Snapshot | None:
    """The package whose weights the request's must be byte for byte: its deprecation's,
    unless the release manager asked for a new one."""
    if request.new_snapshot_reason:
        return None
    with ledger.session() as db:
        return package_in_force(db, request.model_id)


def check_same_bytes(
    ledger: Ledger,
    package: Snapshot,
    request: DeprecationRequest,
    sources: Sequence[SourceFile],
    reader: WeightsReader,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Read and hash every weights file; refuse the run if any differs from the package's.

    Raises:
        InputError: naming the files whose bytes differ, and what to do.
    """
    differences = content_differences(snapshot_files(ledger, package.id), sources, reader, progress)
    refuse_changed_weights(package, request.weights, differences)
