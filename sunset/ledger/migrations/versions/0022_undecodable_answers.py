"""undecodable answers: an interview answer whose body is not valid UTF-8 or not valid
Unicode is recorded with its exact bytes and what is wrong with it

Revision ID: 0022_undecodable_answers
Revises: 0019_preference_provenance
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0022_undecodable_answers"
down_revision: str | None = "0019_preference_provenance"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("interview_turns", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("decode_problem", sqlmodel.sql.sqltypes.AutoString(), nullable=True)
        )
        batch_op.add_column(sa.Column("response_raw", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("interview_turns", schema=None) as batch_op:
        batch_op.drop_column("response_raw")
        batch_op.drop_column("decode_problem")
