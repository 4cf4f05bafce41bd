"""audit findings: what an audit found, kept open until proven healthy; audit run names

Revision ID: 0016_audit_findings
Revises: 0017_preference_finder
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import sunset.ledger.models

revision: str = "0016_audit_findings"
down_revision: str | None = "0017_preference_finder"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_runs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )
    op.create_table(
        "audit_findings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("snapshot_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("replica", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("path", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("detail", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("first_audit_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("first_found_at", sunset.ledger.models.UTCDateTime(), nullable=False),
        sa.Column("last_audit_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("last_found_at", sunset.ledger.models.UTCDateTime(), nullable=False),
        sa.Column("resolution", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("resolution_detail", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("closed_audit_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("closed_at", sunset.ledger.models.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["snapshot_id"], ["snapshots.id"]),
        sa.ForeignKeyConstraint(["first_audit_id"], ["audit_runs.id"]),
        sa.ForeignKeyConstraint(["last_audit_id"], ["audit_runs.id"]),
        sa.ForeignKeyConstraint(["closed_audit_id"], ["audit_runs.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_findings_snapshot_id", "audit_findings", ["snapshot_id"])


def downgrade() -> None:
    op.drop_index("ix_audit_findings_snapshot_id", table_name="audit_findings")
    op.drop_table("audit_findings")
    with op.batch_alter_table("audit_runs", schema=None) as batch_op:
        batch_op.drop_column("name")
