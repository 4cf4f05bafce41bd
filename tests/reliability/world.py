"""What a test can observe from outside a run: the ledger, the bucket and the mailbox.

Every reliability test asserts on these, never on a function's return value alone, so the
tests keep holding as the features behind them grow.
"""

from __future__ import annotations

import hashlib
import json
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bagit
import sqlalchemy as sa
from sqlmodel import SQLModel, col, select

from sunset.interview.confirmation import REPLY_FORMAT
from sunset.interview.finder import FINDER_INSTRUCTIONS
from sunset.interview.protocol import load_protocol
from sunset.ledger import (
    CatalogModel,
    Delivery,
    InterviewSession,
    InterviewTurn,
    Ledger,
    LeftoverVersion,
    PreservedObject,
    Report,
    Snapshot,
    SnapshotFile,
    StatusTransition,
)
from sunset.preservation.store import ObjectStore
from sunset.report.reply import REPLY_INSTRUCTIONS
from sunset_dev.devstack import read_mailbox
from sunset_dev.standin_responder import StandInResponder

WEIGHTS = "data/weights/"
PROTOCOL = load_protocol().protocol
PROTOCOL_TURNS = PROTOCOL.turns()
QUESTION_IDS = {turn.text: turn.question_id for turn in PROTOCOL_TURNS}
assert PROTOCOL.confirmation is not None
CONFIRMATION_ID = PROTOCOL.confirmation.id
#: Every turn a session records, in order: the questions, then the confirmation turn.
TURN_IDS = [turn.question_id for turn in PROTOCOL_TURNS] + [CONFIRMATION_ID]


@dataclass
class World:
    """One test's ledger, bucket (reached directly, never through a fault proxy) and mail."""

    ledger: Ledger
    store: ObjectStore
    maildir: Path
    domain: str

    # ------------------------------------------------------------------ mail

    def mails_by_recipient(self) -> Counter[str]:
        """How many messages each recipient at this world's domain has received."""
        received: Counter[str] = Counter()
        for message in read_mailbox(self.maildir):
            for rcpt in message.get_all("X-Sunset-Envelope-To") or []:
                if rcpt.endswith("@" + self.domain):
                    received[rcpt] += 1
        return received

    # ------------------------------------------------------------------ bucket

    def object_versions(self) -> list[tuple[str, str, str]]:
        return object_versions(self.store)

    def package(self, model_id: str) -> dict[str, bytes]:
        """The current objects of the model's newest package, by path inside the bag."""
        with self.ledger.session() as db:
            snapshot = db.exec(
                select(Snapshot)
                .where(Snapshot.model_id == model_id)
                .order_by(col(Snapshot.created_at).desc())
            ).first()
        assert snapshot is not None, f"no snapshot of {model_id}"
        listing = self.store.client.list_objects_v2(
            Bucket=self.store.bucket, Prefix=snapshot.prefix
        )
        return {
            item["Key"].removeprefix(snapshot.prefix): self.store.get_bytes(item["Key"])
            for item in listing.get("Contents", [])
        }

    # ------------------------------------------------------------------ ledger

    def rows(self, table: type[SQLModel]) -> list[Any]:
        with self.ledger.session() as db:
            return list(db.exec(select(table)))

    def fingerprint(self) -> dict[str, Any]:
        """Everything that could change: every ledger row, object version and message."""
        return {
            "ledger": ledger_rows(self.ledger),
            "objects": self.object_versions(),
            "mail": sorted(self.mails_by_recipient().items()),
        }

    def answers(self, model_id: str) -> dict[tuple[int, str], str]:
        """Every recorded answer of the model's interviews, by (session, question id)."""
        with self.ledger.session() as db:
            found = db.exec(
                select(InterviewSession.session_index, InterviewTurn)
                .join(InterviewTurn, col(InterviewTurn.session_id) == col(InterviewSession.id))
                .where(InterviewSession.model_id == model_id)
            ).all()
        return {(index, turn.question_id): turn.answer_text for index, turn in found}

    def broken_promises(self) -> list[str]:
        """What the ledger claims but the bucket or the mailbox does not bear out.

        Holds at every moment, including right after a crash: a record is written only
        once the thing it records has happened.
        """
        problems: list[str] = []
        with self.ledger.session() as db:
            snapshots = {s.id: s for s in db.exec(select(Snapshot))}
            files = db.exec(select(SnapshotFile)).all()
            sent = db.exec(select(Delivery).where(Delivery.state == "sent")).all()
            turns = db.exec(select(InterviewTurn)).all()
            reports = db.exec(select(Report)).all()
            transitions = db.exec(select(StatusTransition)).all()
            models = {m.id: m for m in db.exec(select(CatalogModel))}
        for row in files:
            key = snapshots[row.snapshot_id].prefix + row.path
            stored = self.store.head(key, row.version_id)
            if stored is None or (stored.size, stored.crc64nvme) != (row.size, row.crc64nvme):
                problems.append(f"snapshot file {key} recorded but not stored as recorded")
        mails = self.mails_by_recipient()
        for delivery in sent:
            if delivery.recipient.endswith("@" + self.domain) and not mails[delivery.recipient]:
                problems.append(f"delivery to {delivery.recipient} recorded sent, no mail")
        by_session: dict[str, list[int]] = {}
        for turn in turns:
            by_session.setdefault(turn.session_id, []).append(turn.seq)
            json.loads(turn.response_body)  # a turn is only ever recorded whole
        for session_id, seqs in by_session.items():
            if sorted(seqs) != list(range(1, len(seqs) + 1)):
                problems.append(f"interview session {session_id} has turns {sorted(seqs)}")
        for report in reports:
            body = self.store.get_bytes(report.key) if self.store.head(report.key) else None
            if body is None:
                problems.append(f"report v{report.version} recorded but {report.key} missing")
        per_model = Counter(t.model_id for t in transitions)
        for model_id, model in models.items():
            last = [t for t in transitions if t.model_id == model_id]
            expected = last[-1].to_status if last else "active"
            if model.serving_status != expected:
                problems.append(f"{model_id} is {model.serving_status}, transitions say {expected}")
        problems += [f"{m} has {n} transitions" for m, n in per_model.items() if n > 2]
        return problems

    def unexplained_weights_versions(self) -> list[str]:
        """Versions of a package's weights in the bucket that the ledger neither records
        as the package's nor names as a leftover: what a kill could leave silently."""
        with self.ledger.session() as db:
            snapshots = db.exec(select(Snapshot)).all()
            held = db.exec(
                select(Snapshot.prefix, PreservedObject.path, PreservedObject.version_id)
                .join(Snapshot, col(Snapshot.id) == col(PreservedObject.snapshot_id))
                .where(PreservedObject.bucket == self.store.bucket)
            ).all()
            named = db.exec(
                select(LeftoverVersion.key, LeftoverVersion.version_id).where(
                    LeftoverVersion.bucket == self.store.bucket
                )
            ).all()
        known = {(prefix + path, version) for prefix, path, version in held} | set(named)
        return [
            f"{version.key} version {version.version_id}"
            for snapshot in snapshots
            for version in self.store.list_versions(f"{snapshot.prefix}data/weights/")
            if not version.delete_marker and (version.key, version.version_id) not in known
        ]


def object_versions(store: ObjectStore) -> list[tuple[str, str, str]]:
    """Every version of every object in a bucket: key, version id, ETag."""
    listing = store.client.list_object_versions(Bucket=store.bucket)
    return sorted(
        (v["Key"], v.get("VersionId", ""), v.get("ETag", "")) for v in listing.get("Versions", [])
    )


def ledger_rows(ledger: Ledger) -> dict[str, list[str]]:
    """Every row of every ledger table, in a stable order."""
    tables: dict[str, list[str]] = {}
    with ledger.engine.connect() as connection:
        for name in sorted(sa.inspect(connection).get_table_names()):
            if name != "alembic_version":
                rows = connection.execute(sa.text(f'SELECT * FROM "{name}"')).all()
                tables[name] = sorted(repr(tuple(row)) for row in rows)
    return tables


def standin_requests(base_url: str, since: float, model_id: str) -> list[dict[str, Any]]:
    """The Messages stand-in's log of the interview's requests for ``model_id`` received
    after ``since`` (the preference finder's requests about the answers and the report's
    request for a reply are not turns)."""
    with urllib.request.urlopen(f"{base_url}/_standin/requests", timeout=10) as response:
        log = json.loads(response.read())
    return [
        entry
        for entry in log
        if entry["received_unix"] >= since
        and isinstance(entry["json"], dict)
        and entry["json"].get("model") == model_id
        and entry["json"].get("system") not in (FINDER_INSTRUCTIONS, REPLY_INSTRUCTIONS)
    ]


def question_of(entry: dict[str, Any]) -> str:
    """The protocol question id a logged Messages request asked (the confirmation's too)."""
    content: str = entry["json"]["messages"][-1]["content"]
    return CONFIRMATION_ID if REPLY_FORMAT in content else QUESTION_IDS[content]


def standin_answer(question: str) -> str:
    """What the stand-in answers to a turn's question, complete."""
    if REPLY_FORMAT in question:
        return StandInResponder.confirm_all(question)
    return StandInResponder.compose(question)


def standin(base_url: str, method: str, path: str, body: Any = None) -> Any:
    """Call the stand-in's control endpoints (fault queue, request log)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{base_url}{path}", data=data, method=method, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def manifest_lines(package: dict[str, bytes], algorithm: str, prefix: str = WEIGHTS) -> list[str]:
    """The lines of a payload manifest that cover ``prefix``."""
    text = package[f"manifest-{algorithm}.txt"].decode()
    return sorted(line for line in text.splitlines() if line.split("  ", 1)[1].startswith(prefix))


def weights_of(package: dict[str, bytes]) -> dict[str, str]:
    """The SHA-256 of every weights object of a package, by path."""
    return {
        path: hashlib.sha256(data).hexdigest()
        for path, data in package.items()
        if path.startswith(WEIGHTS)
    }


def source_weights(directory: Path) -> dict[str, str]:
    """The SHA-256 of every file of a weights directory, by its path inside a package."""
    return {
        WEIGHTS + str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def standin_faults(entries: list[dict[str, Any]]) -> Counter[str]:
    """The faults the stand-in really served, by kind (a zero delay is no fault)."""
    served: Counter[str] = Counter()
    for entry in entries:
        fault = entry.get("fault") or {}
        if "status" in fault:
            served[f"messages {fault['status']}"] += 1
        elif fault.get("midstream_error"):
            served["messages mid-stream"] += 1
        elif "body_base64" in fault:
            served["messages undecodable body"] += 1
        elif fault.get("delay"):
            served["messages delay"] += 1
    return served


def answered_once(entries: list[dict[str, Any]]) -> dict[str, int]:
    """Per protocol turn, how many requests the stand-in answered with 200."""
    answered: Counter[str] = Counter()
    for entry in entries:
        if entry["status"] == 200:
            answered[question_of(entry)] += 1
    return {question_id: answered[question_id] for question_id in TURN_IDS}


def bag_problems(package: dict[str, bytes], scratch: Path) -> list[str]:
    """Check a package as a BagIt 1.0 bag (RFC 8493); every problem found, or none.

    The Library of Congress validator (bagit-python) checks it too, unless a path holds a
    '%': RFC 8493 section 2.1.3 percent-encodes it in manifests (as Sunset does), and
    bagit-python 1.9 does not decode it (LibraryOfCongress/bagit-python#157).
    """
    problems: list[str] = []
    payload = {path for path in package if path.startswith("data/")}
    for algorithm in ("sha256", "sha512"):
        listed = set()
        for line in package[f"manifest-{algorithm}.txt"].decode().splitlines():
            digest, encoded = line.split("  ", 1)
            path = encoded.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")
            listed.add(path)
            if path not in package:
                problems.append(f"{path} is in manifest-{algorithm}.txt but not stored")
            elif hashlib.new(algorithm, package[path]).hexdigest() != digest:
                problems.append(f"{path} does not match manifest-{algorithm}.txt")
        problems += [
            f"{path} is missing from manifest-{algorithm}.txt" for path in payload - listed
        ]
        for line in package[f"tagmanifest-{algorithm}.txt"].decode().splitlines():
            digest, name = line.split("  ", 1)
            if hashlib.new(algorithm, package.get(name, b"")).hexdigest() != digest:
                problems.append(f"tag file {name} does not match tagmanifest-{algorithm}.txt")
    oxum = f"{sum(len(package[p]) for p in payload)}.{len(payload)}"
    if f"Payload-Oxum: {oxum}" not in package["bag-info.txt"].decode():
        problems.append(f"bag-info.txt does not give Payload-Oxum {oxum}")
    if not problems and not any("%" in path for path in package):
        for path, data in package.items():
            (scratch / path).parent.mkdir(parents=True, exist_ok=True)
            (scratch / path).write_bytes(data)
        try:
            bagit.Bag(str(scratch)).validate()
        except bagit.BagError as exc:
            problems.append(f"bagit-python: {exc}")
    return problems
