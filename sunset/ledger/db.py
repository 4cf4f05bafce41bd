"""Opening the ledger: one engine per URL, the schema brought to head by Alembic."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlmodel import Session

from sunset.errors import InputError

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(url: str) -> Config:
    """An Alembic configuration for the ledger at ``url``, without an alembic.ini."""
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
        with self.engine.begin() as connection:
            config = alembic_config(self.url)
            config.attributes["connection"] = connection
            # The single head: a fork in the migrations fails here instead of being applied.
            command.upgrade(config, "head")

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
