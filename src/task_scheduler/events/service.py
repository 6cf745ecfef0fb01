"""Registering a tenant's operational webhooks (their delivery is delivery/notifications.py)."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncEngine

from task_scheduler.config import Settings
from task_scheduler.delivery.ssrf import ALLOW_NETWORKS_HINT, AddressPolicy
from task_scheduler.errors import NotFoundError, ValidationFailed
from task_scheduler.events import repository
from task_scheduler.events.schemas import TenantWebhookCreate, TenantWebhookList, TenantWebhookView
from task_scheduler.logs import log_event

logger = logging.getLogger(__name__)


class EventService:
    def __init__(self, *, engine: AsyncEngine, settings: Settings) -> None:
        self._engine = engine
        self._address_policy = AddressPolicy.parse_allowed(settings.webhook_allowed_networks)

    async def register(self, new: TenantWebhookCreate, *, tenant: str) -> TenantWebhookView:
        blocked = self._address_policy.literal_host_reason(new.url)
        if blocked is not None:
            raise ValidationFailed(f"url: blocked destination: {blocked}; {ALLOW_NETWORKS_HINT}", field="url")
        async with self._engine.begin() as conn:
            row = await repository.insert_webhook(conn, tenant=tenant, url=new.url, events=list(new.events))
        log_event(logger, "tenant_webhook.registered", tenant=tenant, webhook_id=row.id, events=row.events)
        return _view(row)

    async def list(self, *, tenant: str) -> TenantWebhookList:
        async with self._engine.connect() as conn:
            rows = await repository.list_webhooks(conn, tenant=tenant)
        return TenantWebhookList(webhooks=[_view(row) for row in rows])

    async def remove(self, webhook_id: int, *, tenant: str) -> None:
        async with self._engine.begin() as conn:
            if not await repository.delete_webhook(conn, tenant=tenant, webhook_id=webhook_id):
                raise NotFoundError(f"tenant webhook {webhook_id} not found", field="webhook_id")
        log_event(logger, "tenant_webhook.removed", tenant=tenant, webhook_id=webhook_id)


def _view(row: repository.TenantWebhookRow) -> TenantWebhookView:
    return TenantWebhookView(webhook_id=row.id, url=row.url, events=row.events, created_at=row.created_at)
