"""pending writes of small package objects

Revision ID: 0012_pending_writes
Revises: 0011_orchestrator_lease
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import sunset.ledger.models

revision: str = "0012_pending_writes"
down_revision: str | None = "0011_orchestrator_lease"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pending_writes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("snapshot_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("path", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("payload", sa.Boolean(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("sha512", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("crc64nvme", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("begun_at", sunset.ledger.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["snapshot_id"], ["snapshots.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("snapshot_id", "path"),
    )
    with op.batch_alter_table("pending_writes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_pending_writes_snapshot_id"), ["snapshot_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("pending_writes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pending_writes_snapshot_id"))
    op.drop_table("pending_writes")
