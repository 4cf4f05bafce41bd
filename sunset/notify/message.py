"""The notice itself: what users are told, rendered from Jinja2 templates.

A deployment can bring its own templates (``Settings.notice_templates_dir``), most often
just ``migration_guide.txt.j2`` and ``migration_guide.html.j2``: how *its* users move to
the successor. Any template it does not provide comes from the bundled set. The same
context renders the email parts and the webhook payload, so every channel says the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import jinja2

from sunset.errors import InputError
from sunset.ledger import CatalogModel
from sunset.notify.recipients import Recipient

TEXT_TEMPLATE = "notice.txt.j2"
HTML_TEMPLATE = "notice.html.j2"
GUIDE_TEMPLATE = "migration_guide.txt.j2"
GUIDE_HTML_TEMPLATE = "migration_guide.html.j2"  # the HTML notice includes it by this name


@dataclass(frozen=True)
class Notice:
    """One announcement of a model's retirement, the same for every recipient."""

    model: CatalogModel
    replacement: CatalogModel | None
    announced_on: date
    retirement_on: date
    support_contact: str

    @property
    def key(self) -> str:
        """Identifies the notice: the same retirement announced again is the same notice."""
        return f"deprecation:{self.retirement_on.isoformat()}"

    @property
    def subject(self) -> str:
        return f"{self.model.display_name} will be retired on {self.retirement_on.isoformat()}"


class NoticeTemplates:
    """The deployment's templates in front of the bundled ones."""

    def __init__(self, directory: Path | None = None) -> None:
        if directory is not None and not directory.is_dir():
            raise InputError(
                f"Notice templates directory {directory} does not exist; create it or unset "
                "SUNSET_NOTICE_TEMPLATES_DIR to use the bundled templates."
            )
        loaders: list[jinja2.BaseLoader] = [jinja2.PackageLoader("sunset.notify", "templates")]
        if directory is not None:
            loaders.insert(0, jinja2.FileSystemLoader(directory))
        self.directory = directory
        self.environment = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders),
            autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",)),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
        )

    def render(self, name: str, notice: Notice, recipient: Recipient) -> str:
        """Render one template for one recipient."""
        return self.environment.get_template(name).render(_context(notice, recipient))

    def check(self, notice: Notice, recipient: Recipient) -> None:
        """Render every template once, so a broken one stops the run before anyone is told.

        Raises:
            InputError: a template is missing, malformed or uses a name it is not given.
        """
        for name in (TEXT_TEMPLATE, HTML_TEMPLATE, GUIDE_TEMPLATE):
            try:
                self.render(name, notice, recipient)
            except jinja2.TemplateSyntaxError as exc:
                raise InputError(
                    f"Notice template {exc.filename or name} line {exc.lineno} is not valid "
                    f"Jinja2 ({exc.message}); fix it before notifying anyone."
                ) from None
            except jinja2.TemplateError as exc:
                raise InputError(
                    f"Notice template {name} cannot be rendered ({exc}); it may use only "
                    f"{', '.join(sorted(_context(notice, recipient)))}."
                ) from None

    def webhook_payload(
        self, notice: Notice, recipient: Recipient, delivery: str
    ) -> dict[str, Any]:
        """The JSON body of a webhook notice."""
        replacement = notice.replacement
        return {
            "type": "model.deprecation",
            "delivery": delivery,
            "model": {"id": notice.model.id, "name": notice.model.display_name},
            "announced_on": notice.announced_on.isoformat(),
            "retirement_on": notice.retirement_on.isoformat(),
            "replacement": (
                {"id": replacement.id, "name": replacement.display_name} if replacement else None
            ),
            "migration_guide": self.render(GUIDE_TEMPLATE, notice, recipient),
            "support_contact": notice.support_contact,
            "recipient": {"email": recipient.email, "name": recipient.name},
        }


def _context(notice: Notice, recipient: Recipient) -> dict[str, Any]:
    return {
        "recipient": recipient,
        "model": notice.model,
        "replacement": notice.replacement,
        "announced": notice.announced_on.isoformat(),
        "retirement": notice.retirement_on.isoformat(),
        "support_contact": notice.support_contact,
    }
