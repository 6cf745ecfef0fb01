"""destinations disabled after failing too long (issue 16's optional rule), and their history

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02

Three columns, no rewrite (the default of `history` is a constant): `failing_since` (when the
breaker opened from closed; kept through failed probes, cleared when it closes), `disabled_at`
(when the service paused the destination because it had failed for
`SCHEDULER_BREAKER_DISABLE_AFTER_SECONDS`) and `history`, the destination's last state changes,
newest first. A breaker open now is taken as failing since it last opened.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("destinations", sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True))
    op.add_column("destinations", sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "destinations",
        sa.Column("history", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    )
    op.execute("UPDATE destinations SET failing_since = opened_at WHERE breaker_state <> 'closed'")


def downgrade() -> None:
    op.drop_column("destinations", "history")
    op.drop_column("destinations", "disabled_at")
    op.drop_column("destinations", "failing_since")
