"""serving lifecycle: model users, delivery summaries, approvals, restorations

Adds the model class (per-class notice periods), the run's kind and notice terms, the
rollback marks of status transitions, and four tables: model_users, delivery_summaries,
approvals and restorations.

Revision ID: 0005_serving
Revises: 0001
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import sunset.ledger.models

revision: str = "0005_serving"
down_revision: str | None = "0003_preservation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "model_users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("email", sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("webhook_url", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("usage", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("imported_at", sunset.ledger.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["catalog_models.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("model_id", "email"),
    )
    with op.batch_alter_table("model_users", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_model_users_model_id"), ["model_id"], unique=False)

    op.create_table(
        "approvals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("flow_run_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("target_status", sa.String(length=32), nullable=False),
        sa.Column("approver", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("decision", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("counted", sa.Boolean(), nullable=False),
        sa.Column("decided_at", sunset.ledger.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["deprecation_runs.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_approvals_run_id"), ["run_id"], unique=False)

    op.create_table(
        "delivery_summaries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("recipients", sa.Integer(), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.Column("sent_before", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("unconfirmed", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("updated_at", sunset.ledger.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["deprecation_runs.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "channel"),
    )
    with op.batch_alter_table("delivery_summaries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_delivery_summaries_run_id"), ["run_id"], unique=False)

    op.create_table(
        "restorations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("snapshot_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("destination", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("files", sa.Integer(), nullable=False),
        sa.Column("bytes_written", sa.BigInteger(), nullable=False),
        sa.Column("started_at", sunset.ledger.models.UTCDateTime(), nullable=False),
        sa.Column("restored_at", sunset.ledger.models.UTCDateTime(), nullable=True),
        sa.Column("verified_at", sunset.ledger.models.UTCDateTime(), nullable=True),
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
    with op.batch_alter_table("restorations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_restorations_run_id"), ["run_id"], unique=False)

    with op.batch_alter_table("catalog_models", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("model_class", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )

    with op.batch_alter_table("deprecation_runs", schema=None) as batch_op:
        # Every run recorded before this revision was a deprecation.
        batch_op.add_column(
            sa.Column(
                "kind",
                sqlmodel.sql.sqltypes.AutoString(length=16),
                nullable=False,
                server_default="deprecation",
            )
        )
        batch_op.add_column(
            sa.Column("requested_by", sqlmodel.sql.sqltypes.AutoString(), nullable=True)
        )
        batch_op.add_column(sa.Column("notice_days", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("minimum_notice_days", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("notice_override_reason", sqlmodel.sql.sqltypes.AutoString(), nullable=True)
        )

    with op.batch_alter_table("status_transitions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("rolled_back_at", sunset.ledger.models.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(
            sa.Column("rollback_reason", sqlmodel.sql.sqltypes.AutoString(), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("status_transitions", schema=None) as batch_op:
        batch_op.drop_column("rollback_reason")
        batch_op.drop_column("rolled_back_at")

    with op.batch_alter_table("deprecation_runs", schema=None) as batch_op:
        batch_op.drop_column("notice_override_reason")
        batch_op.drop_column("minimum_notice_days")
        batch_op.drop_column("notice_days")
        batch_op.drop_column("requested_by")
        batch_op.drop_column("kind")

    with op.batch_alter_table("catalog_models", schema=None) as batch_op:
        batch_op.drop_column("model_class")

    with op.batch_alter_table("restorations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_restorations_run_id"))

    op.drop_table("restorations")
    with op.batch_alter_table("delivery_summaries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_delivery_summaries_run_id"))

    op.drop_table("delivery_summaries")
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_approvals_run_id"))

    op.drop_table("approvals")
    with op.batch_alter_table("model_users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_model_users_model_id"))

    op.drop_table("model_users")
