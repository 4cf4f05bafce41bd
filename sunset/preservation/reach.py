"""Reaching the replicas during an audit.

A request a replica does not answer (a refused or reset connection, a timeout, a 5xx) is
asked again after a wait that doubles each time. A replica that still does not answer,
or answers with an error that says nothing about the object (access denied, no such
bucket), is set aside for the rest of the run: one outage costs one round of waits, not
one per object, and the audit records what that replica holds as unknown, never as
damage.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Unreached:
    """A request a replica did not answer, and why: what it holds is not known."""

    replica: str
    error: str


class Reach:
    """Asks the replicas, with retries, and remembers the ones set aside this run.

    Args:
        delays: The waits before each next try of a request that found no answer.
        set_aside: Replicas already found unreachable earlier in the run, with the error.
        sleep: How to wait (tests pass a recorder).
    """

    def __init__(
        self,
        delays: tuple[float, ...],
        set_aside: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.delays = delays
        self.unreachable: dict[str, str] = dict(set_aside or {})
        self._sleep = sleep

    @classmethod
    def doubling(
        cls, retries: int, first_s: float, set_aside: Mapping[str, str] | None = None
    ) -> Reach:
        """Waits of ``first_s``, twice that, and so on, ``retries`` of them."""
        return cls(tuple(first_s * 2**n for n in range(retries)), set_aside)

    def reachable(self, replica: str) -> bool:
        return replica not in self.unreachable

    def set_aside(self, replica: str, error: str) -> Unreached:
        """Record ``replica`` as unreachable for the rest of the run (the first error stays)."""
        self.unreachable.setdefault(replica, error)
        return Unreached(replica, self.unreachable[replica])

    def ask(self, replica: str, request: Callable[[], T]) -> T | Unreached:
        """``request()``'s answer, or Unreached once ``replica`` is set aside.

        A transient failure is retried after each of the delays; any failure left at the
        end sets the replica aside.
        """
        if not self.reachable(replica):
            return Unreached(replica, self.unreachable[replica])
        try:
            return self.retrying(request)
        except STORE_ERRORS as exc:
            return self.set_aside(replica, f"{type(exc).__name__}: {exc}")

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
