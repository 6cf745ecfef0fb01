"""Group commit of `POST /timer`: concurrent creates share one multi-row INSERT and one commit
(group_commit.py); a batch the database refuses fails every timer of it (they were all checked
before, so that means the database is unwell)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from task_scheduler.group_commit import GroupCommit
from task_scheduler.timers import repository
from task_scheduler.timers.repository import CreatedTimer, NewTimer


class BatchInserter(GroupCommit[NewTimer, CreatedTimer]):
    name = "batch-inserter"
    unwritten_message = "the service is shutting down; the timer was not created"

    def __init__(self, *, engine: AsyncEngine, notify_within: float, concurrent_batches: int = 4) -> None:
        super().__init__(engine=engine, concurrent_batches=concurrent_batches)
        self._notify_within = notify_within

    async def write(self, conn: AsyncConnection, items: list[NewTimer]) -> Sequence[CreatedTimer]:
        return await repository.insert_timers(conn, timers=items, notify_within=self._notify_within)

    async def insert(self, timer: NewTimer) -> CreatedTimer:
        """Insert one timer (committed when this returns); raises what the database raised."""
        return await self.submit(timer)
