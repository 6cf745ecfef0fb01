"""operational webhooks: a tenant's subscriptions to events of its timers

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01

POST /tenant/webhooks registers a URL for timer.failed and/or timer.expired; the outcome writer
creates a timer calling each subscribed URL in the transaction that records the outcome.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tenant_webhooks",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("tenant", sa.Text, nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("events", sa.ARRAY(sa.Text), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
    )
    op.create_index("ix_tenant_webhooks_tenant", "tenant_webhooks", ["tenant"])


def downgrade() -> None:
    op.drop_table("tenant_webhooks")
