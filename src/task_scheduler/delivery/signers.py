"""Which secrets sign a tenant's webhooks: its own (the newest MAX_ACTIVE_SECRETS, newest first)
if it has any that can be read, else the service-wide SCHEDULER_WEBHOOK_SECRETS. Kept in memory,
refreshed every few seconds. A stored secret that cannot be decoded (a row written from outside
the API) is left out and logged: it fails only itself, never the other secrets or tenants."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

from sqlalchemy.ext.asyncio import AsyncEngine

from task_scheduler.auth import repository
from task_scheduler.delivery.signing import MAX_ACTIVE_SECRETS, InvalidSecret, WebhookSigner, decode_secret
from task_scheduler.logs import log_event

logger = logging.getLogger(__name__)


class TenantSigners:
    def __init__(self, *, engine: AsyncEngine, service_secrets: list[str], refresh_seconds: float) -> None:
        self._engine = engine
        self._default = WebhookSigner(service_secrets)
        self._refresh_seconds = max(refresh_seconds, 0.5)
        self._by_tenant: dict[str, WebhookSigner] = {}
        self._unreadable: list[int] = []

    def for_tenant(self, tenant: str) -> WebhookSigner:
        return self._by_tenant.get(tenant, self._default)

    async def refresh(self) -> None:
        async with self._engine.connect() as conn:
            rows = await repository.active_secrets(conn)
        secrets: dict[str, list[str]] = defaultdict(list)
        unreadable: list[int] = []
        for row in rows:  # newest first
            if len(secrets[row.tenant]) >= MAX_ACTIVE_SECRETS:
                continue
            try:
                decode_secret(row.secret)
            except (InvalidSecret, TypeError, AttributeError):
                unreadable.append(row.id)
                continue
            secrets[row.tenant].append(row.secret)
        if unreadable != self._unreadable:
            self._unreadable = unreadable
            if unreadable:
                log_event(logger, "signers.secret_unreadable", logging.WARNING, secret_ids=unreadable[:20])
        self._by_tenant = {tenant: WebhookSigner(values) for tenant, values in secrets.items() if values}

    async def run(self) -> None:
        """Refresh forever; a failed refresh keeps the last known secrets."""
        while True:
            try:
                await self.refresh()
            except Exception as exc:  # noqa: BLE001 - retried at the next refresh
                log_event(logger, "signers.refresh_failed", logging.WARNING, error=repr(exc))
            await asyncio.sleep(self._refresh_seconds)
