"""api keys, tenants, per-tenant signing secrets

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "timers", sa.Column("tenant", sa.Text(), nullable=False, server_default=sa.text("'default'"))
    )
    op.drop_index("ix_timers_status_due", table_name="timers")
    op.create_index("ix_timers_tenant_due", "timers", ["tenant", "due_at", "id"])
    op.add_column(
        "idempotency_keys",
        sa.Column("tenant", sa.Text(), nullable=False, server_default=sa.text("'default'")),
    )
    op.alter_column("idempotency_keys", "tenant", server_default=None)
    op.drop_constraint("idempotency_keys_pkey", "idempotency_keys", type_="primary")
    op.create_primary_key("pk_idempotency_keys", "idempotency_keys", ["tenant", "key"])
    op.create_table(
        "api_keys",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("key_id", sa.Text(), nullable=False, unique=True),
        sa.Column("key_hash", sa.LargeBinary(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False, server_default=sa.text("''")),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("role IN ('admin', 'writer', 'reader')", name="ck_api_keys_role"),
    )
    op.create_table(
        "tenant_secrets",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_tenant_secrets_tenant", "tenant_secrets", ["tenant"])


def downgrade() -> None:
    op.drop_table("tenant_secrets")
    op.drop_table("api_keys")
    op.drop_constraint("pk_idempotency_keys", "idempotency_keys", type_="primary")
    op.drop_column("idempotency_keys", "tenant")
    op.create_primary_key("idempotency_keys_pkey", "idempotency_keys", ["key"])
    op.drop_index("ix_timers_tenant_due", table_name="timers")
    op.create_index("ix_timers_status_due", "timers", ["status", "due_at", "id"])
    op.drop_column("timers", "tenant")
