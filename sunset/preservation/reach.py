"""Reaching the replicas during an audit.

A request that finds no answer it can use (a refused or reset connection, a timeout, a
5xx) is asked again after a wait that doubles each time. What it was about is then
unknown: the audit records it as such, never as damage.

A replica that does not answer at all (no HTTP response, after the retries), or that
leaves ``SET_ASIDE_AFTER`` requests in a row unanswered, is set aside for the rest of the
run: one outage costs one round of waits, not one per object. A replica that answers an
error for one object only (a store refusing to read a rotten chunk) is not: that object
stays unknown and the others are still checked.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import botocore.exceptions

from sunset.errors import is_transient

T = TypeVar("T")

# What a request to a store can fail with, short of an answer about the object.
STORE_ERRORS = (
    botocore.exceptions.ClientError,
    botocore.exceptions.BotoCoreError,
    ConnectionError,
    TimeoutError,
)
SET_ASIDE_AFTER = 3


@dataclass(frozen=True)
class Unreached:
    """A request a replica did not answer, and why: what it was about is not known."""

    replica: str
    error: str


@dataclass(frozen=True)
class Unanswered:
    """What a run's steps got no answer to, handed from each step to the next."""

    set_aside: dict[str, str] = field(default_factory=dict)  # not asked again this run
    errors: dict[str, str] = field(default_factory=dict)  # each replica's first unanswered


class Reach:
    """Asks the replicas, with retries, and remembers what went unanswered this run.

    Args:
        delays: The waits before each next try of a request that found no answer.
        earlier: What the steps before this one got no answer to.
        sleep: How to wait (tests pass a recorder).
    """

    def __init__(
        self,
        delays: tuple[float, ...],
        earlier: Unanswered | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.delays = delays
        self._set_aside = dict(earlier.set_aside) if earlier else {}
        self._errors = dict(earlier.errors) if earlier else {}
        self._in_a_row: Counter[str] = Counter()
        self._sleep = sleep

    @classmethod
    def doubling(cls, retries: int, first_s: float, earlier: Unanswered | None = None) -> Reach:
        """Waits of ``first_s``, twice that, and so on, ``retries`` of them."""
        return cls(tuple(first_s * 2**n for n in range(retries)), earlier)

    @property
    def unanswered(self) -> Unanswered:
        return Unanswered(dict(self._set_aside), dict(self._errors))

    def reachable(self, replica: str) -> bool:
        return replica not in self._set_aside

    def set_aside(self, replica: str, error: str) -> Unreached:
        """Ask ``replica`` nothing more this run (the first error stays)."""
        self._set_aside.setdefault(replica, error)
        return self._unreached(replica, self._set_aside[replica])

    def not_configured(self, replica: str) -> Unreached:
        """Set aside a replica the ledger names and the settings no longer do."""
        return self.set_aside(replica, f"replica {replica} is not configured (SUNSET_REPLICAS)")

    def ask(self, replica: str, request: Callable[[], T]) -> T | Unreached:
        """``request()``'s answer, or Unreached (see the module docstring)."""
        if not self.reachable(replica):
            return Unreached(replica, self._set_aside[replica])
        try:
            answer = self.retrying(request)
        except STORE_ERRORS as exc:
            error = f"{type(exc).__name__}: {exc}"
            self._in_a_row[replica] += 1
            no_response = not isinstance(exc, botocore.exceptions.ClientError)
            if no_response or self._in_a_row[replica] >= SET_ASIDE_AFTER:
                return self.set_aside(replica, error)
            return self._unreached(replica, error)
        self._in_a_row[replica] = 0
        return answer

    def retrying(self, request: Callable[[], T]) -> T:
        """``request()``, tried again after each delay while it fails transiently; the
        last failure is raised. For requests no single replica answers for (a repair
        reads one replica and writes another)."""
        for delay in self.delays:
            try:
                return request()
            except STORE_ERRORS as exc:
                if not is_transient(exc):
                    raise
            self._sleep(delay)
        return request()

    def _unreached(self, replica: str, error: str) -> Unreached:
        self._errors.setdefault(replica, error)
        return Unreached(replica, error)
