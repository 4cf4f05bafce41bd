"""The preservation package: a BagIt bag (RFC 8493) that outlives Sunset.

A package is plain files under one prefix, readable with nothing but a text editor and a
hash tool::

    models/<model-id>/<snapshot-id>/
        bagit.txt                   the BagIt version and encoding
        bag-info.txt                who, what, when; Payload-Oxum
        manifest-sha256.txt         one line per payload file
        manifest-sha512.txt         (SHA-512 as RFC 8493 recommends)
        tagmanifest-sha256.txt      digests of the tag files above
        tagmanifest-sha512.txt
        data/weights/...            the weights directory, as it is
        data/interview/...          the interview transcripts (JSON Lines), a README,
                                    raw/: the exact bytes of undecodable answers
        data/fingerprint/...        greedy outputs of fixed prompts (models run locally)
        data/report/...             the post-deployment report

Everything here is pure: it turns digests into the tag files' bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

ALGORITHMS = ("sha256", "sha512")
BAGIT_TXT = b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"
WEIGHTS_DIR = "data/weights"
INTERVIEW_DIR = "data/interview"
REPORT_DIR = "data/report"
FINGERPRINT_PATH = "data/fingerprint/fingerprint.json"


@dataclass(frozen=True)
class PayloadEntry:
    """A payload file of the bag with its digests."""

    path: str  # relative to the bag root, starting with "data/"
    size: int
    sha256: str
    sha512: str

    def digest(self, algorithm: str) -> str:
        return str(getattr(self, algorithm))


def package_prefix(model_id: str, snapshot_id: str) -> str:
    """The stable key prefix of a package in its bucket."""
    return f"models/{model_id}/{snapshot_id}/"


def encode_path(path: str) -> str:
    """A path as a manifest line may hold it (RFC 8493 section 2.1.3)."""
    return path.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def payload_manifest(entries: Iterable[PayloadEntry], algorithm: str) -> bytes:
    """``manifest-<algorithm>.txt``: one "digest  path" line per payload file, sorted."""
    lines = sorted(f"{e.digest(algorithm)}  {encode_path(e.path)}\n" for e in entries)
    return "".join(lines).encode("utf-8")


def bag_info(
    *,
    model_id: str,
    display_name: str,
    organization: str,
    snapshot_id: str,
    snapshot_date: date,
    entries: Iterable[PayloadEntry],
) -> bytes:
    """``bag-info.txt`` with the metadata a reader needs in thirty years."""
    entries = list(entries)
    octets = sum(e.size for e in entries)
    fields = [
        ("Source-Organization", organization),
        ("Bagging-Date", snapshot_date.isoformat()),
        ("External-Identifier", snapshot_id),
        (
            "External-Description",
            f"Preserved weights of the AI model {display_name} "
            f"({model_id}), with its interview transcripts and post-deployment report.",
        ),
        ("Model-Identifier", model_id),
        ("Payload-Oxum", f"{octets}.{len(entries)}"),
        ("Bag-Software-Agent", "Sunset (https://pypi.org/project/sunset/)"),
    ]
    return "".join(f"{label}: {_one_line(value)}\n" for label, value in fields).encode("utf-8")


def tag_files(info: bytes, entries: Iterable[PayloadEntry]) -> dict[str, bytes]:
    """Every tag file of a bag, tag manifests last, covering the others."""
    entries = list(entries)
    files = {"bagit.txt": BAGIT_TXT, "bag-info.txt": info}
    for algorithm in ALGORITHMS:
        files[f"manifest-{algorithm}.txt"] = payload_manifest(entries, algorithm)
    covered = dict(files)
    for algorithm in ALGORITHMS:
        lines = sorted(
            f"{hashlib.new(algorithm, data).hexdigest()}  {name}\n"
            for name, data in covered.items()
        )
        files[f"tagmanifest-{algorithm}.txt"] = "".join(lines).encode("utf-8")
    return files


def manifest_digest(files: Mapping[str, bytes]) -> str:
    """The package's fingerprint: SHA-256 of its SHA-512 payload manifest."""
    return hashlib.sha256(files["manifest-sha512.txt"]).hexdigest()


def _one_line(value: str) -> str:
    return " ".join(value.split())
