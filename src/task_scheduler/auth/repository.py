"""Persistence of API keys and tenant signing secrets: explicit SQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import RowMapping, text
from sqlalchemy.ext.asyncio import AsyncConnection

from task_scheduler.auth.models import Role


@dataclass(frozen=True, slots=True)
class ApiKeyRow:
    key_id: str
    key_hash: bytes
    name: str
    tenant: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None


_KEY_COLUMNS = "key_id, key_hash, name, tenant, role, created_at, revoked_at"


def _key_row(m: RowMapping) -> ApiKeyRow:
    return ApiKeyRow(**{**m, "role": Role(m["role"])})


async def insert_key(
    conn: AsyncConnection, *, key_id: str, key_hash: bytes, name: str, tenant: str, role: Role
) -> ApiKeyRow:
    row = (
        await conn.execute(
            text(f"""
                INSERT INTO api_keys (key_id, key_hash, name, tenant, role)
                VALUES (:key_id, :key_hash, :name, :tenant, :role)
                ON CONFLICT (key_id) DO NOTHING
                RETURNING {_KEY_COLUMNS}
            """),
            {"key_id": key_id, "key_hash": key_hash, "name": name, "tenant": tenant, "role": role.value},
        )
    ).one_or_none()
    if row is None:
        existing = await find_key(conn, key_id=key_id)
        assert existing is not None
        return existing
    return _key_row(row._mapping)


async def find_key(conn: AsyncConnection, *, key_id: str) -> ApiKeyRow | None:
    row = (
        await conn.execute(
            text(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_id = :key_id"), {"key_id": key_id}
        )
    ).one_or_none()
    return None if row is None else _key_row(row._mapping)


async def list_keys(conn: AsyncConnection) -> list[ApiKeyRow]:
    rows = await conn.execute(text(f"SELECT {_KEY_COLUMNS} FROM api_keys ORDER BY created_at, id"))
    return [_key_row(row._mapping) for row in rows]


async def revoke_key(conn: AsyncConnection, *, key_id: str) -> ApiKeyRow | None:
    """Revoked keys stop working everywhere within the key cache's lifetime (seconds)."""
    row = (
        await conn.execute(
            text(f"""
                UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
                WHERE key_id = :key_id RETURNING {_KEY_COLUMNS}
            """),
            {"key_id": key_id},
        )
    ).one_or_none()
    return None if row is None else _key_row(row._mapping)


async def active_key_exists(conn: AsyncConnection) -> bool:
    return bool(
        (await conn.execute(text("SELECT EXISTS (SELECT 1 FROM api_keys WHERE revoked_at IS NULL)"))).scalar()
    )


@dataclass(frozen=True, slots=True)
class TenantSecretRow:
    id: int
    tenant: str
    secret: str
    created_at: datetime


async def insert_secret(
    conn: AsyncConnection, *, tenant: str, secret: str, most_active: int
) -> TenantSecretRow | None:
    """A new active secret, unless the tenant already has `most_active` (then None). Adds of one
    tenant are serialised by a transaction-scoped advisory lock, so concurrent adds cannot pass
    the bound together."""
    await conn.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended('tenant_secrets:' || :tenant, 0))"),
        {"tenant": tenant},
    )
    row = (
        await conn.execute(
            text("""
                INSERT INTO tenant_secrets (tenant, secret)
                SELECT :tenant, :secret
                WHERE (SELECT count(*) FROM tenant_secrets WHERE tenant = :tenant AND revoked_at IS NULL)
                      < :most_active
                RETURNING id, tenant, secret, created_at
            """),
            {"tenant": tenant, "secret": secret, "most_active": most_active},
        )
    ).one_or_none()
    return None if row is None else TenantSecretRow(**row._mapping)


async def active_secrets(conn: AsyncConnection, *, tenant: str | None = None) -> list[TenantSecretRow]:
    """Active secrets, newest first (the order signatures are sent in)."""
    where = "revoked_at IS NULL" + ("" if tenant is None else " AND tenant = :tenant")
    rows = await conn.execute(
        text(
            f"SELECT id, tenant, secret, created_at FROM tenant_secrets WHERE {where} ORDER BY created_at DESC, id DESC"
        ),
        {} if tenant is None else {"tenant": tenant},
    )
    return [TenantSecretRow(**row._mapping) for row in rows]


async def revoke_secret(conn: AsyncConnection, *, tenant: str, secret_id: int) -> bool:
    result = await conn.execute(
        text("""
            UPDATE tenant_secrets SET revoked_at = now()
            WHERE id = :id AND tenant = :tenant AND revoked_at IS NULL
        """),
        {"id": secret_id, "tenant": tenant},
    )
    return result.rowcount == 1
