"""What the notice tests share: a deprecation announced through the real flow, and what
the site's users received."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from typing import Any

from sqlmodel import select

from flows import deprecate as deprecate_flow
from sunset.ledger import CatalogModel, Deprecation
from sunset.runs.request import DeprecationRequest
from sunset_dev.example_model import EXAMPLE_MODEL_ID
from tests.conftest import Site
from tests.http_receivers import WebhookReceiver

TODAY = date.today()
MINIMUM_NOTICE = 60  # the default SUNSET_MINIMUM_NOTICE_DAYS


def hook_second_user(site: Site, receiver: WebhookReceiver) -> None:
    """Give the site's second user (of three) a webhook at ``receiver`` too."""
    header, *rows = site.recipients.read_text().splitlines()
    hooked = [
        f"{row},{receiver.url + '/hooks/2' if n == 2 else ''}" for n, row in enumerate(rows, 1)
    ]
    site.recipients.write_text("\n".join([header + ",webhook_url", *hooked]) + "\n")


def run_flow(site: Site, **overrides: Any) -> Any:
    fields: dict[str, Any] = {
        "model_id": EXAMPLE_MODEL_ID,
        "weights": str(site.weights),
        "recipients": str(site.recipients),
    } | overrides
    return deprecate_flow.deprecate_model(DeprecationRequest(**fields), "rm")


def received(site: Site) -> Counter[tuple[str, str]]:
    """(recipient, subject) of every email the site's users got, counted."""
    return Counter(
        (str(m["To"]).split("<")[1].rstrip(">"), str(m["Subject"])) for m in site.mailbox()
    )


def mail_text(site: Site, recipient: str, subject: str) -> str:
    [mail] = [m for m in site.mailbox() if recipient in str(m["To"]) and m["Subject"] == subject]
    return str(mail.get_body(("plain",)).get_content())


def users(site: Site) -> list[str]:
    return [line.split(",")[0] for line in site.recipients.read_text().splitlines()[1:]]


def deprecation(site: Site) -> Deprecation:
    with site.ledger.session() as db:
        return db.exec(select(Deprecation)).one()


def catalog_dates(site: Site) -> tuple[date | None, date | None]:
    with site.ledger.session() as db:
        model = db.get(CatalogModel, EXAMPLE_MODEL_ID)
        assert model is not None
        return model.deprecation_announced_on, model.retirement_on


def announce(site: Site, **overrides: Any) -> date:
    """A deprecation run: announced today, retiring after the minimum notice unless the
    overrides say otherwise; every user got the announcement once."""
    assert run_flow(site, **overrides).status == "deprecated"
    retirement = overrides.get("retirement_date") or TODAY + timedelta(days=MINIMUM_NOTICE)
    announcement = f"Sunset Example 1 will be retired on {retirement}"
    assert received(site) == Counter({(user, announcement): 1 for user in users(site)})
    return retirement  # type: ignore[no-any-return]
