"""The suite's tally: what was thrown at the system, and what was lost (must be nothing).

Tests add what they really did, counted from the fault servers' own records (the proxy's
counters, the stand-in's request log, the SMTP server's log), not from what they meant to
do. ``tests/conftest.py`` prints the table at the end of the run, with what each xdist
worker counted sent to the controller.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Tally:
    faults: Counter[str] = field(default_factory=Counter)
    crashes: int = 0
    bad_inputs: int = 0
    data_lost: int = 0
    unfinished_reruns: int = 0  # a killed run, started again, that did not get to its end
    # At the end of a crash test: a notice of unknown fate, neither named in the run's
    # outcome nor decided; and those the test decided, as a release manager would.
    undecided_unknown_deliveries: int = 0
    deliveries_decided: int = 0

    def fault(self, kind: str, count: int = 1) -> None:
        self.faults[kind] += count

    def lost(self, problems: list[str] | int) -> None:
        self.data_lost += problems if isinstance(problems, int) else len(problems)

    def rows(self) -> list[tuple[str, str]]:
        detail = ", ".join(f"{kind} {n}" for kind, n in sorted(self.faults.items()) if n)
        return [
            (
                "faults injected",
                f"{sum(self.faults.values())}" + (f" ({detail})" if detail else ""),
            ),
            ("crashes survived", str(self.crashes)),
            ("bad inputs tried", str(self.bad_inputs)),
            ("data lost", str(self.data_lost)),
            ("reruns that did not finish", str(self.unfinished_reruns)),
            (
                "deliveries left unknown without a decision",
                f"{self.undecided_unknown_deliveries}"
                + (
                    f" ({self.deliveries_decided} decided by hand)"
                    if self.deliveries_decided
                    else ""
                ),
            ),
        ]

    def as_dict(self) -> dict[str, object]:
        return {
            "faults": dict(self.faults),
            "crashes": self.crashes,
            "bad_inputs": self.bad_inputs,
            "data_lost": self.data_lost,
            "unfinished_reruns": self.unfinished_reruns,
            "undecided_unknown_deliveries": self.undecided_unknown_deliveries,
            "deliveries_decided": self.deliveries_decided,
        }

    def add(self, counted: dict[str, Any]) -> None:
        """Add what another process counted (``as_dict`` of its tally)."""
        self.faults.update(counted["faults"])
        self.crashes += counted["crashes"]
        self.bad_inputs += counted["bad_inputs"]
        self.data_lost += counted["data_lost"]
        self.unfinished_reruns += counted["unfinished_reruns"]
        self.undecided_unknown_deliveries += counted["undecided_unknown_deliveries"]
        self.deliveries_decided += counted["deliveries_decided"]

    def empty(self) -> bool:
        return not (
            self.faults
            or self.crashes
            or self.bad_inputs
            or self.data_lost
            or self.unfinished_reruns
            or self.undecided_unknown_deliveries
            or self.deliveries_decided
        )


TALLY = Tally()
