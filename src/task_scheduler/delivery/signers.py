"""Which secrets sign a tenant's webhooks: its own (newest first) if it has any, else the
service-wide SCHEDULER_WEBHOOK_SECRETS. Kept in memory, refreshed every few seconds."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

from sqlalchemy.ext.asyncio import AsyncEngine

from task_scheduler.auth import repository
from task_scheduler.delivery.signing import WebhookSigner
from task_scheduler.logs import log_event

logger = logging.getLogger(__name__)


class TenantSigners:
    def __init__(self, *, engine: AsyncEngine, service_secrets: list[str], refresh_seconds: float) -> None:
        self._engine = engine
        self._default = WebhookSigner(service_secrets)
        self._refresh_seconds = max(refresh_seconds, 0.5)
        self._by_tenant: dict[str, WebhookSigner] = {}

    def for_tenant(self, tenant: str) -> WebhookSigner:
        return self._by_tenant.get(tenant, self._default)

    async def refresh(self) -> None:
        async with self._engine.connect() as conn:
            rows = await repository.active_secrets(conn)
        secrets: dict[str, list[str]] = defaultdict(list)
        for row in rows:  # newest first
            secrets[row.tenant].append(row.secret)
        self._by_tenant = {tenant: WebhookSigner(values) for tenant, values in secrets.items()}

    async def run(self) -> None:
        """Refresh forever; a failed refresh keeps the last known secrets."""
        while True:
            try:
                await self.refresh()
            except Exception as exc:  # noqa: BLE001 - retried at the next refresh
                log_event(logger, "signers.refresh_failed", logging.WARNING, error=repr(exc))
            await asyncio.sleep(self._refresh_seconds)
