"""Every table of the service on one MetaData (what migrations and the schema test compare)."""

from __future__ import annotations

from task_scheduler.auth.models import api_keys, tenant_secrets
from task_scheduler.bulk.models import bulk_jobs
from task_scheduler.db import metadata
from task_scheduler.destinations.models import destinations
from task_scheduler.events.models import tenant_webhooks
from task_scheduler.schedules.models import schedules
from task_scheduler.timers.models import idempotency_keys, timer_attempts, timers

__all__ = [
    "api_keys",
    "bulk_jobs",
    "destinations",
    "idempotency_keys",
    "metadata",
    "schedules",
    "tenant_secrets",
    "tenant_webhooks",
    "timer_attempts",
    "timers",
]
