"""The serving-status state machine: which moves exist, and which kind of run makes them.

    from         to                     made by
    active       deprecated, retired    a deprecation run
    deprecated   retired                a deprecation run
    deprecated   active                 a cancellation run (the deprecation is called off)
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
CANCELLATION = "cancellation"

# kind of run -> from -> the statuses it may move a model to
MOVES: dict[str, dict[ServingStatus, frozenset[ServingStatus]]] = {
    DEPRECATION: {
        ACTIVE: frozenset({DEPRECATED, RETIRED}),
        DEPRECATED: frozenset({RETIRED}),
        ON_REQUEST: frozenset({RETIRED}),
    },
    REINSTATEMENT: {RETIRED: frozenset({ACTIVE, ON_REQUEST}), ON_REQUEST: frozenset({ACTIVE})},
    CANCELLATION: {DEPRECATED: frozenset({ACTIVE})},
}

# Every move any kind of run makes, and every status each kind can reach.
TRANSITIONS: dict[ServingStatus, frozenset[ServingStatus]] = {
    status: frozenset().union(*(moves.get(status, frozenset()) for moves in MOVES.values()))
    for status in ServingStatus
}
TARGETS_BY_KIND: dict[str, frozenset[ServingStatus]] = {
    kind: frozenset().union(*moves.values()) for kind, moves in MOVES.items()
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
    possible = MOVES[kind].get(current, frozenset())
    if target not in possible:
        others = [other for other, moves in MOVES.items() if current in moves]
        raise GuardRefused(
            f"A model that is {current.value} cannot become {target.value} by a {kind} run; "
            + (
                f"from {current.value} it can only become "
                f"{' or '.join(sorted(s.value for s in possible))}."
                if possible
                else f"from {current.value} only a {' or a '.join(others)} run moves it."
            )
        )
