"""deprecations: one record per deprecation that its runs, notices and package belong to

Models deprecated before keep their history: each model the catalog records an
announcement for gets one deprecation, at the stage its serving status says, with its
deprecation runs, their deliveries and the latest of their packages linked to it.

Revision ID: 0015_deprecations
Revises: 0014_run_retirement_date
Create Date: 2026-11-30
"""

from collections.abc import Sequence
from uuid import uuid4

import sqlalchemy as sa
from alembic import op

import sunset.ledger.models

revision: str = "0015_deprecations"
down_revision: str | None = "0014_run_retirement_date"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STAGE_OF_STATUS = {"deprecated": "announced", "retired": "retired", "on_request": "on_request"}


def upgrade() -> None:
    op.create_table(
        "deprecations",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("model_id", sa.String(length=128), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("announced_on", sa.Date(), nullable=True),
        sa.Column("retirement_on", sa.Date(), nullable=False),
        sa.Column("replacement_id", sa.String(length=128), nullable=True),
        sa.Column("snapshot_id", sa.String(length=128), nullable=True),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("opened_at", sunset.ledger.models.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sunset.ledger.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["model_id"], ["catalog_models.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_deprecations_model_id", "deprecations", ["model_id"])
    op.create_table(
        "retirement_date_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("deprecation_id", sa.String(length=32), nullable=False),
        sa.Column("previous_on", sa.Date(), nullable=False),
        sa.Column("retirement_on", sa.Date(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("changed_by", sa.String(), nullable=True),
        sa.Column("changed_at", sunset.ledger.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["deprecation_id"], ["deprecations.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_retirement_date_changes_deprecation_id",
        "retirement_date_changes",
        ["deprecation_id"],
    )
    op.create_table(
        "notice_recipients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("deprecation_id", sa.String(length=32), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("webhook_url", sa.String(), nullable=True),
        sa.Column("usage", sa.String(), nullable=True),
        sa.Column("added_at", sunset.ledger.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["deprecation_id"], ["deprecations.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("deprecation_id", "email"),
    )
    op.create_index("ix_notice_recipients_deprecation_id", "notice_recipients", ["deprecation_id"])
    with op.batch_alter_table("deprecation_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deprecation_id", sa.String(length=32), nullable=True))
        batch_op.create_index("ix_deprecation_runs_deprecation_id", ["deprecation_id"])
        batch_op.create_foreign_key(
            "fk_deprecation_runs_deprecation_id", "deprecations", ["deprecation_id"], ["id"]
        )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=32), nullable=False, server_default="announcement")
        )
        batch_op.add_column(sa.Column("deprecation_id", sa.String(length=32), nullable=True))
        batch_op.create_index("ix_deliveries_deprecation_id", ["deprecation_id"])
        batch_op.create_foreign_key(
            "fk_deliveries_deprecation_id", "deprecations", ["deprecation_id"], ["id"]
        )
        batch_op.alter_column("run_id", existing_type=sa.String(length=32), nullable=True)
    _link_earlier_deprecations()


def _link_earlier_deprecations() -> None:
    connection = op.get_bind()
    models = sa.table(
        "catalog_models",
        sa.column("id", sa.String),
        sa.column("serving_status", sa.String),
        sa.column("deprecation_announced_on", sa.Date),
        sa.column("retirement_on", sa.Date),
        sa.column("replacement_id", sa.String),
    )
    deprecations = sa.table(
        "deprecations",
        *(
            sa.column(name)
            for name in (
                "id",
                "model_id",
                "stage",
                "announced_on",
                "retirement_on",
                "replacement_id",
                "snapshot_id",
                "opened_at",
                "updated_at",
            )
        ),
    )
    runs = sa.table(
        "deprecation_runs",
        sa.column("id"),
        sa.column("model_id"),
        sa.column("kind"),
        sa.column("started_at"),
        sa.column("deprecation_id"),
    )
    deliveries = sa.table("deliveries", sa.column("run_id"), sa.column("deprecation_id"))
    snapshots = sa.table("snapshots", sa.column("id"), sa.column("run_id"), sa.column("created_at"))
    announced = connection.execute(
        sa.select(models).where(models.c.deprecation_announced_on.is_not(None))
    ).all()
    for model in announced:
        stage = STAGE_OF_STATUS.get(model.serving_status, "reinstated")
        model_runs = connection.execute(
            sa.select(runs.c.id, runs.c.started_at)
            .where(runs.c.model_id == model.id, runs.c.kind == "deprecation")
            .order_by(runs.c.started_at)
        ).all()
        run_ids = [run.id for run in model_runs]
        snapshot = connection.execute(
            sa.select(snapshots.c.id)
            .where(snapshots.c.run_id.in_(run_ids))
            .order_by(snapshots.c.created_at.desc())
        ).first()
        opened = model_runs[0].started_at if model_runs else sa.func.current_timestamp()
        deprecation_id = uuid4().hex
        connection.execute(
            deprecations.insert().values(
                id=deprecation_id,
                model_id=model.id,
                stage=stage,
                announced_on=model.deprecation_announced_on,
                retirement_on=model.retirement_on or model.deprecation_announced_on,
                replacement_id=model.replacement_id,
                snapshot_id=snapshot.id if snapshot else None,
                opened_at=opened,
                updated_at=opened,
            )
        )
        if run_ids:
            connection.execute(
                runs.update().where(runs.c.id.in_(run_ids)).values(deprecation_id=deprecation_id)
            )
            connection.execute(
                deliveries.update()
                .where(deliveries.c.run_id.in_(run_ids))
                .values(deprecation_id=deprecation_id)
            )


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.alter_column("run_id", existing_type=sa.String(length=32), nullable=False)
        batch_op.drop_constraint("fk_deliveries_deprecation_id", type_="foreignkey")
        batch_op.drop_index("ix_deliveries_deprecation_id")
        batch_op.drop_column("deprecation_id")
        batch_op.drop_column("kind")
    with op.batch_alter_table("deprecation_runs", schema=None) as batch_op:
        batch_op.drop_constraint("fk_deprecation_runs_deprecation_id", type_="foreignkey")
        batch_op.drop_index("ix_deprecation_runs_deprecation_id")
        batch_op.drop_column("deprecation_id")
    op.drop_index("ix_notice_recipients_deprecation_id", table_name="notice_recipients")
    op.drop_table("notice_recipients")
    op.drop_index("ix_retirement_date_changes_deprecation_id", table_name="retirement_date_changes")
    op.drop_table("retirement_date_changes")
    op.drop_index("ix_deprecations_model_id", table_name="deprecations")
    op.drop_table("deprecations")
