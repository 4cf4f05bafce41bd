"""What the public deprecations page lists: one entry per model whose deprecation was
announced, read from the ledger in one place (:func:`read_entries`).

A model is listed from the day its deprecation is announced (the notices went out and the
catalog holds the announced dates) for as long as that announcement stands: while it is
deprecated, after it is retired, when it is available again on request or reinstated. A
model never deprecated is not listed, nor one whose deprecation was cancelled (the
catalog's announcement is cleared then).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from sqlmodel import Session, col, select

from sunset.config import Settings
from sunset.ledger import (
    CatalogModel,
    Ledger,
    Report,
    ServingStatus,
    SnapshotState,
    StatusTransition,
)
from sunset.runs.request import check_model_id
from sunset.serving.guards import latest_snapshot

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
    """Every model whose deprecation was announced, in the page's order: models still
    served until their retirement first, soonest retirement first; then the others
    (retired, on request, reinstated), latest retirement first."""
    with ledger.session() as db:
        announced = db.exec(
            select(CatalogModel)
            .where(col(CatalogModel.deprecation_announced_on).is_not(None))
            .where(col(CatalogModel.retirement_on).is_not(None))
        ).all()
        listed = {model.id for model in announced}
        entries = [_entry(db, model, listed) for model in announced]
    return sorted(entries, key=_page_order)


def _entry(db: Session, model: CatalogModel, listed: set[str]) -> DeprecationEntry:
    assert model.deprecation_announced_on and model.retirement_on  # selected so
    successor = db.get(CatalogModel, model.replacement_id) if model.replacement_id else None
    snapshot = latest_snapshot(db, model.id)
    sealed = snapshot is not None and (
        db.exec(select(Report.id).where(Report.snapshot_id == snapshot.id)).first() is not None
    )
    return DeprecationEntry(
        model=model,
        status=_public_status(db, model),
        announced_on=model.deprecation_announced_on,
        retirement_on=model.retirement_on,
        successor=successor,
        successor_listed=successor is not None and successor.id in listed,
        weights_preserved=snapshot is not None and snapshot.state == SnapshotState.STORED,
        report_sealed=sealed,
    )


def _public_status(db: Session, model: CatalogModel) -> PublicStatus:
    """The serving status as users see it. An active model with an announcement is either
    on its way out (the notices went out, the flip to deprecated comes at the end of the
    run) or was brought back: reinstated when its latest move, not rolled back, made it
    active again on or after the day of the announcement in force."""
    if model.serving_status == ServingStatus.DEPRECATED:
        return PublicStatus.DEPRECATED
    if model.serving_status == ServingStatus.RETIRED:
        return PublicStatus.RETIRED
    if model.serving_status == ServingStatus.ON_REQUEST:
        return PublicStatus.ON_REQUEST
    latest = db.exec(
        select(StatusTransition)
        .where(StatusTransition.model_id == model.id)
        .where(col(StatusTransition.rolled_back_at).is_(None))
        .order_by(col(StatusTransition.at).desc(), col(StatusTransition.id).desc())
    ).first()
    assert model.deprecation_announced_on is not None
    brought_back = (
        latest is not None
        and latest.to_status == ServingStatus.ACTIVE
        and latest.at.date() >= model.deprecation_announced_on
    )
    return PublicStatus.REINSTATED if brought_back else PublicStatus.DEPRECATED


def _page_order(entry: DeprecationEntry) -> tuple[int, int, str]:
    if entry.status == PublicStatus.DEPRECATED:
        return (0, entry.retirement_on.toordinal(), entry.model_id)
    return (1, -entry.retirement_on.toordinal(), entry.model_id)
