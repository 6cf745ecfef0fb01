"""API keys and per-tenant webhook signing secrets."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Identity,
    Index,
    LargeBinary,
    Table,
    Text,
    text,
)

from task_scheduler.db import metadata


class Role(StrEnum):
    """admin: keys, tenants, every tenant's timers. writer: create, edit, cancel, retry its
    tenant's timers. reader: read and list its tenant's timers."""

    ADMIN = "admin"
    WRITER = "writer"
    READER = "reader"


ROLE_RANK = {Role.READER: 0, Role.WRITER: 1, Role.ADMIN: 2}

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    # Public identifier, part of the key itself ("tsk_<key_id>_<secret>"); safe to show and log.
    Column("key_id", Text, nullable=False, unique=True),
    # SHA-256 of the whole key; the key itself is never stored.
    Column("key_hash", LargeBinary, nullable=False),
    Column("name", Text, nullable=False, server_default=text("''")),
    Column("tenant", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    CheckConstraint("role IN ('admin', 'writer', 'reader')", name="ck_api_keys_role"),
)

tenant_secrets = Table(
    "tenant_secrets",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("tenant", Text, nullable=False),
    # whsec_ secret: needed in clear to sign, so it lives only here and is shown once.
    Column("secret", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Index("ix_tenant_secrets_tenant", "tenant"),
)
