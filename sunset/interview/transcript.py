"""Transcripts: each session's turns as JSON Lines, kept in the package as they arrive.

The ledger is the record; the JSON Lines file is derived from it, one line per turn with
the API response body verbatim, so the package can always be rewritten from the ledger
and a rewrite of an unchanged session writes nothing. An answer that could not be decoded
(not valid UTF-8, or JSON naming no Unicode character) is kept beside its transcript as a
plain file of its exact bytes, which the transcript line names; ``README.txt`` tells a
reader without Sunset what each file is.
"""

from __future__ import annotations

import hashlib
import json
import threading

from sqlmodel import col, select

from sunset.interview.client import decode_body
from sunset.interview.protocol import LoadedProtocol
from sunset.ledger import InterviewSession, InterviewTurn, Ledger, SnapshotFile
from sunset.preservation.package import INTERVIEW_DIR
from sunset.preservation.replicas import ReplicatedStore
from sunset.preservation.seal import add_payload, write_tag_files
from sunset.runs.deprecation import package_of_run

PROTOCOL_FILE = f"{INTERVIEW_DIR}/protocol.yaml"
README_FILE = f"{INTERVIEW_DIR}/README.txt"

INTERVIEW_README = b"""\
The interview of the model before its retirement.

protocol.yaml
    The questions, as the interviewer read them (YAML).

session-<n>.jsonl
    One interview session: one JSON object per line (JSON Lines, UTF-8), one line per
    turn, in the order asked. "question" is what the model was asked; "response_body"
    is the body of the Messages API response exactly as received (a JSON message; its
    "content" holds the answer); "answer_text" is the answer's text taken from it.
    "flagged" names an answer to read with care: "max_tokens" (cut off at the length
    limit), "refusal", or "undecodable" (see raw/ below).

raw/session-<n>-turn-<seq>.bin
    The exact bytes of a response body that could not be decoded: not valid UTF-8, not
    a JSON message, or JSON whose strings name no Unicode character (a lone surrogate
    such as \\ud800) or a NUL. Its transcript line is flagged "undecodable", says what
    is wrong in "decode_problem", names this file (its path in the bag) in
    "response_raw_file" with its SHA-256 in "response_raw_sha256", and has an empty
    "answer_text"; "response_body" holds the body as text where it is UTF-8, else null.
    The bag's manifests hold the digests of these files like any other.
"""


def transcript_path(session_index: int) -> str:
    """Where session ``session_index``'s transcript lives inside the package."""
    return f"{INTERVIEW_DIR}/session-{session_index}.jsonl"


def raw_body_path(session_index: int, seq: int) -> str:
    """Where the exact bytes of an undecodable answer live inside the package."""
    return f"{INTERVIEW_DIR}/raw/session-{session_index}-turn-{seq}.bin"


def session_files(ledger: Ledger, session: InterviewSession) -> dict[str, bytes]:
    """The package files that hold a session: its transcript (empty before its first
    answer), the exact bytes of each answer that could not be decoded, and the
    interview's README."""
    turns = session_turns(ledger, session.id)
    files = {README_FILE: INTERVIEW_README} if turns else {}
    for turn in turns:
        if turn.response_raw is not None:
            files[raw_body_path(session.session_index, turn.seq)] = turn.response_raw
    files[transcript_path(session.session_index)] = _jsonl(session.session_index, turns)
    return files


def transcript_jsonl(ledger: Ledger, session_id: str) -> bytes:
    """A session's turns as JSON Lines, each with the API response body verbatim."""
    with ledger.session() as db:
        session = db.get(InterviewSession, session_id)
    assert session is not None, f"no interview session {session_id}"
    return _jsonl(session.session_index, session_turns(ledger, session_id))


def _jsonl(session_index: int, turns: list[InterviewTurn]) -> bytes:
    lines = []
    for turn in turns:
        record = turn.model_dump(
            mode="json", exclude={"id", "session_id", "decode_problem", "response_raw"}
        )
        if turn.response_raw is not None:
            record["response_body"] = decode_body(turn.response_raw).text
            record["decode_problem"] = turn.decode_problem
            record["response_raw_file"] = raw_body_path(session_index, turn.seq)
            record["response_raw_sha256"] = hashlib.sha256(turn.response_raw).hexdigest()
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
        """Rewrite the session's files if the ledger holds turns they do not have yet."""
        for path, data in session_files(self._ledger, session).items():
            if data:
                self._put(path, data)

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
