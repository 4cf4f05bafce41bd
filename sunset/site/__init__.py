"""The public deprecations page: which models are deprecated or retired, when, what to
move to, and one transition page each (``sunset site``).

``entries`` reads the ledger into the listed entries; ``render`` writes the pages and the
JSON feed (``deprecations.schema.json``) from ``templates/``.
"""

from sunset.site.entries import transition_page_url

__all__ = ["transition_page_url"]
