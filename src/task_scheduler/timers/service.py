"""Timer use cases: validate against the settings, call the repository, shape the answer."""

from __future__ import annotations

import logging
import math
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from task_scheduler.config import Settings
from task_scheduler.delivery.client import delivery_header_id
from task_scheduler.errors import NotFoundError, ValidationFailed
from task_scheduler.logs import log_event
from task_scheduler.timers import repository
from task_scheduler.timers.repository import TimerRow
from task_scheduler.timers.schemas import TimerCreate, TimerCreated, TimerView

logger = logging.getLogger(__name__)


def seconds_left(due_at: datetime, now: datetime) -> int:
    """Whole seconds until `due_at`, rounded up, never negative."""
    return max(0, math.ceil((due_at - now).total_seconds()))


class TimerService:
    def __init__(self, *, engine: AsyncEngine, settings: Settings) -> None:
        self._engine = engine
        self._settings = settings

    async def create(self, new: TimerCreate) -> TimerCreated:
        total = new.total_seconds
        if total > self._settings.max_horizon_seconds:
            raise ValidationFailed(
                f"the timer would fire in {total} seconds, more than the maximum of "
                f"{self._settings.max_horizon_seconds} seconds",
                field=new.largest_unit(),
            )
        async with self._engine.begin() as conn:
            row = await repository.create_timer(
                conn,
                url=new.url,
                delay_seconds=total,
                notify_within=self._settings.lookahead_seconds,
            )
        log_event(logger, "timer.created", timer_id=row.id, due_in_s=total)
        return TimerCreated(timer_id=row.id, time_left=seconds_left(row.due_at, row.db_now))

    async def get(self, timer_id: int) -> TimerView:
        async with self._engine.connect() as conn:
            row = await repository.get_timer(conn, timer_id=timer_id)
        if row is None:
            raise NotFoundError(f"timer {timer_id} does not exist", field="timer_id")
        return _view(row)


def _view(row: TimerRow) -> TimerView:
    return TimerView(
        timer_id=row.id,
        time_left=seconds_left(row.due_at, row.db_now),
        status=row.status,
        url=row.url,
        due_at=row.due_at,
        created_at=row.created_at,
        attempts=row.attempts,
        last_error=row.last_error,
        delivered_at=row.delivered_at,
        delivery_id=delivery_header_id(row.delivery_id),
    )
