"""timer lifecycle: what is sent, labels, cutoff, retry policy, attempts log, idempotency keys

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NEW_STATUSES = "status IN ('pending', 'firing', 'delivered', 'failed', 'expired', 'cancelled')"
_OLD_STATUSES = "status IN ('pending', 'firing', 'delivered', 'failed')"


def upgrade() -> None:
    op.add_column("timers", sa.Column("method", sa.Text(), nullable=False, server_default=sa.text("'POST'")))
    op.add_column(
        "timers",
        sa.Column("headers", JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
    )
    op.add_column("timers", sa.Column("body", JSONB(), nullable=True))
    op.add_column(
        "timers",
        sa.Column("labels", JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
    )
    op.add_column("timers", sa.Column("deliver_before", sa.DateTime(timezone=True), nullable=True))
    op.add_column("timers", sa.Column("max_attempts", sa.Integer(), nullable=True))
    op.add_column("timers", sa.Column("backoff_base_seconds", sa.Double(), nullable=True))
    op.add_column("timers", sa.Column("backoff_cap_seconds", sa.Double(), nullable=True))
    op.add_column("timers", sa.Column("timeout_seconds", sa.Double(), nullable=True))
    op.add_column(
        "timers",
        sa.Column("attempts_before_redrive", sa.Integer(), nullable=False, server_default=sa.text("0")),
    )
    op.drop_constraint("ck_timers_status", "timers", type_="check")
    op.create_check_constraint("ck_timers_status", "timers", _NEW_STATUSES)
    op.create_index("ix_timers_status_due", "timers", ["status", "due_at", "id"])
    op.create_index(
        "ix_timers_labels",
        "timers",
        ["labels"],
        postgresql_using="gin",
        postgresql_ops={"labels": "jsonb_path_ops"},
    )
    op.create_table(
        "timer_attempts",
        sa.Column(
            "timer_id",
            sa.BigInteger(),
            sa.ForeignKey("timers.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_ms", sa.Double(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error_class", sa.Text(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("timer_id", "attempt", name="pk_timer_attempts"),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("key", sa.Text(), primary_key=True),
        sa.Column("request_hash", sa.Text(), nullable=False),
        sa.Column(
            "timer_id",
            sa.BigInteger(),
            sa.ForeignKey("timers.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
    )


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    op.drop_table("timer_attempts")
    op.drop_index("ix_timers_labels", table_name="timers")
    op.drop_index("ix_timers_status_due", table_name="timers")
    op.execute("DELETE FROM timers WHERE status IN ('expired', 'cancelled')")
    op.drop_constraint("ck_timers_status", "timers", type_="check")
    op.create_check_constraint("ck_timers_status", "timers", _OLD_STATUSES)
    for column in (
        "attempts_before_redrive",
        "timeout_seconds",
        "backoff_cap_seconds",
        "backoff_base_seconds",
        "max_attempts",
        "deliver_before",
        "labels",
        "body",
        "headers",
        "method",
    ):
        op.drop_column("timers", column)
