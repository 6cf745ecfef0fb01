"""schedules: recurring schedules (issue 14); timers get schedule_id and occurrence_at

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01

Each run of a schedule is an ordinary timer. The unique index on (schedule_id, occurrence_at)
lets the database, not the instances, guarantee one run per occurrence. Existing timers get NULL
in both columns (no rewrite of the table: nullable columns without a default).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    tz = sa.DateTime(timezone=True)
    op.create_table(
        "schedules",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("tenant", sa.Text, nullable=False, server_default=sa.text("'default'")),
        sa.Column("status", sa.Text, nullable=False, server_default=sa.text("'active'")),
        sa.Column("expression", sa.Text, nullable=False),
        sa.Column("cron", sa.Text, nullable=False),
        sa.Column("timezone", sa.Text, nullable=False, server_default=sa.text("'UTC'")),
        sa.Column("start_at", tz, nullable=True),
        sa.Column("end_at", tz, nullable=True),
        sa.Column("max_runs", sa.BigInteger, nullable=True),
        sa.Column("runs", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("jitter_seconds", sa.Double, nullable=False, server_default=sa.text("0")),
        sa.Column("overlap", sa.Text, nullable=False, server_default=sa.text("'allow'")),
        sa.Column("catchup", sa.Text, nullable=False, server_default=sa.text("'latest'")),
        sa.Column("catchup_window_seconds", sa.Double, nullable=False, server_default=sa.text("3600")),
        sa.Column("next_occurrence_at", tz, nullable=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("method", sa.Text, nullable=False, server_default=sa.text("'POST'")),
        sa.Column("headers", postgresql.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("body", postgresql.JSONB, nullable=True),
        sa.Column("labels", postgresql.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("max_lateness_seconds", sa.Double, nullable=True),
        sa.Column("max_attempts", sa.Integer, nullable=True),
        sa.Column("backoff_base_seconds", sa.Double, nullable=True),
        sa.Column("backoff_cap_seconds", sa.Double, nullable=True),
        sa.Column("timeout_seconds", sa.Double, nullable=True),
        sa.Column("created_at", tz, nullable=False, server_default=sa.text("now()")),
        sa.Column("updated_at", tz, nullable=False, server_default=sa.text("now()")),
        sa.CheckConstraint("status IN ('active', 'paused', 'ended')", name="ck_schedules_status"),
        sa.CheckConstraint("overlap IN ('allow', 'skip', 'buffer_one')", name="ck_schedules_overlap"),
        sa.CheckConstraint("catchup IN ('latest', 'all', 'none')", name="ck_schedules_catchup"),
    )
    op.create_index("ix_schedules_tenant_id", "schedules", ["tenant", "id"])
    op.create_index(
        "ix_schedules_labels",
        "schedules",
        ["labels"],
        postgresql_using="gin",
        postgresql_ops={"labels": "jsonb_path_ops"},
    )
    op.add_column("timers", sa.Column("schedule_id", sa.BigInteger, nullable=True))
    op.add_column("timers", sa.Column("occurrence_at", tz, nullable=True))
    op.create_foreign_key("timers_schedule_id_fkey", "timers", "schedules", ["schedule_id"], ["id"])
    op.create_index(
        "ux_timers_schedule_occurrence",
        "timers",
        ["schedule_id", "occurrence_at"],
        unique=True,
        postgresql_where=sa.text("schedule_id IS NOT NULL AND status <> 'cancelled'"),
    )
    op.create_index(
        "ix_timers_schedule_runs",
        "timers",
        ["schedule_id", "id"],
        postgresql_where=sa.text("schedule_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_timers_schedule_runs", table_name="timers")
    op.drop_index("ux_timers_schedule_occurrence", table_name="timers")
    op.drop_constraint("timers_schedule_id_fkey", "timers", type_="foreignkey")
    op.drop_column("timers", "occurrence_at")
    op.drop_column("timers", "schedule_id")
    op.drop_table("schedules")
