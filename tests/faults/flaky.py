"""A call that fails a given number of times before it answers: for retry loops."""

from __future__ import annotations

ANSWER = "answer"


class Flaky:
    """A call that raises ``errors`` in turn, then returns ``ANSWER``; counts its calls."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return ANSWER
