"""What the audit tells the people on call: the payload of each event it emits, with a
``text`` line a chat webhook shows as is and the facts behind it.

* a fixity notice per package in which the run found damage: the model, and for each
  object its replica, what was found, and whether (and how) it was repaired;
* one could-not-audit notice per run that could not complete, naming each replica that
  did not answer, with its error;
* an all-clear per package healthy again.

Each names the audit run, and links its page in the Prefect UI when one is known.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sunset.ledger import Ledger, Snapshot
from sunset.preservation.audit import AuditSummary
from sunset.preservation.audit_checks import Damage
from sunset.preservation.outcomes import finding_kind
from sunset.preservation.repair import RepairSummary


@dataclass(frozen=True)
class RunLink:
    """The audit run a notice comes from: its ledger id, its name, its page if known."""

    audit_id: str
    name: str
    url: str | None

    def cite(self) -> str:
        return f"audit run {self.name}" + (f": {self.url}" if self.url else "")

    def fields(self) -> dict[str, Any]:
        return {"audit_id": self.audit_id, "audit_run": self.name, "run_url": self.url}


@dataclass(frozen=True)
class Notice:
    """One event's subject (a package, or none for the run as a whole) and payload."""

    snapshot_id: str | None
    model_id: str | None
    payload: dict[str, Any]


def fixity_notices(
    ledger: Ledger, damaged: Sequence[Damage], repairs: RepairSummary, run: RunLink
) -> list[Notice]:
    """One notice per package with damage found by this run, saying what became of it."""
    outcome = {r.damage.key: ("repaired", r.detail) for r in repairs.repaired}
    outcome |= {r.damage.key: ("not repaired yet", r.detail) for r in repairs.deferred}
    outcome |= {r.damage.key: ("NOT repaired", r.detail) for r in repairs.irreparable}
    by_package: dict[str, dict[tuple[str, str, str], Damage]] = {}
    for damage in damaged:
        by_package.setdefault(damage.snapshot_id, {}).setdefault(damage.key, damage)
    notices = []
    for snapshot_id, found in sorted(by_package.items()):
        model_id = _model_of(ledger, snapshot_id)
        objects: list[dict[str, Any]] = []
        for damage in found.values():
            verdict, how = outcome.get(damage.key, ("not repaired", "no repair was attempted"))
            objects.append(
                {
                    "replica": damage.replica,
                    "path": damage.path,
                    "found": str(finding_kind(damage.outcome)),
                    "outcome": damage.outcome,
                    "detail": damage.detail,
                    "repaired": verdict == "repaired",
                    "repair": how,
                    "line": (
                        f"{damage.path} on replica {damage.replica!r} "
                        f"{finding_kind(damage.outcome)} ({damage.outcome}: {damage.detail}); "
                        f"{verdict}: {how}"
                    ),
                }
            )
        text = (
            f"Sunset: fixity check failed for model {model_id} (package {snapshot_id}): "
            f"{' | '.join(o['line'] for o in objects)}. See {run.cite()}"
        )
        irreparable = [r.damage.describe() for r in repairs.irreparable]
        notices.append(
            Notice(
                snapshot_id,
                model_id,
                {
                    "text": text,
                    "model_id": model_id,
                    "snapshot_id": snapshot_id,
                    "objects": objects,
                    "irreparable": [d for d in irreparable if d.startswith(f"{snapshot_id} ")],
                }
                | run.fields(),
            )
        )
    return notices


def could_not_audit_notice(summary: AuditSummary, run: RunLink) -> Notice | None:
    """The run's one notice that it could not complete, or None if it did."""
    if summary.incomplete is None:
        return None
    return Notice(
        None,
        None,
        {
            "text": f"Sunset: {summary.incomplete} See {run.cite()}",
            "replicas": dict(summary.unreachable),
            "unchecked": summary.unchecked,
            "deferred": list(summary.deferred),
        }
        | run.fields(),
    )


def all_clear_notices(summary: AuditSummary, run: RunLink) -> list[Notice]:
    """One notice per package that had open damage or an incomplete audit and is now
    healthy again."""
    return [
        Notice(
            cleared.snapshot_id,
            cleared.model_id,
            {
                "text": f"{cleared.text(run.name)} See {run.cite()}",
                "model_id": cleared.model_id,
                "snapshot_id": cleared.snapshot_id,
                "open_since": cleared.open_since.isoformat(),
                "findings_closed": cleared.objects,
                "repaired": cleared.repaired,
            }
            | run.fields(),
        )
        for cleared in summary.all_clear
    ]


def _model_of(ledger: Ledger, snapshot_id: str) -> str:
    with ledger.session() as db:
        snapshot = db.get(Snapshot, snapshot_id)
    assert snapshot is not None
    return snapshot.model_id
