"""Housekeeping loops of each instance: retention deletes finished timers after the retention period in
small batches (short transactions, no long locks; SKIP LOCKED lets instances share the work),
drops expired idempotency keys; gauges refreshes the pending/overdue gauges."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.ext.asyncio import AsyncEngine

from task_scheduler import metrics
from task_scheduler.config import Settings
from task_scheduler.destinations import repository as destination_repository
from task_scheduler.logs import log_event
from task_scheduler.schedules import repository as schedule_repository
from task_scheduler.supervision import Supervisor
from task_scheduler.timers import repository

logger = logging.getLogger(__name__)

_GAUGE_COST_FACTOR = 50
_MANY_PENDING = 1_000_000  # from here on, counting them is slow enough to space out
_MAX_BATCHES_PER_RUN = 100
_FLOW_WAITING_LABELS = 20  # the limited destinations with the most timers waiting, each a label


class Housekeeper:
    """Two supervised loops: `retention` and `gauges`."""

    def __init__(
        self, *, engine: AsyncEngine, settings: Settings, supervisor: Supervisor | None = None
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._supervisor = supervisor or Supervisor()

    async def start(self) -> None:
        self._supervisor.start("retention", self._retention_loop)
        self._supervisor.start("gauges", self._gauges_loop)

    async def stop(self) -> None:
        await self._supervisor.stop("retention", "gauges")

    async def _retention_loop(self) -> None:
        while True:
            await asyncio.sleep(self._settings.retention_interval_seconds)
            try:
                await self.apply_retention()
            except Exception as exc:  # noqa: BLE001 - retried at the next turn
                log_event(logger, "housekeeping.failed", logging.WARNING, task="retention", error=repr(exc))

    async def _gauges_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            spacing = 0.0
            try:
                pending = await self.refresh_gauges()
                # Counting is linear in the pending timers: over a million, space it out to a
                # small share of the time (not judged by time alone: a cold first count is slow).
                if pending >= _MANY_PENDING:
                    spacing = _GAUGE_COST_FACTOR * (loop.time() - started)
            except Exception as exc:  # noqa: BLE001 - retried at the next turn
                log_event(logger, "housekeeping.failed", logging.WARNING, task="gauges", error=repr(exc))
            next_run = started + max(self._settings.stats_interval_seconds, spacing)
            await asyncio.sleep(max(0.0, next_run - loop.time()))

    async def refresh_gauges(self) -> int:
        """Set the pending, overdue and destination gauges; returns the pending timers."""
        async with self._engine.connect() as conn:
            pending, overdue = await repository.pending_stats(conn)
            active_schedules = await schedule_repository.count_active(conn)
            holding, waiting = await destination_repository.holding_stats(conn)
            limited = await destination_repository.waiting_limited(conn, limit=_FLOW_WAITING_LABELS)
        metrics.FLOW_WAITING.clear()
        for key, count in limited:
            metrics.FLOW_WAITING.labels(key[:200]).set(count)
        metrics.DESTINATIONS_HOLDING.set(holding)
        metrics.WAITING_FOR_DESTINATION.set(waiting)
        metrics.PENDING.set(pending)
        metrics.SCHEDULES_ACTIVE.set(active_schedules)
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
