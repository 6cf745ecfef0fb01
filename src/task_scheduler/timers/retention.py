"""Housekeeping loop of each instance: deletes finished timers after the retention period in
small batches (short transactions, no long locks; SKIP LOCKED lets instances share the work),
drops expired idempotency keys, and refreshes the pending/overdue gauges."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.ext.asyncio import AsyncEngine

from task_scheduler import metrics
from task_scheduler.config import Settings
from task_scheduler.logs import log_event
from task_scheduler.timers import repository

logger = logging.getLogger(__name__)

_GAUGE_COST_FACTOR = 50
_MANY_PENDING = 1_000_000  # counting them takes ~0.1 s
_MAX_BATCHES_PER_RUN = 100


class Housekeeper:
    def __init__(self, *, engine: AsyncEngine, settings: Settings) -> None:
        self._engine = engine
        self._settings = settings
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="housekeeper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_retention = loop.time() + self._settings.retention_interval_seconds
        next_gauges = loop.time()
        while True:
            try:
                if loop.time() >= next_gauges:
                    started = loop.time()
                    pending = await self.refresh_gauges()
                    took = loop.time() - started
                    # Counting is linear in the pending timers (about 1.2 s at 10,000,000): over a
                    # million, wait long enough that it takes at most ~2 % of the time. (Not
                    # judged by time alone: a small table's first count can be slow, cold.)
                    spacing = _GAUGE_COST_FACTOR * took if pending >= _MANY_PENDING else 0.0
                    next_gauges = started + max(self._settings.stats_interval_seconds, spacing)
                if loop.time() >= next_retention:
                    await self.apply_retention()
                    next_retention = loop.time() + self._settings.retention_interval_seconds
            except Exception as exc:  # noqa: BLE001 - housekeeping retries at the next turn
                log_event(logger, "housekeeping.failed", logging.WARNING, error=repr(exc))
            await asyncio.sleep(self._settings.stats_interval_seconds)

    async def refresh_gauges(self) -> int:
        """Set the pending and overdue gauges; returns the pending timers."""
        async with self._engine.connect() as conn:
            pending, overdue = await repository.pending_stats(conn)
        metrics.PENDING.set(pending)
        metrics.OVERDUE.set(overdue)
        return pending

    async def apply_retention(self) -> int:
        """Delete finished timers older than the retention period; returns how many."""
        settings = self._settings
        batch = settings.retention_batch_size
        deleted = 0
        for _ in range(_MAX_BATCHES_PER_RUN):
            async with self._engine.begin() as conn:
                count = await repository.delete_finished(
                    conn, older_than_seconds=settings.retention_seconds, limit=batch
                )
            deleted += count
            if count < batch:
                break
        async with self._engine.begin() as conn:
            keys = await repository.delete_stale_idempotency_keys(
                conn, older_than_seconds=settings.idempotency_window_seconds, limit=10 * batch
            )
        if deleted or keys:
            metrics.RETENTION_DELETED.inc(deleted)
            log_event(logger, "retention.deleted", timers=deleted, idempotency_keys=keys)
        return deleted
