"""report inputs: deployment summary and operators' analysis

Revision ID: 0006_report
Revises: 0001
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import sunset.ledger.models

revision: str = "0006_report"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "report_inputs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("text", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("supplied_by", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("supplied_at", sunset.ledger.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["deprecation_runs.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("report_inputs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_report_inputs_run_id"), ["run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("report_inputs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_report_inputs_run_id"))
    op.drop_table("report_inputs")
