"""The simple token rule, for replies whose responder does not count with a real tokenizer.

A token is a maximal run of word characters (letters, digits, underscore) or any single
other non-whitespace character, so ``"Hello, world!"`` is 4 tokens. It is deliberately
simple so tests can predict it; it is used for ``usage.input_tokens`` (system prompt + text
of every message), for ``usage.output_tokens``, for ``max_tokens`` truncation and to cut a
reply into stream deltas.
"""

from __future__ import annotations

import re

_TOKEN_RE = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    """Count tokens with the simple rule: word-character runs plus single punctuation marks."""
    return len(_TOKEN_RE.findall(text))


def truncate_to_tokens(text: str, limit: int) -> str:
    """Return the prefix of ``text`` holding its first ``limit`` tokens (all of it if shorter)."""
    if limit <= 0:
        return ""
    for index, match in enumerate(_TOKEN_RE.finditer(text)):
        if index == limit - 1:
            return text[: match.end()]
    return text


def split_for_stream(text: str, tokens_per_delta: int = 4) -> list[str]:
    """Split ``text`` into deltas of ``tokens_per_delta`` tokens; ``"".join`` gives ``text`` back.

    Whitespace before a token travels with that token (``" world"``), as real deltas do.
    """
    starts = [m.start() for m in _TOKEN_RE.finditer(text)]
    cuts = starts[tokens_per_delta::tokens_per_delta]
    pieces: list[str] = []
    previous = 0
    for cut in cuts:
        pieces.append(text[previous:cut])
        previous = cut
    pieces.append(text[previous:])
    return [piece for piece in pieces if piece]
