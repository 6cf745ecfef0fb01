"""destinations: a circuit breaker and a pause switch per destination (issue 16)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02

`timers.destination` is set on create (the URL's origin unless given); a nullable column without a
default, so no rewrite of the table. Existing timers keep NULL: no destination holds them.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "destinations",
        sa.Column("tenant", sa.Text, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("paused", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("breaker_state", sa.Text, nullable=False, server_default=sa.text("'closed'")),
        sa.Column("consecutive_failures", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("probe_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.PrimaryKeyConstraint("tenant", "key", name="pk_destinations"),
        sa.CheckConstraint(
            "breaker_state IN ('closed', 'open', 'half_open')", name="ck_destinations_breaker_state"
        ),
    )
    op.create_index(
        "ix_destinations_holding",
        "destinations",
        ["tenant", "key"],
        postgresql_where=sa.text("paused OR breaker_state <> 'closed'"),
    )
    op.add_column("timers", sa.Column("destination", sa.Text, nullable=True))


def downgrade() -> None:
    op.drop_column("timers", "destination")
    op.drop_table("destinations")
