"""The serving-status state machine: which moves exist, and which kind of run makes them.

    from         to                     made by
    active       deprecated, retired    a deprecation run
    deprecated   retired                a deprecation run
    retired      active, on_request     a reinstatement run
    on_request   active                 a reinstatement run
    on_request   retired                a deprecation run (withdrawn again)

Whether an existing move is allowed *now* (notices out, package verified, report sealed,
files restored) is for the guards in ``sunset.serving.guards``.
"""

from __future__ import annotations

from sunset.errors import GuardRefused
from sunset.ledger import ServingStatus

ACTIVE = ServingStatus.ACTIVE
DEPRECATED = ServingStatus.DEPRECATED
RETIRED = ServingStatus.RETIRED
ON_REQUEST = ServingStatus.ON_REQUEST

DEPRECATION = "deprecation"
REINSTATEMENT = "reinstatement"

TRANSITIONS: dict[ServingStatus, frozenset[ServingStatus]] = {
    ACTIVE: frozenset({DEPRECATED, RETIRED}),
    DEPRECATED: frozenset({RETIRED}),
    RETIRED: frozenset({ACTIVE, ON_REQUEST}),
    ON_REQUEST: frozenset({ACTIVE, RETIRED}),
}

TARGETS_BY_KIND: dict[str, frozenset[ServingStatus]] = {
    DEPRECATION: frozenset({DEPRECATED, RETIRED}),
    REINSTATEMENT: frozenset({ACTIVE, ON_REQUEST}),
}


def check_move(current: ServingStatus, target: ServingStatus, kind: str) -> None:
    """Refuse a move the state machine does not have, or one this kind of run may not make.

    Raises:
        GuardRefused: naming the two statuses and the moves that do exist from ``current``.
    """
    if target not in TARGETS_BY_KIND[kind]:
        raise GuardRefused(
            f"A {kind} run cannot make a model {target.value}; it can only make it "
            f"{' or '.join(sorted(s.value for s in TARGETS_BY_KIND[kind]))}."
        )
    if target not in TRANSITIONS[current]:
        possible = sorted(s.value for s in TRANSITIONS[current])
        raise GuardRefused(
            f"A model that is {current.value} cannot become {target.value}; from "
            f"{current.value} it can only become {' or '.join(possible)}."
        )
