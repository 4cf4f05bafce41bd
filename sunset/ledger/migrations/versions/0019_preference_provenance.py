"""preference provenance: each session's confirmation turn, what the model said of each
preference recorded in its name, and its reply to the report

Revision ID: 0019_preference_provenance
Revises: 0018_approver_identity
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import sunset.ledger.models

revision: str = "0019_preference_provenance"
down_revision: str | None = "0018_approver_identity"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("interview_preferences", schema=None) as batch_op:
        # Every preference recorded before this revision was found, never shown to the model.
        batch_op.add_column(
            sa.Column("provenance", sa.String(length=16), nullable=False, server_default="found")
        )
        batch_op.add_column(sa.Column("provenance_turn_id", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("correction", sqlmodel.sql.sqltypes.AutoString(), nullable=True)
        )
        batch_op.create_foreign_key(
            "fk_interview_preferences_provenance_turn_id",
            "interview_turns",
            ["provenance_turn_id"],
            ["id"],
        )

    op.create_table(
        "preference_confirmations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("turn_id", sa.Integer(), nullable=False),
        sa.Column("shown", sa.JSON(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("error", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("notes", sa.JSON(), nullable=False),
        sa.Column("recorded_at", sunset.ledger.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["session_id"], ["interview_sessions.id"]),
        sa.ForeignKeyConstraint(["turn_id"], ["interview_turns.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("session_id"),
        sa.UniqueConstraint("turn_id"),
    )

    op.create_table(
        "report_replies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("model_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("account_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("request_json", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("request_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("api_version", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("response_body", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("reply_text", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
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
        sa.Column("recorded_at", sunset.ledger.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["model_id"], ["catalog_models.id"]),
        sa.ForeignKeyConstraint(["run_id"], ["deprecation_runs.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("report_replies", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_report_replies_run_id"), ["run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("report_replies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_report_replies_run_id"))
    op.drop_table("report_replies")
    op.drop_table("preference_confirmations")
    with op.batch_alter_table("interview_preferences", schema=None) as batch_op:
        batch_op.drop_constraint("fk_interview_preferences_provenance_turn_id", type_="foreignkey")
        batch_op.drop_column("correction")
        batch_op.drop_column("provenance_turn_id")
        batch_op.drop_column("provenance")
