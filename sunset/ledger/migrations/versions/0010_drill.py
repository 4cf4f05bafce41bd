"""fingerprints and resurrection drills

Revision ID: 0010_drill
Revises: 0001
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import sunset.ledger.models

revision: str = "0010_drill"
down_revision: str | None = "0005_serving"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "drill_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("snapshot_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("run_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("endpoint", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("bucket", sqlmodel.sql.sqltypes.AutoString(length=63), nullable=False),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("detail", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("files_restored", sa.Integer(), nullable=False),
        sa.Column("bytes_restored", sa.BigInteger(), nullable=False),
        sa.Column("prompts_checked", sa.Integer(), nullable=False),
        sa.Column("prompts_matched", sa.Integer(), nullable=False),
        sa.Column("mismatched_prompts", sa.JSON(), nullable=True),
        sa.Column("runtime", sa.JSON(), nullable=True),
        sa.Column("restore_s", sa.Float(), nullable=False),
        sa.Column("load_s", sa.Float(), nullable=False),
        sa.Column("replay_s", sa.Float(), nullable=False),
        sa.Column("started_at", sunset.ledger.models.UTCDateTime(), nullable=False),
        sa.Column("finished_at", sunset.ledger.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["catalog_models.id"],
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["deprecation_runs.id"],
        ),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["snapshots.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("drill_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_drill_events_model_id"), ["model_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_drill_events_snapshot_id"), ["snapshot_id"], unique=False
        )

    op.create_table(
        "fingerprints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("snapshot_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("run_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("path", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("weights_file", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("max_new_tokens", sa.Integer(), nullable=False),
        sa.Column("runtime", sa.JSON(), nullable=True),
        sa.Column("prompts", sa.JSON(), nullable=True),
        sa.Column("recorded_at", sunset.ledger.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["deprecation_runs.id"],
        ),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["snapshots.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("fingerprints", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_fingerprints_snapshot_id"), ["snapshot_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("fingerprints", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fingerprints_snapshot_id"))

    op.drop_table("fingerprints")
    with op.batch_alter_table("drill_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_drill_events_snapshot_id"))
        batch_op.drop_index(batch_op.f("ix_drill_events_model_id"))

    op.drop_table("drill_events")
