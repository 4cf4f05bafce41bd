"""Writing the public deprecations page: ``index.html``, the ``deprecations.json`` feed and
one transition page per listed model, all self-contained and swapped in whole.

The pages come from Jinja2 templates with every value HTML-escaped. The deployment's
template directory (``Settings.notice_templates_dir``) stands in front of the bundled
templates, as it does for notices: the migration guide on each transition page is the
notices' own ``migration_guide.html.j2``, and ``adapting_to_successor.html.j2`` is the
advice for users who valued the retiring model.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from sunset.config import Settings
from sunset.errors import InputError
from sunset.ledger import Ledger
from sunset.notify.message import GUIDE_HTML_TEMPLATE, Notice, NoticeKind, NoticeTemplates
from sunset.notify.recipients import Recipient
from sunset.site.entries import (
    TRANSITION_PAGES,
    DeprecationEntry,
    PublicStatus,
    read_entries,
    transition_page_url,
)

INDEX = "index.html"
FEED = "deprecations.json"
INDEX_TEMPLATE = "site_index.html.j2"
MODEL_TEMPLATE = "site_model.html.j2"
ADVICE_TEMPLATE = "adapting_to_successor.html.j2"
# Each status row and badge has its own background, so a reader (and the rendering test)
# tells them apart at a glance; the label beside it says the same in words.
STATUS_COLOURS: dict[PublicStatus, str] = {
    PublicStatus.DEPRECATED: "#ffe08a",
    PublicStatus.RETIRED: "#d5d8e0",
    PublicStatus.ON_REQUEST: "#bfe3f5",
    PublicStatus.REINSTATED: "#c8ecc4",
}
# The migration guide is written for one recipient of a notice; the public page renders
# it for any reader, so a guide that greets its recipient still renders.
PUBLIC_READER = Recipient(email="", name="user")


@dataclass(frozen=True)
class PublishedSite:
    """What ``publish_site`` wrote: the directory and the entries listed in it."""

    directory: Path
    entries: list[DeprecationEntry]


def publish_site(ledger: Ledger, settings: Settings, out: Path) -> PublishedSite:
    """Render the deprecations page from the ledger and swap it into ``out``.

    Raises:
        InputError: ``out`` is a file, the templates directory is missing, or a template
            cannot be rendered; ``out`` is left as it was.
    """
    entries = read_entries(ledger)
    files = render_site(entries, settings, datetime.now(UTC))
    directory = out.resolve()
    write_site(files, directory)
    return PublishedSite(directory, entries)


def render_site(
    entries: list[DeprecationEntry], settings: Settings, generated_at: datetime
) -> dict[str, str]:
    """Every file of the site, by its path relative to the site's root."""
    pages = _Pages(settings, generated_at)
    files = {entry.transition_page: pages.transition_page(entry) for entry in entries}
    files[FEED] = json.dumps(feed(entries, settings, generated_at), indent=2) + "\n"
    files[INDEX] = pages.index(entries)
    return files


def feed(
    entries: list[DeprecationEntry], settings: Settings, generated_at: datetime
) -> dict[str, Any]:
    """The machine-readable list (``sunset/site/deprecations.schema.json``)."""
    return {
        "generated_at": generated_at.astimezone(UTC).isoformat(timespec="seconds"),
        "organization": settings.organization,
        "deprecations": [
            {
                "model_id": entry.model_id,
                "name": entry.name,
                "status": entry.status.value,
                "announced_on": entry.announced_on.isoformat(),
                "retirement_on": entry.retirement_on.isoformat(),
                "successor": (
                    {"id": entry.successor.id, "name": entry.successor.display_name}
                    if entry.successor
                    else None
                ),
                "transition_page": entry.transition_page,
                "url": transition_page_url(settings, entry.model_id),
            }
            for entry in entries
        ],
    }


class _Pages:
    """The site's templates, the deployment's in front of the bundled ones."""

    def __init__(self, settings: Settings, generated_at: datetime) -> None:
        self.settings = settings
        self.generated = generated_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        # Checks the directory exists, with the notices' own sentence if it does not.
        self.notices = NoticeTemplates(settings.notice_templates_dir)
        loaders: list[jinja2.BaseLoader] = [jinja2.PackageLoader("sunset.site", "templates")]
        if settings.notice_templates_dir is not None:
            loaders.insert(0, jinja2.FileSystemLoader(settings.notice_templates_dir))
        self.environment = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def index(self, entries: list[DeprecationEntry]) -> str:
        return self._render(INDEX_TEMPLATE, self._page_context() | {"entries": entries})

    def transition_page(self, entry: DeprecationEntry) -> str:
        notice = Notice(
            kind=NoticeKind.ANNOUNCEMENT,
            deprecation_id=entry.deprecation_id,
            model=entry.model,
            replacement=entry.successor,
            announced_on=entry.announced_on,
            retirement_on=entry.retirement_on,
            support_contact=self.settings.support_contact,
            transition_page=transition_page_url(self.settings, entry.model_id),
        )
        # The page shows only the guide, but refuses templates that notices would refuse.
        self.notices.check([notice], PUBLIC_READER)
        guide = self.notices.render(GUIDE_HTML_TEMPLATE, notice, PUBLIC_READER)
        advice = self._render(ADVICE_TEMPLATE, self._advice_context(entry))
        return self._render(
            MODEL_TEMPLATE,
            self._page_context()
            | {"entry": entry, "guide": Markup(guide), "advice": Markup(advice)},
        )

    def _advice_context(self, entry: DeprecationEntry) -> dict[str, Any]:
        """What the advice template may use: the notices' names, and where the model stands."""
        return {
            "model": entry.model,
            "replacement": entry.successor,
            "announced": entry.announced_on.isoformat(),
            "retirement": entry.retirement_on.isoformat(),
            "support_contact": self.settings.support_contact,
            "organization": self.settings.organization,
            "status": entry.status.value,
            "weights_preserved": entry.weights_preserved,
            "report_sealed": entry.report_sealed,
        }

    def _page_context(self) -> dict[str, Any]:
        return {
            "organization": self.settings.organization,
            "generated": self.generated,
            "status_colours": STATUS_COLOURS,
            "feed": FEED,
            "pages": TRANSITION_PAGES,
        }

    def _render(self, name: str, context: dict[str, Any]) -> str:
        """One page template, with a mistake in it as one sentence naming the template."""
        try:
            return self.environment.get_template(name).render(context)
        except jinja2.TemplateSyntaxError as exc:
            raise InputError(
                f"Template {exc.filename or name} line {exc.lineno} is not valid Jinja2 "
                f"({exc.message}); fix it and run `sunset site` again."
            ) from None
        except jinja2.TemplateError as exc:
            raise InputError(
                f"Template {name} cannot be rendered ({exc}); it may use only "
                f"{', '.join(sorted(context))}."
            ) from None


def write_site(files: Mapping[str, str], out: Path) -> None:
    """Write ``files`` into ``out`` so that a half-written site is never published.

    Every file is first written in full to a staging directory beside ``out``. A new
    ``out`` is that directory renamed; an existing one receives the files one rename at a
    time, the transition pages before the feed and the index that link to them, and then
    loses the transition pages of models no longer listed. Other files in ``out`` stay.

    Raises:
        InputError: ``out`` exists and is not a directory.
    """
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} is a file, not a directory; choose another --out.")
    out.parent.mkdir(parents=True, exist_ok=True)
    # Made with mkdir (not mkdtemp, which is private to its owner): the published files
    # keep the permissions the umask gives, so a web server can read them.
    staging = out.parent / f".{out.name}.{secrets.token_hex(4)}.staging"
    staging.mkdir()
    try:
        for relative, text in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        if not out.exists():
            staging.rename(out)
            return
        (out / TRANSITION_PAGES).mkdir(exist_ok=True)
        for relative in sorted(files, key=lambda name: (name in (FEED, INDEX), name == INDEX)):
            os.replace(staging / relative, out / relative)
        for page in (out / TRANSITION_PAGES).glob("*.html"):
            if f"{TRANSITION_PAGES}/{page.name}" not in files:
                page.unlink()
    finally:
        shutil.rmtree(staging, ignore_errors=True)
