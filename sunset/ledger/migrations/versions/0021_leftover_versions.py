"""leftover versions: weights versions a replica holds that the package does not use

Revision ID: 0021_leftover_versions
Revises: 0020_delivery_decisions
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import sunset.ledger.models

revision: str = "0021_leftover_versions"
down_revision: str | None = "0020_delivery_decisions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "leftover_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("snapshot_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("run_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("replica", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("endpoint", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("bucket", sqlmodel.sql.sqltypes.AutoString(length=63), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("version_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("retain_until", sunset.ledger.models.UTCDateTime(), nullable=True),
        sa.Column("found_at", sunset.ledger.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["deprecation_runs.id"]),
        sa.ForeignKeyConstraint(["snapshot_id"], ["snapshots.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("snapshot_id", "replica", "key", "version_id"),
    )
    with op.batch_alter_table("leftover_versions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_leftover_versions_snapshot_id"), ["snapshot_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("leftover_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_leftover_versions_snapshot_id"))
    op.drop_table("leftover_versions")
