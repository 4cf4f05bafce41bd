"""preference finder: the model-assisted finder's calls and every item they returned, and
where a decision's addendum is sealed in the package

Revision ID: 0017_preference_finder
Revises: 0015_deprecations
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import sunset.ledger.models

revision: str = "0017_preference_finder"
down_revision: str | None = "0015_deprecations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "preference_finder_calls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("turn_id", sa.Integer(), nullable=False),
        sa.Column("finder", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("finder_model", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("request_json", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("request_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("api_version", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("response_body", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("responding_model", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("stop_reason", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("request_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("retries", sa.Integer(), nullable=False),
        sa.Column("latency_s", sa.Float(), nullable=True),
        sa.Column("sdk_version", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("asked_at", sunset.ledger.models.UTCDateTime(), nullable=False),
        sa.Column("answered_at", sunset.ledger.models.UTCDateTime(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("error", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["interview_sessions.id"],
        ),
        sa.ForeignKeyConstraint(
            ["turn_id"],
            ["interview_turns.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("preference_finder_calls", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_preference_finder_calls_session_id"), ["session_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_preference_finder_calls_turn_id"), ["turn_id"], unique=False
        )

    op.create_table(
        "preference_candidates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("quote", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("category", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("quote_start", sa.Integer(), nullable=True),
        sa.Column("quote_end", sa.Integer(), nullable=True),
        sa.Column("preference_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["call_id"],
            ["preference_finder_calls.id"],
        ),
        sa.ForeignKeyConstraint(
            ["preference_id"],
            ["interview_preferences.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("call_id", "position"),
    )
    with op.batch_alter_table("preference_candidates", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_preference_candidates_call_id"), ["call_id"], unique=False
        )

    with op.batch_alter_table("preference_status_changes", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("addendum_path", sqlmodel.sql.sqltypes.AutoString(), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("preference_status_changes", schema=None) as batch_op:
        batch_op.drop_column("addendum_path")

    with op.batch_alter_table("preference_candidates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_preference_candidates_call_id"))

    op.drop_table("preference_candidates")
    with op.batch_alter_table("preference_finder_calls", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_preference_finder_calls_turn_id"))
        batch_op.drop_index(batch_op.f("ix_preference_finder_calls_session_id"))

    op.drop_table("preference_finder_calls")
