"""delivery decisions: what a person decided about a notice nobody can know arrived

Revision ID: 0020_delivery_decisions
Revises: 0022_undecodable_answers
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import sunset.ledger.models

revision: str = "0020_delivery_decisions"
down_revision: str | None = "0022_undecodable_answers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "delivery_decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("decision", sa.String(length=24), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("decided_by", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("decided_at", sunset.ledger.models.UTCDateTime(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(["delivery_id"], ["deliveries.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("delivery_decisions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_delivery_decisions_delivery_id"), ["delivery_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("delivery_decisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_delivery_decisions_delivery_id"))
    op.drop_table("delivery_decisions")
