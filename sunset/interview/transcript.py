"""Transcripts: each session's turns as JSON Lines, kept in the package as they arrive.

The ledger is the record; the JSON Lines file is derived from it, one line per turn with
the API response body verbatim, so the package can always be rewritten from the ledger
and a rewrite of an unchanged session writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import threading

from sqlmodel import col, select

from sunset.interview.protocol import LoadedProtocol
from sunset.ledger import InterviewSession, InterviewTurn, Ledger, SnapshotFile
from sunset.preservation.package import INTERVIEW_DIR
from sunset.preservation.replicas import ReplicatedStore
from sunset.preservation.seal import add_payload, write_tag_files
from sunset.runs.deprecation import package_of_run

PROTOCOL_FILE = f"{INTERVIEW_DIR}/protocol.yaml"


def transcript_path(session_index: int) -> str:
    """Where session ``session_index``'s transcript lives inside the package."""
    return f"{INTERVIEW_DIR}/session-{session_index}.jsonl"


def transcript_jsonl(ledger: Ledger, session_id: str) -> bytes:
    """A session's turns as JSON Lines, each with the API response body verbatim."""
    lines = []
    for turn in session_turns(ledger, session_id):
        record = turn.model_dump(mode="json", exclude={"id", "session_id"})
        lines.append(json.dumps(record, ensure_ascii=False, sort_keys=True))
    return ("\n".join(lines) + "\n").encode("utf-8") if lines else b""


def session_turns(ledger: Ledger, session_id: str) -> list[InterviewTurn]:
    """A session's recorded turns in the order they were asked."""
    with ledger.session() as db:
        return list(
            db.exec(
                select(InterviewTurn)
                .where(InterviewTurn.session_id == session_id)
                .order_by(col(InterviewTurn.seq))
            )
        )


class PackageTranscripts:
    """Keeps ``data/interview/`` of a run's package in step with the ledger, turn by turn.

    The bag's manifests are rewritten with every new file, so the package is a valid bag
    at every moment, also after a crash mid-interview; the report step seals it at the end.
    """

    def __init__(
        self, ledger: Ledger, store: ReplicatedStore, *, snapshot_id: str, organization: str
    ) -> None:
        self._ledger = ledger
        self._store = store
        self._snapshot_id = snapshot_id
        self._organization = organization
        # Sessions run in threads; the manifests must be written from one view of the files.
        self._lock = threading.Lock()

    @classmethod
    def for_run(
        cls, ledger: Ledger, store: ReplicatedStore, *, run_id: str, organization: str
    ) -> PackageTranscripts:
        """The transcripts in the package the run works on (its deprecation's)."""
        snapshot = package_of_run(ledger, run_id)
        return cls(ledger, store, snapshot_id=snapshot.id, organization=organization)

    def write_protocol(self, protocol: LoadedProtocol) -> None:
        """Put the protocol file, as read, beside the transcripts it produced."""
        self._put(PROTOCOL_FILE, protocol.source)

    def refresh(self, session: InterviewSession) -> None:
        """Rewrite the session's transcript if the ledger holds turns it does not have yet."""
        data = transcript_jsonl(self._ledger, session.id)
        if data:
            self._put(transcript_path(session.session_index), data)

    def _put(self, path: str, data: bytes) -> None:
        with self._lock:
            if self._stored_sha256(path) == hashlib.sha256(data).hexdigest():
                return
            add_payload(self._ledger, self._store, self._snapshot_id, path, data)
            write_tag_files(self._ledger, self._store, self._snapshot_id, self._organization)

    def _stored_sha256(self, path: str) -> str | None:
        with self._ledger.session() as db:
            stored = db.exec(
                select(SnapshotFile).where(
                    SnapshotFile.snapshot_id == self._snapshot_id, SnapshotFile.path == path
                )
            ).first()
        return stored.sha256 if stored else None
