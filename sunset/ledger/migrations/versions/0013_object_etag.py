"""the ETag of every preserved object version, for the listing-based fast check

Revision ID: 0013_object_etag
Revises: 0012_pending_writes
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0013_object_etag"
down_revision: str | None = "0012_pending_writes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("preserved_objects", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("etag", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("preserved_objects", schema=None) as batch_op:
        batch_op.drop_column("etag")
