"""replay and bulk jobs: timers get replay_of, and the bulk_jobs table (issue 16)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01

`replay_of` names the timer a replay copied its request from. It is not a foreign key: retention
deletes finished timers in batches, and a reference would make each delete look up (and lock)
the replays; a replay whose original is gone keeps the id, and GET of that id answers 404.
Nullable without a default: existing rows are not rewritten.

`bulk_jobs` holds POST /timers/bulk's jobs: the action, the filter, the keyset cursor, the counters
and the lease of the instance running it (see bulk/models.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("timers", sa.Column("replay_of", sa.BigInteger, nullable=True))
    tz = sa.DateTime(timezone=True)
    op.create_table(
        "bulk_jobs",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("tenant", sa.Text, nullable=True),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("offset_seconds", sa.Double, nullable=True),
        sa.Column("filter", postgresql.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("state", sa.Text, nullable=False, server_default=sa.text("'queued'")),
        sa.Column("max_timer_id", sa.BigInteger, nullable=False),
        sa.Column("last_timer_id", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("matched", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("done", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("skipped", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("lease_owner", sa.Text, nullable=True),
        sa.Column("lease_expires_at", tz, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("created_at", tz, nullable=False, server_default=sa.text("now()")),
        sa.Column("updated_at", tz, nullable=False, server_default=sa.text("now()")),
        sa.CheckConstraint(
            "state IN ('queued', 'running', 'done', 'failed', 'cancelled')", name="ck_bulk_jobs_state"
        ),
        sa.CheckConstraint("action IN ('cancel', 'retry', 'reschedule')", name="ck_bulk_jobs_action"),
    )
    op.create_index(
        "ix_bulk_jobs_unfinished",
        "bulk_jobs",
        ["id"],
        postgresql_where=sa.text("state IN ('queued', 'running')"),
    )


def downgrade() -> None:
    op.drop_index("ix_bulk_jobs_unfinished", table_name="bulk_jobs")
    op.drop_table("bulk_jobs")
    op.drop_column("timers", "replay_of")
