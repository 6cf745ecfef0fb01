"""The `tenant_webhooks` table: where a tenant wants to hear of which events."""

from __future__ import annotations

from sqlalchemy import ARRAY, BigInteger, Column, DateTime, Identity, Index, Table, Text, text

from task_scheduler.db import metadata

# The events a tenant may subscribe to (a timer's own on_success_url also hears timer.delivered).
EVENT_TYPES = (
    "timer.failed",
    "timer.expired",
    "destination.opened",
    "destination.closed",
    "destination.disabled",
)

tenant_webhooks = Table(
    "tenant_webhooks",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("tenant", Text, nullable=False),
    Column("url", Text, nullable=False),
    Column("events", ARRAY(Text), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Index("ix_tenant_webhooks_tenant", "tenant"),
)
