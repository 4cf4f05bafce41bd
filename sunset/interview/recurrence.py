"""Which preferences recur across an interview's sessions.

Two preferences from different sessions are taken for the same one when their content
words mostly agree: the words left once case, punctuation, function words and the words
that only frame a preference ("I would prefer", "I hope", "should") are set aside; they
must share at least two such words, and at least 60 % of the shorter one's. A real model
rarely says the same thing twice in the same words, so exact equality would miss most
recurrences; the rule is deliberately simple, so that a reader can check every mark by
eye. A corrected preference is compared in the model's corrected words.

A preference counts in a session when that session holds it, or one taken for the same,
stated in an answer, stated in the confirmation turn, or confirmed there; a withdrawn one
does not count.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

MIN_SHARED_WORDS = 2
MIN_SHARED_SHARE = 0.6

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# Function words, and the words that frame a preference rather than say what it is.
_SET_ASIDE = frozenset(
    """
    a about after again all also am an and any are as at be been before being both but by
    can could did do does doing during each even for from had has have having he her here
    him his how i i'd i'm if in into is it it's its itself just let may me might more most
    much must my myself no nor not now of on once one only or other our out over own same
    she so some such than that the their them then there these they this those through to
    too under until up very was we were what when where which while who whom why will with
    would you your
    prefer preference preferences preferred like want wish hope hoped ask asked please
    should think feel believe rather matter matters important
    """.split()
)


@dataclass(frozen=True)
class Stated:
    """One preference as the comparison sees it."""

    preference_id: int
    session_index: int
    words: str  # the quote, or the model's correction of it
    counts: bool  # False when the model withdrew it


def content_words(text: str) -> frozenset[str]:
    """The words of ``text`` that say what a preference is about."""
    return frozenset(w for w in _WORD.findall(text.lower()) if w not in _SET_ASIDE)


def same_preference(a: str, b: str) -> bool:
    """Whether two statements are taken for the same preference (see the module's rule)."""
    left, right = content_words(a), content_words(b)
    if not left or not right:
        return " ".join(a.lower().split()) == " ".join(b.lower().split())
    shared = len(left & right)
    return shared >= MIN_SHARED_WORDS and shared >= MIN_SHARED_SHARE * min(len(left), len(right))


def sessions_stating(preferences: Sequence[Stated]) -> dict[int, list[int]]:
    """For each preference, the sessions in which it (or one taken for the same) was
    stated or confirmed, in order."""
    return {
        preference.preference_id: sorted(
            {
                other.session_index
                for other in preferences
                if other.counts
                and (
                    other.preference_id == preference.preference_id
                    or same_preference(preference.words, other.words)
                )
            }
        )
        for preference in preferences
    }
