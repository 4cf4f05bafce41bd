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

# The digests a deep check re-hashes every byte with and compares with the record. By
# default SHA-256 (the ledger's and manifest-sha256.txt's) and CRC64NVME (the store's
# full-object checksum): one collision-resistant digest of every byte already proves the
# bytes are the snapshot's, and SHA-512 would cost more than both. SHA-512 (the
# ledger's and manifest-sha512.txt's) too when every digest is asked for.
DEEP_DIGESTS = ("sha256", "crc64nvme")
ALL_DIGESTS = ("sha256", "sha512", "crc64nvme")
_DIGEST_NAMES = {"sha256": "SHA-256", "sha512": "SHA-512", "crc64nvme": "CRC64NVME"}


def digests_rehashed(all_digests: bool) -> tuple[str, ...]:
    """The digests a deep check compares: the default two, or every recorded one."""
    return ALL_DIGESTS if all_digests else DEEP_DIGESTS


def digest_names(digests: tuple[str, ...]) -> str:
    """The digests as a reader names them: "SHA-256 and CRC64NVME"."""
    names = [_DIGEST_NAMES[d] for d in digests]
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]


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
