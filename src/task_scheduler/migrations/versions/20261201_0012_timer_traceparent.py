"""timer traceparent: the W3C trace a timer's deliveries continue (issue 17, OpenTelemetry)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01

Set on create while tracing is on (the create request's span); NULL otherwise and for every
existing timer (a nullable column without a default: no rewrite of the table).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("timers", sa.Column("traceparent", sa.Text, nullable=True))


def downgrade() -> None:
    op.drop_column("timers", "traceparent")
