"""the orchestrator's concurrency lease held by a run's process

Revision ID: 0011_orchestrator_lease
Revises: 0010_drill
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0011_orchestrator_lease"
down_revision: str | None = "0010_drill"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deprecation_runs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "orchestrator_lease_id",
                sqlmodel.sql.sqltypes.AutoString(length=64),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("deprecation_runs", schema=None) as batch_op:
        batch_op.drop_column("orchestrator_lease_id")
