"""Opening the ledger: one engine per URL, the schema brought to head by Alembic.

Alembic is loaded only when the schema is not current: it takes longer to load (about
0.2 s) than a command that reads the ledger takes to run.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlmodel import Session

from sunset.errors import InputError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")

# A migration's `revision = "..."` and `down_revision = ...` lines, as Alembic writes them.
_REVISION_LINE = re.compile(r"^(revision|down_revision)\b[^=\n]*=(.+)$", re.MULTILINE)


def alembic_config(url: str) -> Config:
    """An Alembic configuration for the ledger at ``url``, without an alembic.ini."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


class Ledger:
    """The ledger database: hands out short transactions, one per recorded fact."""

    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            # Several threads (task runner, interview sessions) share the file; wait for
            # the write lock instead of failing at once.
            self.engine = sa.create_engine(
                url, connect_args={"timeout": 30, "check_same_thread": False}
            )
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self.engine = sa.create_engine(url, pool_pre_ping=True)

    def migrate(self) -> None:
        """Bring the schema to the newest migration (a no-op when it is current)."""
        newest = newest_revision()
        if newest is not None and self.recorded_revision() == newest:
            return
        from alembic import command

        with self.engine.begin() as connection:
            config = alembic_config(self.url)
            config.attributes["connection"] = connection
            # The single head: a fork in the migrations fails here instead of being applied.
            command.upgrade(config, "head")

    def recorded_revision(self) -> str | None:
        """The migration the database records it is at; None for a new, empty database."""
        try:
            with self.engine.connect() as connection:
                return connection.execute(
                    sa.text("SELECT version_num FROM alembic_version")
                ).scalar()
        except sa.exc.DBAPIError:  # no alembic_version table yet
            return None

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose work is committed on success and rolled back on any error."""
        with Session(self.engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def newest_revision() -> str | None:
    """The migration the others lead up to, read from the migration files without Alembic;
    None (so Alembic decides) unless every file names its revision plainly and exactly one
    revision is not revised by another."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        lines = dict(_REVISION_LINE.findall(path.read_text(encoding="utf-8")))
        try:
            revision = ast.literal_eval(lines["revision"].strip())
            down = ast.literal_eval(lines["down_revision"].strip())
        except (KeyError, ValueError, SyntaxError):
            return None
        if not isinstance(revision, str):
            return None
        revisions.add(revision)
        revised.update([down] if isinstance(down, str) else down or ())
    heads = revisions - revised
    return heads.pop() if len(heads) == 1 else None


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def open_ledger(url: str) -> Ledger:
    """Open the ledger at ``url`` and migrate it to the current schema."""
    ledger = Ledger(url)
    ledger.migrate()
    return ledger


def open_existing_ledger(url: str) -> Ledger:
    """Open the ledger at ``url`` for a command that only reads it: a SQLite ledger that
    is not there is an error, not a new empty file.

    Raises:
        InputError: no SQLite file at the URL's path, naming the settings that choose it.
    """
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise InputError(
            f"There is no ledger at {url.removeprefix('sqlite:///')}: set SUNSET_DATA_DIR to "
            "the data directory your runs used, or SUNSET_DATABASE_URL to the ledger's "
            "database, and run again."
        )
    return open_ledger(url)
