"""Every table of the service on one MetaData (what migrations and the schema test compare)."""

from __future__ import annotations

from task_scheduler.auth.models import api_keys, tenant_secrets
from task_scheduler.bulk.models import bulk_jobs
from task_scheduler.db import metadata
from task_scheduler.destinations.models import destinations
from task_scheduler.events.models import tenant_webhooks
from task_scheduler.schedules.models import schedules
from task_scheduler.timers.models import idempotency_keys, timer_attempts, timers
from task_scheduler.ui.models import delivery_rollups, delivery_rollups_hourly, rollup_watermarks

__all__ = [
    "api_keys",
    "bulk_jobs",
    "delivery_rollups",
    "delivery_rollups_hourly",
    "destinations",
    "idempotency_keys",
    "metadata",
    "rollup_watermarks",
    "schedules",
    "tenant_secrets",
    "tenant_webhooks",
    "timer_attempts",
    "timers",
]
