"""preservation: replicas, locked versions, audit runs

Revision ID: 0003_preservation
Revises: 0001
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import sunset.ledger.models

revision: str = "0003_preservation"
down_revision: str | None = "0004_interviews"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AUDIT_FK = "fk_fixity_events_audit_id_audit_runs"


def upgrade() -> None:
    op.create_table(
        "audit_runs",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("flow_run_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("started_at", sunset.ledger.models.UTCDateTime(), nullable=False),
        sa.Column("finished_at", sunset.ledger.models.UTCDateTime(), nullable=True),
        sa.Column("summary", sa.JSON(), nullable=True),
        sa.Column("error", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "audit_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("step", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("flow_run_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("started_at", sunset.ledger.models.UTCDateTime(), nullable=False),
        sa.Column("finished_at", sunset.ledger.models.UTCDateTime(), nullable=True),
        sa.Column("summary", sa.JSON(), nullable=True),
        sa.Column("error", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["audit_runs.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "step", "attempt"),
    )
    with op.batch_alter_table("audit_attempts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_attempts_run_id"), ["run_id"], unique=False)

    op.create_table(
        "preserved_objects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("snapshot_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("replica", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("endpoint", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("bucket", sqlmodel.sql.sqltypes.AutoString(length=63), nullable=False),
        sa.Column("path", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("sha512", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("crc64nvme", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("version_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("retain_until", sunset.ledger.models.UTCDateTime(), nullable=False),
        sa.Column("stored_at", sunset.ledger.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["snapshots.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("snapshot_id", "replica", "path"),
    )
    with op.batch_alter_table("preserved_objects", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_preserved_objects_snapshot_id"), ["snapshot_id"], unique=False
        )

    with op.batch_alter_table("fixity_events", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("replica", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )
        batch_op.add_column(
            sa.Column("version_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True)
        )
        batch_op.add_column(
            sa.Column("audit_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True)
        )
        batch_op.create_foreign_key(AUDIT_FK, "audit_runs", ["audit_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("fixity_events", schema=None) as batch_op:
        batch_op.drop_constraint(AUDIT_FK, type_="foreignkey")
        batch_op.drop_column("audit_id")
        batch_op.drop_column("version_id")
        batch_op.drop_column("replica")

    with op.batch_alter_table("preserved_objects", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_preserved_objects_snapshot_id"))

    op.drop_table("preserved_objects")
    with op.batch_alter_table("audit_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_attempts_run_id"))

    op.drop_table("audit_attempts")
    op.drop_table("audit_runs")
