"""The per-tenant cap on pending timers, cheap on the request path at any table size.

Counting a tenant's pending timers reads up to a cap's worth of index entries (a million by
default: a noticeable query). So a request never waits for a recount once the tenant has been
counted: the count is refreshed in the background when it is older than `ttl_seconds`, one query
per tenant at a time, and requests go on against the last count plus what this instance has added
since. Only a tenant's first request waits, and concurrent first requests share one query. The
cap is therefore approximate by what other instances add within `ttl_seconds`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from task_scheduler.errors import TooManyRequests
from task_scheduler.logs import log_event
from task_scheduler.timers import repository

logger = logging.getLogger(__name__)


@dataclass
class _Count:
    pending: int
    fresh_until: float


class PendingCap:
    def __init__(self, *, engine: AsyncEngine, cap: int, ttl_seconds: float) -> None:
        self._engine = engine
        self._cap = cap
        self._ttl = ttl_seconds
        self._counts: dict[str, _Count] = {}
        self._refreshing: dict[str, asyncio.Task[None]] = {}

    async def reserve(self, tenant: str, adding: int) -> None:
        """Count `adding` new timers against the tenant's cap, or raise TooManyRequests."""
        count = self._counts.get(tenant)
        if count is None:
            await asyncio.shield(self._refresh(tenant))
            count = self._counts[tenant]
        elif count.fresh_until < time.monotonic():
            self._refresh(tenant)  # in the background; this request uses the last count
        if count.pending + adding > self._cap:
            raise TooManyRequests(
                f"tenant {tenant} has {count.pending} pending timers; the limit is {self._cap}"
                " (SCHEDULER_MAX_PENDING_PER_TENANT)",
                retry_after_seconds=max(1, round(self._ttl)),
            )
        count.pending += adding

    def release(self, tenant: str, unused: int) -> None:
        """Give back `unused` reserved timers that were not created after all."""
        count = self._counts.get(tenant)
        if count is not None:
            count.pending = max(0, count.pending - unused)

    def _refresh(self, tenant: str) -> asyncio.Task[None]:
        task = self._refreshing.get(tenant)
        if task is None:
            task = asyncio.create_task(self._recount(tenant), name=f"pending-count-{tenant}")
            self._refreshing[tenant] = task
        return task

    async def _recount(self, tenant: str) -> None:
        try:
            async with self._engine.connect() as conn:
                pending = await repository.count_pending(conn, tenant=tenant, upto=self._cap + 1)
            self._counts[tenant] = _Count(pending, time.monotonic() + self._ttl)
        except Exception as exc:
            known = self._counts.get(tenant)
            if known is None:
                raise  # the first request of the tenant gets the error (503 when the database is down)
            known.fresh_until = time.monotonic() + 1.0  # try again soon, keep the last count meanwhile
            log_event(logger, "timer.pending_count_failed", level=logging.WARNING, error=repr(exc))
        finally:
            del self._refreshing[tenant]

    async def close(self) -> None:
        """Stop background recounts (before the engine goes)."""
        tasks = list(self._refreshing.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
