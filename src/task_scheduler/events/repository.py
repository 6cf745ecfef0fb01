"""Persistence of tenant webhooks: explicit SQL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


@dataclass(frozen=True, slots=True)
class TenantWebhookRow:
    id: int
    tenant: str
    url: str
    events: list[str]
    created_at: datetime


# A NULL among the events (a row written past the API: the column's type admits it) is left out,
# so that it does not fail the tenant's list (the subscribers' lookup only matches named events).
_COLUMNS = "id, tenant, url, array_remove(events, NULL) AS events, created_at"


async def insert_webhook(
    conn: AsyncConnection, *, tenant: str, url: str, events: list[str]
) -> TenantWebhookRow:
    row = (
        await conn.execute(
            text(f"""
                INSERT INTO tenant_webhooks (tenant, url, events)
                VALUES (:tenant, :url, CAST(:events AS text[]))
                RETURNING {_COLUMNS}
            """),
            {"tenant": tenant, "url": url, "events": events},
        )
    ).one()
    return TenantWebhookRow(**row._mapping)


async def list_webhooks(conn: AsyncConnection, *, tenant: str) -> list[TenantWebhookRow]:
    rows = await conn.execute(
        text(f"SELECT {_COLUMNS} FROM tenant_webhooks WHERE tenant = :tenant ORDER BY id"), {"tenant": tenant}
    )
    return [TenantWebhookRow(**row._mapping) for row in rows]


async def delete_webhook(conn: AsyncConnection, *, tenant: str, webhook_id: int) -> bool:
    result = await conn.execute(
        text("DELETE FROM tenant_webhooks WHERE id = :id AND tenant = :tenant"),
        {"id": webhook_id, "tenant": tenant},
    )
    return result.rowcount > 0


_SUBSCRIBERS = text("""
SELECT tenant, url, events FROM tenant_webhooks
WHERE tenant = ANY(CAST(:tenants AS text[])) AND events && CAST(:events AS text[])
ORDER BY id
""")


async def subscribers(
    conn: AsyncConnection, *, tenants: Sequence[str], events: Sequence[str]
) -> dict[tuple[str, str], list[str]]:
    """(tenant, event) -> the URLs subscribed to it, for the given tenants and events."""
    found: dict[tuple[str, str], list[str]] = {}
    rows = await conn.execute(_SUBSCRIBERS, {"tenants": list(tenants), "events": list(events)})
    for row in rows:
        for event in row.events:
            found.setdefault((row.tenant, event), []).append(row.url)
    return found
