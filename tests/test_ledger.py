"""The ledger on SQLite and on PostgreSQL: migrations, time zones, the records' guarantees."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from sunset.ledger import (
    CatalogModel,
    Delivery,
    DeprecationRun,
    Ledger,
    StepAttempt,
    open_ledger,
)
from sunset.runs.attempts import record_attempt

# The ledger's own tests on both databases; SQLite is a file in a temporary directory, so
# that half is in the fast tier, while PostgreSQL is a service.
on_both_databases = pytest.mark.parametrize(
    "ledger_url", [pytest.param("sqlite", marks=pytest.mark.unit), "postgresql"], indirect=True
)


@on_both_databases
def test_migrations_create_every_table_and_are_idempotent(ledger_url: str) -> None:
    ledger = open_ledger(ledger_url)
    ledger.migrate()  # a second upgrade is a no-op

    tables = set(sa.inspect(ledger.engine).get_table_names())

    assert {
        "alembic_version",
        "catalog_models",
        "deprecation_runs",
        "step_attempts",
        "deliveries",
        "snapshots",
        "snapshot_files",
        "fixity_events",
        "interview_sessions",
        "interview_turns",
        "reports",
        "status_transitions",
        "fingerprints",
        "drill_events",
    } <= tables
    with ledger.engine.connect() as connection:
        assert connection.execute(sa.text("select version_num from alembic_version")).scalar()
    ledger.dispose()


@on_both_databases
def test_timestamps_come_back_in_utc(ledger_url: str) -> None:
    ledger = open_ledger(ledger_url)
    moment = datetime(2026, 11, 27, 12, 30, 5, tzinfo=UTC)
    with ledger.session() as db:
        db.add(CatalogModel(id="m1", display_name="M1", created_at=moment))

    with ledger.session() as db:
        stored = db.get(CatalogModel, "m1")

    assert stored is not None and stored.created_at == moment
    assert stored.created_at.tzinfo is not None
    ledger.dispose()


@on_both_databases
def test_each_attempt_is_recorded_with_its_number_and_error(ledger_url: str) -> None:
    ledger = open_ledger(ledger_url)
    with ledger.session() as db:
        db.add(CatalogModel(id="m1", display_name="M1"))
        db.add(DeprecationRun(id="run1", model_id="m1"))

    with pytest.raises(ConnectionResetError):
        with record_attempt(ledger, run_id="run1", step="snapshot", flow_run_id=None):
            raise ConnectionResetError("connection reset by peer")
    with record_attempt(ledger, run_id="run1", step="snapshot", flow_run_id=None) as attempt:
        attempt.result = {"files": 3}

    with ledger.session() as db:
        rows = db.exec(sa.select(StepAttempt).order_by(StepAttempt.id)).scalars().all()
    assert [(r.attempt, r.state) for r in rows] == [(1, "failed"), (2, "completed")]
    assert rows[0].error == "ConnectionResetError: connection reset by peer"
    assert rows[1].summary == {"files": 3}
    assert all(r.finished_at and r.finished_at >= r.started_at for r in rows)
    ledger.dispose()


@on_both_databases
def test_the_same_notice_cannot_be_recorded_twice_for_a_recipient(ledger_url: str) -> None:
    ledger = open_ledger(ledger_url)
    with ledger.session() as db:
        db.add(CatalogModel(id="m1", display_name="M1"))
        db.add(DeprecationRun(id="run1", model_id="m1"))
    notice = {
        "model_id": "m1",
        "notice_key": "deprecation:2027-01-01",
        "run_id": "run1",
        "recipient": "ada@example.org",
        "channel": "email",
        "message_id": "<x@sunset>",
        "state": "sent",
    }
    with ledger.session() as db:
        db.add(Delivery(**notice))

    with pytest.raises(IntegrityError), ledger.session() as db:
        db.add(Delivery(**notice))
    ledger.dispose()


@pytest.mark.unit
def test_the_migrations_form_one_line_with_a_single_head() -> None:
    from alembic.script import ScriptDirectory

    from sunset.ledger.db import alembic_config

    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()

    assert len(heads) == 1, f"the migrations fork into {heads}; chain them into one line"


@pytest.mark.unit
def test_the_ledger_reads_the_newest_migration_from_the_files_as_alembic_does() -> None:
    from alembic.script import ScriptDirectory

    from sunset.ledger.db import alembic_config, newest_revision

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()

    assert newest_revision() == head


@on_both_databases
def test_a_ledger_a_migration_behind_is_still_brought_to_the_newest(ledger_url: str) -> None:
    """Opening skips Alembic only for a ledger already at the newest migration."""
    from alembic import command

    from sunset.ledger.db import alembic_config, newest_revision

    open_ledger(ledger_url).dispose()
    command.downgrade(alembic_config(ledger_url), "-1")
    behind = Ledger(ledger_url)
    assert behind.recorded_revision() not in (None, newest_revision())
    behind.dispose()

    ledger = open_ledger(ledger_url)

    assert ledger.recorded_revision() == newest_revision()
    ledger.dispose()


@on_both_databases
def test_the_migrated_schema_is_exactly_the_models(ledger_url: str) -> None:
    """Autogenerate's comparison finds nothing: the tables and the migrations agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    from sunset.ledger import load_all_tables

    load_all_tables()
    ledger = open_ledger(ledger_url)
    with ledger.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    ledger.dispose()

    assert differences == []


@pytest.mark.unit
def test_every_name_of_the_package_comes_from_the_module_it_is_typed_from() -> None:
    import ast
    import importlib
    from pathlib import Path

    import sunset.ledger

    source = ast.parse(Path(sunset.ledger.__file__).read_text(encoding="utf-8"))
    [typed] = [node for node in source.body if isinstance(node, ast.If)]  # TYPE_CHECKING
    typed_homes = {
        alias.name: str(node.module).rsplit(".", 1)[1]
        for node in typed.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }

    assert typed_homes == sunset.ledger._HOMES
    assert sorted(sunset.ledger.__all__) == sorted(typed_homes)
    for name, module in typed_homes.items():
        defined = getattr(importlib.import_module(f"sunset.ledger.{module}"), name)
        assert getattr(sunset.ledger, name) is defined, name
    with pytest.raises(AttributeError):
        _ = sunset.ledger.NoSuchTable  # type: ignore[attr-defined]


@pytest.mark.unit
@pytest.mark.parametrize(
    "domain",
    ["audit", "deprecation", "interview", "notify", "preservation", "report", "runs", "serving"],
)
def test_a_domain_loaded_alone_brings_the_tables_its_foreign_keys_name(domain: str) -> None:
    # A fresh process, as a worker that writes only deliveries is: the package loads a
    # domain on first use, and a flush fails if a foreign key names a table not loaded.
    import subprocess
    import sys

    probe = (
        "import importlib, sqlmodel\n"
        f"importlib.import_module('sunset.ledger.{domain}')\n"
        "for table in sqlmodel.SQLModel.metadata.tables.values():\n"
        "    for key in table.foreign_keys:\n"
        "        key.column\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-600:]
