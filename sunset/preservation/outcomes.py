"""The words of a fixity check, as the ledger's ``FixityEvent`` rows hold them: the check
methods, the outcomes, and what each outcome proves about the object.

Apart from the checks themselves (``fixity.py``, which talk to the store), so that what
reads the ledger alone (health, the status record) loads no S3 client.
"""

from __future__ import annotations

from sunset.ledger import FindingKind

FAST = "fast"
DEEP = "deep"
REPAIR = "repair"
RETENTION = "retention"

OK = "ok"
MISSING = "missing"  # the recorded version is gone
MISMATCH = "mismatch"  # its size or a digest differs from the record
SHADOWED = "shadowed"  # a newer version or a delete marker stands in front of it
UNLOCKED = "unlocked"  # its lock is absent, not COMPLIANCE, or ends too early
UNREADABLE = "unreadable"  # the store answered with an error instead of the object
UNREACHABLE = "unreachable"  # the store did not answer, or the replica is not configured
FAILED = "failed"  # a repair or a retention extension did not succeed

# What a check's outcome proves about the object: only damage and absence are damage;
# a store that did not answer, or answered with an error, proved nothing either way.
_KINDS = {
    MISMATCH: FindingKind.DAMAGED,
    UNLOCKED: FindingKind.DAMAGED,
    MISSING: FindingKind.MISSING,
    SHADOWED: FindingKind.MISSING,
}


def proves_damage(outcome: str) -> bool:
    """The outcome proves the object damaged or missing (not merely unknown)."""
    return finding_kind(outcome) in (FindingKind.DAMAGED, FindingKind.MISSING)


def finding_kind(outcome: str) -> FindingKind | None:
    """What a check's outcome proves: damaged, missing, unreachable (nothing is known),
    or None for ok."""
    if outcome == OK:
        return None
    return _KINDS.get(outcome, FindingKind.UNREACHABLE)
