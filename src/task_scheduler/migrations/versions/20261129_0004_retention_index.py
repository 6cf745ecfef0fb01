"""retention: index finished timers by their last change

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_timers_finished",
        "timers",
        ["updated_at"],
        postgresql_where=sa.text("status IN ('delivered', 'failed', 'expired', 'cancelled')"),
    )


def downgrade() -> None:
    op.drop_index("ix_timers_finished", table_name="timers")
