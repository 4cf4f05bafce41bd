"""What the audit shows outside the ledger (its events on the Prefect server, its run's
artifact, `sunset audit`), and what the ledger says each must show, worked out here
independently of the code that renders them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

from prefect import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterKey,
    FlowRunFilter,
    FlowRunFilterId,
)
from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter
from prefect.events.worker import EventsWorker
from sqlmodel import select

from sunset.ledger import AuditFinding, FindingKind, FixityEvent, PreservedObject
from sunset_dev.example_model import EXAMPLE_MODEL_ID
from tasks.audit import ARTIFACT_KEY
from tests.conftest import Site


def emitted(name: str, resource_id: str, *, at_least: int = 1) -> list[Any]:
    """The events ``name`` about ``resource_id`` the Prefect server holds, once at least
    ``at_least`` arrived, and a moment after, for any that would follow."""
    EventsWorker.drain_all()
    wanted = EventFilter(
        event=EventNameFilter(name=[name]), resource=EventResourceFilter(id=[resource_id])
    )
    deadline = time.monotonic() + 30
    with get_client(sync_client=True) as client:
        while len(client.read_events(filter=wanted, limit=50).events) < at_least:
            assert time.monotonic() < deadline, f"no {name} event about {resource_id}"
            time.sleep(0.5)
        time.sleep(1.5)
        return list(client.read_events(filter=wanted, limit=50).events)


def artifact_table(flow_run_id: str) -> tuple[dict[tuple[str, str], list[int]], str]:
    """The audit run's artifact: its table's counts by model and replica, and its text."""
    with get_client(sync_client=True) as client:
        [artifact] = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[ARTIFACT_KEY])),
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
        )
    text = str(artifact.data)
    rows = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 9 and cells[2].isdigit():
            rows[(cells[0], cells[1])] = [int(cell) for cell in cells[2:]]
    return rows, text


def counted_in_ledger(site: Site, audit_id: str) -> dict[tuple[str, str], list[int]]:
    """Per replica, what the ledger says the run did, in the artifact's columns: objects
    fast- and deep-checked, bytes re-read, objects damaged, repaired, locks extended,
    objects it could not check."""
    by_replica: dict[str, dict[str, set[str]]] = {}
    read: dict[str, int] = {}
    with site.ledger.session() as db:
        checks = db.exec(select(FixityEvent).where(FixityEvent.audit_id == audit_id)).all()
    for event in checks:
        replica = event.replica or ""
        columns = by_replica.setdefault(replica, {})
        if event.method in ("fast", "deep"):
            columns.setdefault(event.method, set()).add(event.path)
            if event.outcome in ("mismatch", "unlocked", "missing", "shadowed"):
                columns.setdefault("damaged", set()).add(event.path)
        elif event.outcome == "ok":
            columns.setdefault(event.method, set()).add(event.path)
        if event.method == "deep":
            read[replica] = read.get(replica, 0) + event.bytes_read
    with site.ledger.session() as db:
        unknown = db.exec(
            select(AuditFinding).where(
                AuditFinding.last_audit_id == audit_id,
                AuditFinding.kind == FindingKind.UNREACHABLE,
            )
        ).all()
    for finding in unknown:
        by_replica.setdefault(finding.replica, {}).setdefault("unreachable", set()).add(
            finding.path
        )
    order = ("fast", "deep", "read", "damaged", "repair", "retention", "unreachable")
    return {
        (EXAMPLE_MODEL_ID, replica): [
            read.get(replica, 0) if column == "read" else len(columns.get(column, set()))
            for column in order
        ]
        for replica, columns in by_replica.items()
    }


def sunset_cli(*args: str) -> list[str]:
    """A `sunset` command at 80 columns, in a process of its own: the lines it printed."""
    done = subprocess.run(
        [sys.executable, "-m", "sunset.cli", *args],
        env=os.environ | {"COLUMNS": "80"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, done.stdout
    return lines


def sunset_audit() -> list[list[str]]:
    """`sunset audit`: each line's cells."""
    return [[cell.strip() for cell in line.split("\u2502")] for line in sunset_cli("audit")]


def health_rows_in_ledger(site: Site) -> list[list[str]]:
    """The rows `sunset audit` must show for the one package, worked out from the ledger:
    replica, the day since which every object passed a fast and a deep check, the share
    of bytes deep-checked, what is open, and the earliest lock."""
    with site.ledger.session() as db:
        objects = db.exec(select(PreservedObject)).all()
        passed = db.exec(select(FixityEvent).where(FixityEvent.outcome == "ok")).all()
        still_open = db.exec(select(AuditFinding).where(AuditFinding.closed_at == None)).all()  # noqa: E711
    last_passed: dict[tuple[str, str, str], Any] = {}
    for event in passed:
        key = (event.replica or "", event.path, event.method)
        last_passed[key] = max(last_passed.get(key, event.checked_at), event.checked_at)
    rows = []
    for replica in sorted({o.replica for o in objects}):
        mine = [o for o in objects if o.replica == replica]
        since = {
            method: [
                moment
                if (moment := last_passed.get((replica, o.path, method)))
                and (moment >= o.stored_at)
                else None
                for o in mine
            ]
            for method in ("fast", "deep")
        }
        days = {
            method: "never" if None in moments else f"{min(moments):%Y-%m-%d}"  # type: ignore[type-var]
            for method, moments in since.items()
        }
        covered = sum(o.size for o, moment in zip(mine, since["deep"], strict=True) if moment)
        kinds = [f.kind for f in still_open if f.replica == replica]
        damaged = len([k for k in kinds if k != FindingKind.UNREACHABLE])
        unchecked = len(kinds) - damaged
        opened = [
            f"{damaged} damaged" if damaged else "",
            f"{unchecked} unchecked" if unchecked else "",
        ]
        rows.append(
            [
                replica,
                days["fast"],
                days["deep"],
                f"{100 * covered // sum(o.size for o in mine)}%",
                ", ".join(part for part in opened if part) or "none",
                f"{min(o.retain_until for o in mine):%Y-%m-%d}",
            ]
        )
    return rows
