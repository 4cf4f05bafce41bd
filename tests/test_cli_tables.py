"""`sunset runs` and `sunset status` at 80 columns: short run ids that the other commands
accept, model ids whole, errors wrapped instead of cut, and `--wide` for everything."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from rich.console import Console

from sunset.catalog import DeprecationRecord, ModelRecord
from sunset.cli import output
from sunset.ledger import (
    CatalogModel,
    DeliverySummary,
    Deprecation,
    DeprecationRun,
    DeprecationStage,
    Snapshot,
)
from sunset.runs.history import AttemptLine, RunLine

pytestmark = pytest.mark.unit

LONG_MODEL_ID = "acme-enterprise-chat-2025-10-01-preview1"  # 40 characters
SUCCESSOR_ID = "acme-enterprise-chat-2026-01-15-preview2"
RUN_ID = "8d81008a5c2e4f7b9a0d1e2f3a4b5c6d"
LONG_ERROR = (
    "InterviewError: the Messages API refused the request for model "
    f"{LONG_MODEL_ID} after 5 attempts over 95 seconds; check SUNSET_ANTHROPIC_API_KEY "
    "and that the model id is one the API serves, then resume the run"
)
STARTED = datetime(2026, 11, 30, 2, 19, 23, tzinfo=UTC)


@pytest.fixture
def screen(monkeypatch: pytest.MonkeyPatch) -> Console:
    """An 80-column terminal that keeps what the commands print."""
    console = Console(record=True, width=80)
    monkeypatch.setattr(output, "console", console)
    return console


def printed(console: Console) -> list[str]:
    lines = console.export_text().splitlines()
    assert max(len(line) for line in lines) <= 80
    return lines


def flowing(lines: list[str]) -> str:
    """The printed text with every run of whitespace as one space, so wrapped text reads
    as one sentence again."""
    return " ".join(" ".join(lines).split())


def a_failed_run() -> RunLine:
    return RunLine(
        id=RUN_ID,
        model_id=LONG_MODEL_ID,
        state="failed",
        started_at=STARTED,
        finished_at=STARTED,
        error=LONG_ERROR,
        attempts=[
            AttemptLine("preflight", 1, "completed"),
            AttemptLine("run_interviews", 1, "failed"),
        ],
    )


def test_runs_at_80_columns_show_the_short_id_the_whole_model_id_and_the_whole_error(
    screen: Console,
) -> None:
    output.show_runs([a_failed_run()])

    lines = printed(screen)
    assert any(LONG_MODEL_ID in line for line in lines)
    assert any(RUN_ID[:8] in line for line in lines)
    assert not any(RUN_ID[:9] in line for line in lines)
    assert LONG_ERROR in flowing(lines)


def test_runs_wide_on_a_wide_terminal_show_everything_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    screen = Console(record=True, width=200)
    monkeypatch.setattr(output, "console", screen)

    output.show_runs([a_failed_run()], wide=True)

    lines = screen.export_text().splitlines()
    assert max(len(line) for line in lines) <= 200
    assert any(RUN_ID in line for line in lines)
    assert any(LONG_MODEL_ID in line for line in lines)
    assert any("preflight #1 completed" in line for line in lines)
    assert any("run_interviews #1 failed" in line for line in lines)
    assert LONG_ERROR in flowing(lines)


def test_an_error_prints_as_written_not_as_markup(screen: Console) -> None:
    run = a_failed_run()
    output.show_runs([RunLine(**{**run.__dict__, "error": "KeyError: [bold]weights[/]"})])

    assert "KeyError: [bold]weights[/]" in flowing(printed(screen))


def test_the_catalog_at_80_columns_shows_model_ids_whole(screen: Console) -> None:
    models = [
        CatalogModel(
            id=LONG_MODEL_ID,
            display_name="Acme Enterprise Chat (October preview)",
            released_on=date(2025, 10, 1),
            retirement_on=date(2026, 11, 30),
            replacement_id=SUCCESSOR_ID,
        ),
        CatalogModel(id=SUCCESSOR_ID, display_name="Acme Enterprise Chat (January preview)"),
    ]

    output.show_catalog(models)

    lines = printed(screen)
    assert any(LONG_MODEL_ID in line for line in lines)
    assert any(SUCCESSOR_ID in line for line in lines)
    assert any("2026-11-30" in line for line in lines)


def test_the_model_record_shows_short_run_ids_and_whole_ones_when_wide(screen: Console) -> None:
    record = ModelRecord(
        model=CatalogModel(id=LONG_MODEL_ID, display_name="Acme Enterprise Chat"),
        package=None,
        report=None,
        fingerprint=None,
        drill=None,
        deliveries=[
            DeliverySummary(
                run_id=RUN_ID,
                channel="email",
                recipients=3,
                sent=3,
                sent_before=0,
                failed=0,
                unconfirmed=0,
                skipped=0,
            )
        ],
        approvals=[],
        transitions=[],
    )

    output.show_model(record)
    narrow = printed(screen)
    output.show_model(record, wide=True)
    wide = printed(screen)  # exporting clears the record: these lines are the wide ones

    assert f"(run {RUN_ID[:8]})" in flowing(narrow) and RUN_ID not in flowing(narrow)
    assert any(LONG_MODEL_ID in line for line in narrow)
    assert any(RUN_ID in line for line in wide)


def test_the_deprecation_at_80_columns_shows_its_stage_dates_package_and_runs(
    screen: Console,
) -> None:
    deprecation = Deprecation(
        model_id=LONG_MODEL_ID,
        stage=DeprecationStage.ANNOUNCED,
        announced_on=date(2026, 9, 1),
        retirement_on=date(2026, 11, 30),
        snapshot_id="20260901T021923Z-8d81008a",
    )
    package = Snapshot(
        id="20260901T021923Z-8d81008a",
        run_id=RUN_ID,
        model_id=LONG_MODEL_ID,
        endpoint="https://s3.example",
        bucket="acme-preservation",
        prefix=f"models/{LONG_MODEL_ID}/20260901T021923Z-8d81008a/",
    )
    runs = [
        DeprecationRun(id=RUN_ID, model_id=LONG_MODEL_ID, state="completed", started_at=STARTED),
        DeprecationRun(
            id="5e5e5e5e" + "0" * 24,
            model_id=LONG_MODEL_ID,
            state="running",
            started_at=STARTED,
            parameters={"retire": True},
        ),
    ]

    output.show_deprecation(LONG_MODEL_ID, DeprecationRecord(deprecation, package, runs))

    lines = printed(screen)
    facts = ["".join(c for c in line if c not in "│┌┐└┘─┬┴").split() for line in lines]
    assert ["Stage", "announced"] in facts and ["Announced", "2026-09-01"] in facts
    assert ["Retirement", "date", "2026-11-30"] in facts
    assert f"s3://acme-preservation/{package.prefix}" in "".join(map("".join, facts))
    assert any(RUN_ID[:8] in line and "announce" in line and "completed" in line for line in lines)
    assert any("5e5e5e5e " in line and "retire" in line and "running" in line for line in lines)
    assert RUN_ID not in flowing(lines)


def test_a_runs_outcome_names_each_locked_leftover_whole(screen: Console) -> None:
    from flows.deprecate import DeprecationOutcome

    leftover = (
        "s3://sunset-packages/models/m/20261130T021923Z-8d81008a/data/weights/[shard].bin "
        "version 3f2a9c1b (52428800 bytes, locked until 2126-11-06)"
    )
    output.show_outcome(
        DeprecationOutcome(RUN_ID, "m", "s3://sunset-packages/models/m/", "r.md", "deprecated")
    )
    assert "leftover" not in flowing(printed(screen))

    output.show_outcome(
        DeprecationOutcome(
            RUN_ID,
            "m",
            "s3://sunset-packages/models/m/",
            "r.md",
            "deprecated",
            leftovers=(leftover,),
        )
    )

    # The line whole, however the table wrapped it: the right column's text, read on.
    cells = [line.split("│")[2] for line in printed(screen) if line.count("│") == 3]
    shown = "".join("".join(cells).split())
    assert "notpartofthepackage(seethereport):" + "".join(leftover.split()) in shown
