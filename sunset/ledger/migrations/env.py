"""Alembic environment: runs the ledger's migrations on the connection it is given."""

from alembic import context
from sqlalchemy import engine_from_config, pool
from sqlmodel import SQLModel

from sunset.ledger import load_all_tables

load_all_tables()  # every table on SQLModel.metadata, which the migrations are checked against

target_metadata = SQLModel.metadata
config = context.config


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        engine = engine_from_config(
            config.get_section(config.config_ini_section, {}),
            prefix="sqlalchemy.",
            poolclass=pool.NullPool,
        )
        with engine.connect() as connection:
            _run(connection)
    else:
        _run(connection)


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
