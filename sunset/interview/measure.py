"""How well a preference finder does on answers labelled by hand: precision and recall.

A found quote matches an expected one when they overlap by at least half of each, so a
finder that quotes the whole sentence around a labelled clause, or the main clause of a
labelled sentence, is credited, and one that quotes a whole paragraph is not. Each
expected quote is matched at most once, in order, to the first found quote it matches.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Span = tuple[int, int]


@dataclass(frozen=True)
class LabelledAnswer:
    """An answer and the exact quotes of the preferences it states (none for a look-alike)."""

    id: str
    answer: str
    expected: tuple[str, ...]

    def expected_spans(self) -> list[Span]:
        """Where each expected quote is in the answer; a repeated quote at its next place.

        Raises:
            ValueError: an expected quote is not in the answer.
        """
        spans: list[Span] = []
        for quote in self.expected:
            start = self.answer.find(quote)
            while start >= 0 and (start, start + len(quote)) in spans:
                start = self.answer.find(quote, start + 1)
            if start < 0 or not quote:
                raise ValueError(f"{self.id}: expected quote {quote!r} is not in the answer")
            spans.append((start, start + len(quote)))
        return spans


@dataclass(frozen=True)
class FinderScore:
    """Quotes found, quotes expected, and how many of them matched."""

    found: int
    expected: int
    matched: int

    @property
    def precision(self) -> float:
        """The share of found quotes that were expected (1.0 when nothing was found)."""
        return self.matched / self.found if self.found else 1.0

    @property
    def recall(self) -> float:
        """The share of expected quotes that were found (1.0 when nothing was expected)."""
        return self.matched / self.expected if self.expected else 1.0


def spans_match(found: Span, expected: Span) -> bool:
    """Whether two spans overlap by at least half of each."""
    overlap = min(found[1], expected[1]) - max(found[0], expected[0])
    return overlap > 0 and 2 * overlap >= max(found[1] - found[0], expected[1] - expected[0])


def score_finder(results: Iterable[tuple[LabelledAnswer, Sequence[Span]]]) -> FinderScore:
    """Score a finder on labelled answers, given the spans it found in each."""
    found = expected = matched = 0
    for labelled, spans in results:
        unmatched = list(spans)
        wanted = labelled.expected_spans()
        for span in wanted:
            hit = next((f for f in unmatched if spans_match(f, span)), None)
            if hit is not None:
                unmatched.remove(hit)
                matched += 1
        found += len(spans)
        expected += len(wanted)
    return FinderScore(found=found, expected=expected, matched=matched)
