"""The notices themselves: what users are told at each stage, rendered from Jinja2 templates.

A deprecation tells its users several things over months, each a kind of notice
(``NoticeKind``): the announcement, a change of the retirement date, reminders, the
retirement, a cancellation, a reinstatement. Each kind has its own templates,
``<kind>.txt.j2`` and ``<kind>.html.j2``, most of them built on ``layout.*.j2`` and the
migration guide (``migration_guide.*.j2``). A deployment can bring its own templates
(``Settings.notice_templates_dir``); any it does not provide comes from the bundled set.
The same context renders the email parts and the webhook payload, so every channel says
the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import jinja2

from sunset.errors import InputError
from sunset.ledger import CatalogModel
from sunset.notify.recipients import Recipient

GUIDE_TEMPLATE = "migration_guide.txt.j2"
GUIDE_HTML_TEMPLATE = "migration_guide.html.j2"  # the HTML notice includes it by this name
# The single template of the announcement before notices had kinds: a deployment that
# still overrides it would silently lose its wording.
FORMER_TEMPLATES = ("notice.txt.j2", "notice.html.j2")


class NoticeKind(StrEnum):
    """What a notice tells; each kind goes to a recipient on a channel at most once per
    deprecation (reminders once per retirement date and day count)."""

    ANNOUNCEMENT = "announcement"  # the model will be retired on a date
    DATE_CHANGED = "date-changed"  # the retirement date moved, and why
    REMINDER = "reminder"  # so many days are left
    RETIRED = "retired"  # the model was retired; where its package and report are
    CANCELLED = "cancelled"  # the deprecation was called off; the model stays
    REINSTATED = "reinstated"  # a retired model is served again
    ON_REQUEST = "on-request"  # a retired model is available to those who ask

    @property
    def text_template(self) -> str:
        return f"{self.value}.txt.j2"

    @property
    def html_template(self) -> str:
        return f"{self.value}.html.j2"


# The kinds whose readers still have to move to another model.
MIGRATING = (
    NoticeKind.ANNOUNCEMENT,
    NoticeKind.DATE_CHANGED,
    NoticeKind.REMINDER,
    NoticeKind.RETIRED,
)


@dataclass(frozen=True)
class Notice:
    """One notice of one deprecation, the same for every recipient.

    The details after ``support_contact`` belong to some kinds only:
    ``previous_retirement_on`` the date users were told before (date changed; retired
    earlier than announced), ``reason`` why (date changed, retired earlier or without
    notice, cancelled, reinstated, on request), ``change_id`` the recorded date change,
    ``reminder_days`` which reminder of the schedule it is (so many days before the
    retirement) and ``days_left`` how many are left when it is sent (later, if its day
    was missed), ``package_id`` and ``report`` (retired: the preservation package and
    where its report is), ``transition_page`` (the public page on moving to the
    successor, when the deployment publishes one).
    """

    kind: NoticeKind
    deprecation_id: str
    model: CatalogModel
    replacement: CatalogModel | None
    announced_on: date | None  # None: users were not told before the retirement
    retirement_on: date  # for the retired notice: the day the model was retired
    support_contact: str
    previous_retirement_on: date | None = None
    reason: str | None = None
    change_id: int | None = None
    reminder_days: int | None = None
    days_left: int | None = None
    package_id: str | None = None
    report: str | None = None
    transition_page: str | None = None

    @property
    def key(self) -> str:
        """Identifies the notice: the same notice sent again is the same delivery."""
        key = f"{self.kind.value}:{self.deprecation_id}"
        if self.kind == NoticeKind.REMINDER:
            return f"{key}:{self.retirement_on.isoformat()}:{self.reminder_days}"
        if self.kind == NoticeKind.DATE_CHANGED:
            return f"{key}:{self.change_id}"
        return key

    @property
    def subject(self) -> str:
        name, on = self.model.display_name, self.retirement_on.isoformat()
        match self.kind:
            case NoticeKind.ANNOUNCEMENT:
                return f"{name} will be retired on {on}"
            case NoticeKind.DATE_CHANGED:
                previous = self.previous_retirement_on
                return f"{name}: the retirement moves from {previous} to {on}"
            case NoticeKind.REMINDER:
                if self.days_left == 0:
                    return f"Reminder: {name} is retired today, {on}"
                return f"Reminder: {name} will be retired in {_days(self.days_left)}, on {on}"
            case NoticeKind.RETIRED:
                return f"{name} was retired on {on}"
            case NoticeKind.CANCELLED:
                return f"{name} will not be retired: its deprecation is cancelled"
            case NoticeKind.REINSTATED:
                return f"{name} is served again"
            case NoticeKind.ON_REQUEST:
                return f"{name} is available on request"


def sample_notice(
    kind: NoticeKind,
    model: CatalogModel,
    replacement: CatalogModel | None,
    support_contact: str,
    today: date,
) -> Notice:
    """A notice of ``kind`` with every detail filled in, to render each part of its
    templates before anyone is told."""
    return Notice(
        kind=kind,
        deprecation_id="sample",
        model=model,
        replacement=replacement,
        announced_on=today,
        retirement_on=today + timedelta(days=30),
        support_contact=support_contact,
        previous_retirement_on=today + timedelta(days=60),
        reason="a sample reason",
        change_id=1,
        reminder_days=7,
        days_left=7,
        package_id="sample-package",
        report="s3://bucket/models/sample/report.md",
        transition_page="https://example.org/transition",
    )


SAMPLE_RECIPIENT = Recipient("someone@example.org", "Someone", "https://example.org/hook", "1/day")


class NoticeTemplates:
    """The deployment's templates in front of the bundled ones."""

    def __init__(self, directory: Path | None = None) -> None:
        if directory is not None and not directory.is_dir():
            raise InputError(
                f"Notice templates directory {directory} does not exist; create it or unset "
                "SUNSET_NOTICE_TEMPLATES_DIR to use the bundled templates."
            )
        former = [name for name in FORMER_TEMPLATES if directory and (directory / name).exists()]
        if directory is not None and former:
            raise InputError(
                f"Notice template {directory / former[0]} is no longer read: each kind of "
                "notice has its own templates now; rename it to "
                f"{former[0].replace('notice', NoticeKind.ANNOUNCEMENT.value)}."
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

    def text(self, notice: Notice, recipient: Recipient) -> str:
        return self.render(notice.kind.text_template, notice, recipient)

    def html(self, notice: Notice, recipient: Recipient) -> str:
        return self.render(notice.kind.html_template, notice, recipient)

    def check(self, notices: Iterable[Notice], recipient: Recipient) -> None:
        """Render every template of these notices once, so a broken one stops the run
        before anyone is told.

        Raises:
            InputError: a template is missing, malformed or uses a name it is not given.
        """
        for notice in notices:
            names = [notice.kind.text_template, notice.kind.html_template]
            if notice.kind in MIGRATING:
                names.append(GUIDE_TEMPLATE)
            for name in names:
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

    def check_kinds(
        self,
        kinds: Iterable[NoticeKind],
        model: CatalogModel,
        replacement: CatalogModel | None,
        support_contact: str,
        today: date,
    ) -> None:
        """Render the templates of ``kinds`` for the model once, every detail filled in.

        Raises:
            InputError: as ``check``.
        """
        self.check(
            (sample_notice(k, model, replacement, support_contact, today) for k in kinds),
            SAMPLE_RECIPIENT,
        )

    def webhook_payload(
        self, notice: Notice, recipient: Recipient, delivery: str
    ) -> dict[str, Any]:
        """The JSON body of a webhook notice: ``type`` is ``model.<kind>``."""
        replacement = notice.replacement
        return {
            "type": f"model.{notice.kind.value}",
            "delivery": delivery,
            "deprecation": notice.deprecation_id,
            "model": {"id": notice.model.id, "name": notice.model.display_name},
            "announced_on": _iso(notice.announced_on),
            "retirement_on": notice.retirement_on.isoformat(),
            "previous_retirement_on": _iso(notice.previous_retirement_on),
            "reason": notice.reason,
            "days_left": notice.days_left,
            "package": notice.package_id,
            "report": notice.report,
            "replacement": (
                {"id": replacement.id, "name": replacement.display_name} if replacement else None
            ),
            "migration_guide": (
                self.render(GUIDE_TEMPLATE, notice, recipient) if notice.kind in MIGRATING else None
            ),
            "transition_page": notice.transition_page,
            "support_contact": notice.support_contact,
            "recipient": {"email": recipient.email, "name": recipient.name},
        }


def _context(notice: Notice, recipient: Recipient) -> dict[str, Any]:
    return {
        "kind": notice.kind.value,
        "recipient": recipient,
        "model": notice.model,
        "replacement": notice.replacement,
        "announced": _iso(notice.announced_on),
        "retirement": notice.retirement_on.isoformat(),
        "previous_retirement": _iso(notice.previous_retirement_on),
        "reason": notice.reason,
        "days_left": notice.days_left,
        "package": notice.package_id,
        "report": notice.report,
        "transition_page": notice.transition_page,
        "support_contact": notice.support_contact,
    }


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


def _days(count: int | None) -> str:
    return "1 day" if count == 1 else f"{count} days"
