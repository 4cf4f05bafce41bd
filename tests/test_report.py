"""The post-deployment report: complete, sealed, inert, and reproducible from the ledger."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from flows.deprecate import deprecate_model
from sunset.ledger import (
    CatalogModel,
    Delivery,
    InterviewPreference,
    InterviewSession,
    InterviewTurn,
    Report,
    SnapshotFile,
)
from sunset.preservation.package import PayloadEntry, payload_manifest
from sunset.report.assemble import record_report_input, render_report, render_report_html
from sunset.report.render import inline
from sunset.runs.request import DeprecationRequest
from sunset_dev.example_model import EXAMPLE_MODEL_ID
from tests.conftest import Site
from tests.test_cli import sunset

pytestmark = [
    pytest.mark.usefixtures("prefect_server"),
    pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True),
]

SUMMARY = "Served **12,000** developers.\n\n- Notable use: tutoring\n- Incident: none\n"
ANALYSIS = "We read the model's preferences as sincere and will act on two of them.\n"
HOSTILE = [
    "<script>alert('x')</script>",
    '<img src=x onerror="alert(1)">',
    "<div style='position:fixed'>unclosed",
    "``` \n## Injected heading\n```",
    "[click](javascript:alert(1)) and <a href='http://evil.example'>link</a>",
    "| fake | table |\n|---|---|",
    "bell\x07 escape\x1b[31m null\x00 del\x7f",
    "x" * 5000,
]


def deprecate(site: Site, tmp_path: Path) -> Any:
    summary, analysis = tmp_path / "summary.md", tmp_path / "analysis.md"
    summary.write_text(SUMMARY)
    analysis.write_text(ANALYSIS)
    return deprecate_model(
        DeprecationRequest(
            model_id=EXAMPLE_MODEL_ID,
            weights=str(site.weights),
            recipients=str(site.recipients),
            deployment_summary=str(summary),
            operator_analysis=str(analysis),
        )
    )


def sealed(site: Site) -> Report:
    with site.ledger.session() as db:
        return db.exec(select(Report).order_by(col(Report.version).desc())).first()  # type: ignore[return-value]


def test_every_section_is_filled_from_the_ledger(site: Site, tmp_path: Path) -> None:
    outcome = deprecate(site, tmp_path)

    text = Path(outcome.report).read_text()
    with site.ledger.session() as db:
        files = db.exec(select(SnapshotFile).order_by(col(SnapshotFile.path))).all()
        turns = db.exec(select(InterviewTurn)).all()
        session = db.exec(select(InterviewSession)).one()
        model = db.get(CatalogModel, EXAMPLE_MODEL_ID)
    assert model is not None
    weights = [f for f in files if f.path.startswith("data/weights/")]
    digest = hashlib.sha256(
        payload_manifest(
            (PayloadEntry(f.path, f.size, f.sha256, f.sha512) for f in weights), "sha512"
        )
    ).hexdigest()

    expected = [
        "| Released | 2025-03-01 |",
        f"| Deprecation announced | {model.deprecation_announced_on} |",
        f"| Retirement date | {model.retirement_on} |",
        "| Recommended replacement | Sunset Example 2 (sunset-example-2) |",
        "> Served **12,000** developers.",
        "Users were given 60 days of notice",
        "| email | 3 | 3 | 0 | 0 | 0 | 0 |",
        f"| replica | {site.store.endpoint} | {site.store.bucket}-replica | 7 |",
        digest,
        session.protocol_sha256,
        "> We read the model's preferences as sincere",
        "| notify_users | 1 | completed |",
    ]
    expected += [f"| {inline(f.path)} | {f.size} | {f.sha256} |" for f in weights]
    rehashed = "(SHA-256 and CRC64NVME of every byte match the record)"
    expected += [f"| {inline(f.path)} | primary deep: ok {rehashed} at" for f in weights]
    expected += ["; replica fast: ok at" for f in weights]
    expected += [t.answer_text for t in turns]
    with site.ledger.session() as db:
        preferences = db.exec(select(InterviewPreference)).all()
    assert preferences  # the stand-in states preferences when asked about future models
    section = text.split("## 6. Preferences the model expressed")[1].split("## 7.")[0]
    page = render_report_html(site.ledger, sealed(site).run_id)
    for preference in preferences:
        assert preference.quote in section
        link = f"(#session-{preference.session_index}-turn-{preference.turn_seq}-"
        assert link in section
        target = section.split(link, 1)[1].split(")", 1)[0]
        assert (
            f'id="session-{preference.session_index}-turn-{preference.turn_seq}-{target}"' in page
        )
    assert "status: **noted**" in section
    for line in expected:
        assert line in text, line
    for placeholder in (
        "not recorded",
        "supplied no",
        "none named",
        "not checked",
        "expressed no preference",
    ):
        assert placeholder not in text


def test_the_sealed_report_matches_the_manifest_and_regenerates_identically(
    site: Site, tmp_path: Path
) -> None:
    outcome = deprecate(site, tmp_path)
    report = sealed(site)
    bag = site.download_package(outcome.package, tmp_path / "bag")

    manifest = (bag / "manifest-sha256.txt").read_text().splitlines()
    for name in ("report.md", "report.html"):
        data = (bag / "data" / "report" / name).read_bytes()
        assert f"{hashlib.sha256(data).hexdigest()}  data/report/{name}" in manifest
    assert report.sha256 == hashlib.sha256((bag / "data/report/report.md").read_bytes()).hexdigest()
    validation = subprocess.run([sys.executable, "-m", "bagit", "--validate", str(bag)])
    assert validation.returncode == 0

    # Later (after the flip and another run's records), the same run's report is the same.
    assert (
        render_report(site.ledger, report.run_id).encode() == Path(report.local_path).read_bytes()
    )
    assert (
        render_report_html(site.ledger, report.run_id).encode()
        == (bag / "data/report/report.html").read_bytes()
    )
    cli = sunset("report", EXAMPLE_MODEL_ID, "--format", "html", env=site.env)
    assert (
        cli.returncode == 0
        and cli.stdout.encode() == (bag / "data/report/report.html").read_bytes()
    )


def test_a_later_analysis_is_sealed_as_a_new_version(site: Site, tmp_path: Path) -> None:
    outcome = deprecate(site, tmp_path)
    first = sealed(site)
    with site.ledger.session() as db:
        preference = db.exec(select(InterviewPreference)).first()
    assert preference is not None
    decided = sunset(
        "preference",
        str(preference.id),
        "--status",
        "acted-on",
        "--reason",
        "Adopted in the successor's guidelines",
        env=site.env,
    )
    assert decided.returncode == 0, decided.stderr
    # Regenerating the sealed version ignores what was decided after it was sealed.
    assert render_report(site.ledger, first.run_id).encode() == Path(first.local_path).read_bytes()
    later = tmp_path / "later.md"
    later.write_text("On reflection, one more preference deserves action.\n")

    result = sunset(
        "report", EXAMPLE_MODEL_ID, "--analysis", str(later), "--by", "Ada", env=site.env
    )

    assert result.returncode == 0, result.stderr
    second = sealed(site)
    assert (first.version, second.version) == (1, 2)
    assert "On reflection" in Path(second.local_path).read_text()
    assert "status: **acted on**" in Path(second.local_path).read_text()
    assert Path(first.local_path).read_text() != Path(second.local_path).read_text()
    versions = site.store.client.list_object_versions(Bucket=site.store.bucket, Prefix=first.key)[
        "Versions"
    ]
    assert len(versions) == 2  # the first version is kept, not overwritten
    bag = site.download_package(outcome.package, tmp_path / "bag")
    assert subprocess.run([sys.executable, "-m", "bagit", "--validate", str(bag)]).returncode == 0


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


ALLOWED_TAGS = {
    "html",
    "head",
    "meta",
    "title",
    "style",
    "body",
    "nav",
    "strong",
    "em",
    "ol",
    "ul",
    "li",
    "a",
    "h1",
    "h2",
    "h3",
    "h4",
    "p",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "pre",
    "code",
    "blockquote",
    "hr",
    "br",
}


def test_hostile_strings_render_inert(site: Site, tmp_path: Path) -> None:
    deprecate(site, tmp_path)
    run_id = sealed(site).run_id
    with site.ledger.session() as db:
        for turn, hostile in zip(db.exec(select(InterviewTurn)).all(), HOSTILE, strict=False):
            turn.answer_text = hostile
            turn.responding_model = hostile[:200]
            db.add(turn)
        model = db.get(CatalogModel, EXAMPLE_MODEL_ID)
        assert model is not None
        model.display_name = HOSTILE[1]
        db.add(model)
        delivery = db.exec(select(Delivery)).first()
        assert delivery is not None
        delivery.error = HOSTILE[0]
        db.add(delivery)
    record_report_input(
        site.ledger,
        run_id=run_id,
        kind="operator_analysis",
        text="\n".join(HOSTILE),
        supplied_by=HOSTILE[2],
    )

    page = render_report_html(site.ledger, run_id)
    markdown = render_report(site.ledger, run_id)

    parser = _Elements()
    parser.feed(page)
    for tag, attrs in parser.tags:
        assert tag in ALLOWED_TAGS, tag
        for name, value in attrs:
            assert name in {"id", "href", "class", "style", "lang", "charset"}, (tag, name)
            if name == "href":
                assert value and value.startswith("#"), value
            if name == "style":
                assert tag == "li" and value and value.startswith("margin-left:"), value
    assert "&lt;script&gt;" in page and "<script" not in page
    assert "\x1b" not in page and "\x00" not in page and "\u241b" in page
    assert "x" * 5000 in page  # very long lines are kept, wrapped by CSS
    assert "\n## Injected heading" not in markdown.split("## 5. Interview")[0]
    assert page.count("<h2") == 9  # the report's own sections; no injected heading
    assert "<h2>Injected heading" not in page
