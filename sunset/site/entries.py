"""What the public deprecations page lists: one entry per model whose deprecation was
announced, read from the ledger in one place (:func:`read_entries`).

A model is listed from the day its deprecation is announced (the notices went out) for as
long as that deprecation stands: while it is deprecated, after it is retired, when it is
available again on request or reinstated. The page reads the model's latest deprecation
record: a model never deprecated is not listed, nor one whose deprecation was cancelled.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from sqlmodel import Session, col, select

from sunset.config import Settings
from sunset.ledger import CatalogModel, Deprecation, DeprecationStage, Ledger, Report
from sunset.runs.request import check_model_id

TRANSITION_PAGES = "models"


class PublicStatus(StrEnum):
    """Where a listed model stands, as its users see it."""

    DEPRECATED = "deprecated"  # announced: still served until its retirement date
    RETIRED = "retired"
    ON_REQUEST = "on_request"  # retired, then served again to those who ask for it
    REINSTATED = "reinstated"  # retired, then served again to everyone

    @property
    def label(self) -> str:
        """The status in words, as the page shows it."""
        return {
            PublicStatus.DEPRECATED: "Deprecated",
            PublicStatus.RETIRED: "Retired",
            PublicStatus.ON_REQUEST: "Available on request",
            PublicStatus.REINSTATED: "Reinstated",
        }[self]


@dataclass(frozen=True)
class DeprecationEntry:
    """One listed model: its announced dates, where it stands, and its successor.

    ``model`` and ``successor`` are the catalog rows, which the migration guide's
    templates are given; ``successor_listed`` says whether the successor has an entry of
    its own to link to. ``weights_preserved`` and ``report_sealed`` say whether the
    model's latest package is stored and its post-deployment report sealed, so that the
    page claims neither before it is true.
    """

    deprecation_id: str
    model: CatalogModel
    status: PublicStatus
    announced_on: date
    retirement_on: date
    successor: CatalogModel | None
    successor_listed: bool
    weights_preserved: bool
    report_sealed: bool

    @property
    def model_id(self) -> str:
        return self.model.id

    @property
    def name(self) -> str:
        return self.model.display_name

    @property
    def transition_page(self) -> str:
        """The entry's transition page, relative to the site's root."""
        return transition_page_path(self.model.id)


def transition_page_path(model_id: str) -> str:
    """Where a model's transition page lies, relative to the site's root.

    Raises:
        InputError: the model id could not be a file name (a row not made by Sunset).
    """
    return f"{TRANSITION_PAGES}/{check_model_id(model_id)}.html"


def transition_page_url(settings: Settings, model_id: str) -> str | None:
    """The public address of a model's transition page, for notices to link to; None when
    no public URL is configured (``SUNSET_PUBLIC_URL``)."""
    if settings.public_url is None:
        return None
    return f"{settings.public_url.rstrip('/')}/{transition_page_path(model_id)}"


def read_entries(ledger: Ledger) -> list[DeprecationEntry]:
    """Every model whose latest deprecation was announced and not cancelled, in the
    page's order: models still served until their retirement first, soonest retirement
    first; then the others (retired, on request, reinstated), latest retirement first."""
    with ledger.session() as db:
        deprecations = db.exec(
            select(Deprecation)
            .where(col(Deprecation.stage).not_in([DeprecationStage.PLANNED]))
            .order_by(col(Deprecation.opened_at))
        ).all()
        latest = {d.model_id: d for d in deprecations}  # the newest of each model wins
        shown = [d for d in latest.values() if d.stage != DeprecationStage.CANCELLED]
        listed = {d.model_id for d in shown}
        entries = [_entry(db, deprecation, listed) for deprecation in shown]
    return sorted(entries, key=_page_order)


_PUBLIC_STATUS = {
    DeprecationStage.ANNOUNCED: PublicStatus.DEPRECATED,
    DeprecationStage.RETIRED: PublicStatus.RETIRED,
    DeprecationStage.ON_REQUEST: PublicStatus.ON_REQUEST,
    DeprecationStage.REINSTATED: PublicStatus.REINSTATED,
}


def _entry(db: Session, deprecation: Deprecation, listed: set[str]) -> DeprecationEntry:
    assert deprecation.announced_on is not None  # announced, or it would not be listed
    model = db.get(CatalogModel, deprecation.model_id)
    assert model is not None
    successor_id = deprecation.replacement_id
    successor = db.get(CatalogModel, successor_id) if successor_id else None
    package = deprecation.snapshot_id  # recorded only once the package was verified
    sealed = package is not None and (
        db.exec(select(Report.id).where(Report.snapshot_id == package)).first() is not None
    )
    return DeprecationEntry(
        deprecation_id=deprecation.id,
        model=model,
        status=_PUBLIC_STATUS[deprecation.stage],
        announced_on=deprecation.announced_on,
        retirement_on=deprecation.retirement_on,
        successor=successor,
        successor_listed=successor is not None and successor.id in listed,
        weights_preserved=package is not None,
        report_sealed=sealed,
    )


def _page_order(entry: DeprecationEntry) -> tuple[int, int, str]:
    if entry.status == PublicStatus.DEPRECATED:
        return (0, entry.retirement_on.toordinal(), entry.model_id)
    return (1, -entry.retirement_on.toordinal(), entry.model_id)
