"""the retirement date a run announced, recorded with its notice terms

The report read it back from the preflight attempt's summary; it is now a column of the
run. Runs recorded before keep their date: it is copied from their latest completed
preflight attempt, the one the report read.

Revision ID: 0014_run_retirement_date
Revises: 0013_object_etag
Create Date: 2026-12-02
"""

from collections.abc import Sequence
from datetime import date

import sqlalchemy as sa
from alembic import op

revision: str = "0014_run_retirement_date"
down_revision: str | None = "0013_object_etag"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

runs = sa.table("deprecation_runs", sa.column("id", sa.String), sa.column("retirement_on", sa.Date))
attempts = sa.table(
    "step_attempts",
    sa.column("id", sa.Integer),
    sa.column("run_id", sa.String),
    sa.column("step", sa.String),
    sa.column("state", sa.String),
    sa.column("summary", sa.JSON),
)


def upgrade() -> None:
    with op.batch_alter_table("deprecation_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("retirement_on", sa.Date(), nullable=True))
    connection = op.get_bind()
    preflights = connection.execute(
        sa.select(attempts.c.run_id, attempts.c.summary)
        .where(attempts.c.step == "preflight", attempts.c.state == "completed")
        .order_by(attempts.c.id)
    )
    latest = {run_id: summary for run_id, summary in preflights if summary}  # last one wins
    for run_id, summary in latest.items():
        if "retirement_on" in summary:
            connection.execute(
                runs.update()
                .where(runs.c.id == run_id)
                .values(retirement_on=date.fromisoformat(summary["retirement_on"]))
            )


def downgrade() -> None:
    with op.batch_alter_table("deprecation_runs", schema=None) as batch_op:
        batch_op.drop_column("retirement_on")
