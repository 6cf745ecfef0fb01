"""outcome notifications: timers get on_success_url and on_failure_url

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01

A timer may name a URL to call once when it ends delivered, and one for when it ends failed or
expired; the call is a timer of its own (delivery/notifications.py). Nullable columns without a
default: existing rows are not rewritten.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("timers", sa.Column("on_success_url", sa.Text, nullable=True))
    op.add_column("timers", sa.Column("on_failure_url", sa.Text, nullable=True))


def downgrade() -> None:
    op.drop_column("timers", "on_failure_url")
    op.drop_column("timers", "on_success_url")
