"""interviews: the API version of each turn, preferences and the decisions about them

Revision ID: 0004_interviews
Revises: 0001
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import sunset.ledger.models

revision: str = "0004_interviews"
down_revision: str | None = "0006_report"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "interview_preferences",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("model_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("session_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("turn_id", sa.Integer(), nullable=False),
        sa.Column("session_index", sa.Integer(), nullable=False),
        sa.Column("turn_seq", sa.Integer(), nullable=False),
        sa.Column("question_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("quote", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("quote_start", sa.Integer(), nullable=False),
        sa.Column("quote_end", sa.Integer(), nullable=False),
        sa.Column("category", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("extractor", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_reason", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("status_changed_by", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("status_changed_at", sunset.ledger.models.UTCDateTime(), nullable=True),
        sa.Column("recorded_at", sunset.ledger.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["catalog_models.id"],
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["deprecation_runs.id"],
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["interview_sessions.id"],
        ),
        sa.ForeignKeyConstraint(
            ["turn_id"],
            ["interview_turns.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("turn_id", "quote_start"),
    )
    with op.batch_alter_table("interview_preferences", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_interview_preferences_model_id"), ["model_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_interview_preferences_run_id"), ["run_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_interview_preferences_turn_id"), ["turn_id"], unique=False
        )

    op.create_table(
        "preference_status_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("preference_id", sa.Integer(), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=False),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("at", sunset.ledger.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["preference_id"],
            ["interview_preferences.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("preference_status_changes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_preference_status_changes_preference_id"),
            ["preference_id"],
            unique=False,
        )

    with op.batch_alter_table("interview_turns", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("api_version", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("interview_turns", schema=None) as batch_op:
        batch_op.drop_column("api_version")

    with op.batch_alter_table("preference_status_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_preference_status_changes_preference_id"))

    op.drop_table("preference_status_changes")
    with op.batch_alter_table("interview_preferences", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_interview_preferences_turn_id"))
        batch_op.drop_index(batch_op.f("ix_interview_preferences_run_id"))
        batch_op.drop_index(batch_op.f("ix_interview_preferences_model_id"))

    op.drop_table("interview_preferences")
