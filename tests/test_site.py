"""`sunset site`: the public deprecations page and its JSON feed, written from the ledger
and rendered in headless Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import jsonschema
import pytest
from PIL import Image
from pydantic import ValidationError
from sqlmodel import select
from typer.testing import CliRunner, Result

from sunset.cli import app
from sunset.config import Settings
from sunset.ledger import (
    CatalogModel,
    Deprecation,
    DeprecationRun,
    DeprecationStage,
    Ledger,
    Report,
    RunState,
    ServingStatus,
    Snapshot,
    SnapshotState,
    open_ledger,
)
from sunset.site import transition_page_url
from sunset.site.entries import PublicStatus
from sunset.site.render import STATUS_COLOURS

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "sunset" / "site" / "deprecations.schema.json").read_text())
ARTIFACTS = ROOT / "tests" / "artifacts"
HOSTILE = '<script>alert("owned")</script> & <b>Chat</b>'
# The page's order: still served, soonest retirement first; then the rest, latest first.
LISTED = ["chat-3-mini", "chat-3", "chat-2", "chat-1", "chat-0"]
UNIT_ON_SQLITE = pytest.mark.parametrize(
    "ledger_url", [pytest.param("sqlite", marks=pytest.mark.unit)], indirect=True
)


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    """A catalog with a model in every listed standing, and two that are not listed."""
    opened = open_ledger(ledger_url)
    add_catalog(opened)
    yield opened
    opened.dispose()


def add_catalog(ledger: Ledger) -> None:
    def model(model_id: str, status: ServingStatus, name: str | None = None) -> CatalogModel:
        return CatalogModel(
            id=model_id,
            display_name=name or model_id.replace("-", " ").title(),
            serving_status=status,
        )

    def deprecation(
        model_id: str,
        stage: DeprecationStage,
        announced: date | None,
        retirement: date,
        successor: str | None = None,
    ) -> Deprecation:
        return Deprecation(
            model_id=model_id,
            stage=stage,
            announced_on=announced,
            retirement_on=retirement,
            replacement_id=successor,
        )

    with ledger.session() as db:
        db.add(model("chat-4", ServingStatus.ACTIVE))  # never deprecated
        db.add(model("chat-9", ServingStatus.ACTIVE))  # its deprecation was cancelled
        db.add(model("chat-8", ServingStatus.ACTIVE))  # planned: nobody told yet
        db.add(model("chat-3", ServingStatus.DEPRECATED, name=HOSTILE))
        # Notices out, the flip to deprecated still to come at the end of its run.
        db.add(model("chat-3-mini", ServingStatus.ACTIVE))
        db.add(model("chat-2", ServingStatus.RETIRED))
        db.add(model("chat-1", ServingStatus.ON_REQUEST))
        db.add(model("chat-0", ServingStatus.ACTIVE))
        db.flush()
        announced, retired = DeprecationStage.ANNOUNCED, DeprecationStage.RETIRED
        db.add(
            deprecation("chat-9", DeprecationStage.CANCELLED, date(2026, 10, 1), date(2027, 1, 1))
        )
        db.add(deprecation("chat-8", DeprecationStage.PLANNED, None, date(2027, 2, 1)))
        db.add(deprecation("chat-3", announced, date(2026, 11, 2), date(2027, 3, 1), "chat-4"))
        db.add(deprecation("chat-3-mini", announced, date(2026, 11, 20), date(2027, 1, 15)))
        db.add(
            deprecation("chat-1", DeprecationStage.ON_REQUEST, date(2025, 3, 1), date(2025, 6, 1))
        )
        db.add(
            deprecation(
                "chat-0", DeprecationStage.REINSTATED, date(2024, 9, 1), date(2024, 12, 1), "chat-4"
            )
        )
        # chat-2's package is stored and verified, and its report sealed.
        chat_2 = deprecation("chat-2", retired, date(2026, 3, 1), date(2026, 6, 1), "chat-3")
        db.add(chat_2)
        db.flush()
        run = DeprecationRun(model_id="chat-2", state=RunState.COMPLETED, deprecation_id=chat_2.id)
        db.add(run)
        db.flush()
        db.add(
            Snapshot(
                id="chat-2-snapshot",
                run_id=run.id,
                model_id="chat-2",
                endpoint="http://127.0.0.1:1",
                bucket="sunset-preservation",
                prefix="models/chat-2/chat-2-snapshot/",
                state=SnapshotState.STORED,
            )
        )
        db.flush()
        chat_2.snapshot_id = "chat-2-snapshot"
        db.add(chat_2)
        db.add(
            Report(
                run_id=run.id,
                snapshot_id="chat-2-snapshot",
                version=1,
                key="models/chat-2/chat-2-snapshot/data/report/report.md",
                sha256="0" * 64,
                local_path="report-v1.md",
            )
        )


def run_site(
    ledger: Ledger, out: Path, *, public_url: str | None = None, templates: Path | None = None
) -> Result:
    env = {
        "SUNSET_DATABASE_URL": ledger.url,
        "SUNSET_DATA_DIR": str(out.parent / "data"),
        "SUNSET_ORGANIZATION": "Example Labs",
        "SUNSET_SUPPORT_CONTACT": "help@example.org",
        # None unsets a variable, so the test's own environment cannot leak in.
        "SUNSET_PUBLIC_URL": public_url,
        "SUNSET_NOTICE_TEMPLATES_DIR": None if templates is None else str(templates),
    }
    return CliRunner().invoke(app, ["site", "--out", str(out)], env=env, terminal_width=200)


def read_feed(out: Path) -> dict:
    feed = json.loads((out / "deprecations.json").read_text())
    jsonschema.validate(feed, SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    return feed


@pytest.mark.parametrize(
    "ledger_url", [pytest.param("sqlite", marks=pytest.mark.unit), "postgresql"], indirect=True
)
def test_the_feed_lists_every_announced_model_in_page_order_and_matches_its_schema(
    ledger: Ledger, tmp_path: Path
) -> None:
    out = tmp_path / "public"

    result = run_site(ledger, out, public_url="https://example.org/model-deprecations/")

    assert result.exit_code == 0, result.output
    assert str(out / "index.html") in result.stdout and "5 models listed" in result.stdout
    feed = read_feed(out)
    assert feed["organization"] == "Example Labs"
    entries = {entry["model_id"]: entry for entry in feed["deprecations"]}
    assert [entry["model_id"] for entry in feed["deprecations"]] == LISTED
    assert {model: entry["status"] for model, entry in entries.items()} == {
        "chat-3-mini": "deprecated",
        "chat-3": "deprecated",
        "chat-2": "retired",
        "chat-1": "on_request",
        "chat-0": "reinstated",
    }
    assert entries["chat-3"] == {
        "model_id": "chat-3",
        "name": HOSTILE,
        "status": "deprecated",
        "announced_on": "2026-11-02",
        "retirement_on": "2027-03-01",
        "successor": {"id": "chat-4", "name": "Chat 4"},
        "transition_page": "models/chat-3.html",
        "url": "https://example.org/model-deprecations/models/chat-3.html",
    }
    assert entries["chat-2"]["successor"] == {"id": "chat-3", "name": HOSTILE}
    assert entries["chat-1"]["successor"] is None
    pages = sorted(page.name for page in (out / "models").iterdir())
    assert pages == sorted(f"{model}.html" for model in LISTED)


@UNIT_ON_SQLITE
def test_display_names_are_escaped_on_every_page(ledger: Ledger, tmp_path: Path) -> None:
    out = tmp_path / "public"

    assert run_site(ledger, out).exit_code == 0

    escaped = "&lt;script&gt;alert(&#34;owned&#34;)&lt;/script&gt; &amp; &lt;b&gt;Chat&lt;/b&gt;"
    for page in ("index.html", "models/chat-3.html", "models/chat-2.html"):
        text = (out / page).read_text()
        assert "<script" not in text and "<b>" not in text, page
        assert escaped in text, page
    # The retired model's successor is listed too: linked to its entry, escaped.
    index = (out / "index.html").read_text()
    assert f'<a href="#chat-3">{escaped}</a>' in index
    assert 'href="models/chat-0.html"' in index and "chat-9" not in index


@UNIT_ON_SQLITE
def test_without_a_public_url_the_feed_gives_relative_pages_only(
    ledger: Ledger, tmp_path: Path
) -> None:
    out = tmp_path / "public"

    assert run_site(ledger, out).exit_code == 0

    feed = read_feed(out)
    assert {entry["url"] for entry in feed["deprecations"]} == {None}
    assert feed["deprecations"][0]["transition_page"] == "models/chat-3-mini.html"


@pytest.mark.unit
def test_transition_page_url_joins_the_public_url_and_the_page() -> None:
    for base in ("https://example.org/deprecations", "https://example.org/deprecations/"):
        settings = Settings(public_url=base)
        assert transition_page_url(settings, "chat-3") == (
            "https://example.org/deprecations/models/chat-3.html"
        )
    assert transition_page_url(Settings(public_url=None), "chat-3") is None
    with pytest.raises(ValidationError, match="not a web address"):
        Settings(public_url="example.org/deprecations")


@UNIT_ON_SQLITE
def test_transition_pages_say_where_each_model_stands_and_what_is_preserved(
    ledger: Ledger, tmp_path: Path
) -> None:
    out = tmp_path / "public"

    assert run_site(ledger, out).exit_code == 0

    mini = (out / "models" / "chat-3-mini.html").read_text()
    assert "keeps serving as it does today until 2027-01-15" in mini
    assert "Until 2027-01-15, send the same prompts to both models" in mini
    assert "Before Chat 3 Mini is retired, Example Labs preserves its weights" in mini
    assert "No successor is named for Chat 3 Mini" in mini
    retired = (out / "models" / "chat-2.html").read_text()
    assert "was retired on 2026-06-01" in retired
    assert "The weights of Chat 2 are preserved by Example Labs" in retired
    assert "Its post-deployment report" in retired
    # The notices' migration guide, naming the successor's id.
    assert "Replace the model id <code>chat-2</code> with <code>chat-3</code>" in retired
    assert '<a href="chat-3.html">' in retired
    on_request = (out / "models" / "chat-1.html").read_text()
    assert "available on request: to ask for access, write to\nhelp@example.org" in on_request
    assert "has since been reinstated" in (out / "models" / "chat-0.html").read_text()


@UNIT_ON_SQLITE
def test_a_deployment_overrides_the_guide_and_the_advice(ledger: Ledger, tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "migration_guide.html.j2").write_text(
        "<p>Call {{ support_contact }} to move off {{ model.id }}.</p>\n"
    )
    (templates / "adapting_to_successor.html.j2").write_text(
        "<p>Our own advice on {{ model.display_name }} ({{ status }}).</p>\n"
    )
    out = tmp_path / "public"

    result = run_site(ledger, out, templates=templates)

    assert result.exit_code == 0, result.output
    page = (out / "models" / "chat-3.html").read_text()
    assert "<p>Call help@example.org to move off chat-3.</p>" in page
    assert "<p>Our own advice on &lt;script&gt;" in page and "(deprecated).</p>" in page
    assert "Every model has a character of its own" not in page


@UNIT_ON_SQLITE
def test_a_broken_template_is_one_sentence_and_the_published_site_stays(
    ledger: Ledger, tmp_path: Path
) -> None:
    out = tmp_path / "public"
    assert run_site(ledger, out).exit_code == 0
    before = {path: path.read_bytes() for path in out.rglob("*") if path.is_file()}
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "adapting_to_successor.html.j2").write_text("{{ model.nickname }}\n")

    result = run_site(ledger, out, templates=templates)

    assert result.exit_code == 1
    assert result.stderr.startswith("Error: Template adapting_to_successor.html.j2 cannot be")
    assert "it may use only announced, model, organization" in result.stderr
    assert {path: path.read_bytes() for path in out.rglob("*") if path.is_file()} == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".staging")]


@UNIT_ON_SQLITE
def test_publishing_again_replaces_the_pages_and_drops_a_cancelled_model(
    ledger: Ledger, tmp_path: Path
) -> None:
    out = tmp_path / "public"
    assert run_site(ledger, out).exit_code == 0
    (out / "robots.txt").write_text("User-agent: *\n")
    with ledger.session() as db:  # chat-3-mini's deprecation is cancelled
        mini = db.exec(select(Deprecation).where(Deprecation.model_id == "chat-3-mini")).one()
        mini.stage = DeprecationStage.CANCELLED
        db.add(mini)

    result = run_site(ledger, out)

    assert result.exit_code == 0, result.output
    assert [e["model_id"] for e in read_feed(out)["deprecations"]] == LISTED[1:]
    assert not (out / "models" / "chat-3-mini.html").exists()
    assert "chat-3-mini" not in (out / "index.html").read_text()
    assert (out / "robots.txt").read_text() == "User-agent: *\n"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".staging")]


@UNIT_ON_SQLITE
def test_an_empty_list_is_a_page_that_says_so(ledger_url: str, tmp_path: Path) -> None:
    empty = open_ledger(ledger_url)
    out = tmp_path / "public"

    result = run_site(empty, out)

    assert result.exit_code == 0, result.output
    assert "0 models listed" in result.stdout
    assert read_feed(out)["deprecations"] == []
    assert "No model has been deprecated." in (out / "index.html").read_text()
    empty.dispose()


@UNIT_ON_SQLITE
def test_an_out_that_is_a_file_is_refused(ledger: Ledger, tmp_path: Path) -> None:
    out = tmp_path / "public"
    out.write_text("not a directory")

    result = run_site(ledger, out)

    assert result.exit_code == 1
    assert result.stderr == f"Error: {out} is a file, not a directory; choose another --out.\n"


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_chromium_renders_a_coloured_row_for_every_status(ledger: Ledger, tmp_path: Path) -> None:
    out = tmp_path / "public"
    assert run_site(ledger, out).exit_code == 0
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "site-index.png"
    screenshot.unlink(missing_ok=True)

    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is needed (.ci/run installs it: apt-get install chromium)"
    done = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--force-color-profile=srgb",
            "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={screenshot}",
            "--window-size=1200,800",
            (out / "index.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr[-2000:]
    with Image.open(screenshot) as image:
        assert image.size == (1200, 800)
        counts = {colour: count for count, colour in image.convert("RGB").getcolors(1200 * 800)}
    for status in PublicStatus:
        colour = STATUS_COLOURS[status]
        rgb = tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))
        # A rendered row is at least a full-width band a line of text high.
        assert counts.get(rgb, 0) > 20_000, f"no {status} row in {screenshot}"
