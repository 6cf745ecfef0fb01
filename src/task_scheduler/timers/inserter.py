"""Group commit for single creates: concurrent `POST /timer` requests that arrive while earlier
ones are being committed share the next transaction (one multi-row INSERT, one commit).

A commit waits for the disk (fsync); with one transaction per request, the disk's flush rate
caps the create rate. Coalescing keeps every timer durable before it is acknowledged, and a lone
request is not delayed: it is written at once, in a batch of one.

Every create taken is answered: at shutdown, what is queued or taken but not yet handed to a
transaction is written by `stop()`, and a create that still has no answer then (the database
failed) gets `ServiceUnavailable` (503), never silence.
"""

from __future__ import annotations

import asyncio
import contextlib

from sqlalchemy.ext.asyncio import AsyncEngine

from task_scheduler.errors import ServiceUnavailable
from task_scheduler.timers import repository
from task_scheduler.timers.repository import CreatedTimer, NewTimer

_MAX_BATCH = 500
_Waiting = tuple[NewTimer, asyncio.Future[CreatedTimer]]


class BatchInserter:
    def __init__(self, *, engine: AsyncEngine, notify_within: float, concurrent_batches: int = 4) -> None:
        self._engine = engine
        self._notify_within = notify_within
        self._queue: asyncio.Queue[_Waiting] = asyncio.Queue()
        # Taken from the queue, not yet handed to a flush (waiting for a slot).
        self._taken: list[_Waiting] = []
        self._stopping = False
        self._slots = asyncio.Semaphore(concurrent_batches)
        self._task: asyncio.Task[None] | None = None
        self._flushes: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="batch-inserter")

    async def stop(self) -> None:
        """Stop batching; every create taken is answered before this returns (written, or failed
        with ServiceUnavailable if the database fails now)."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.gather(*self._flushes, return_exceptions=True)
        leftover, self._taken = self._taken, []
        while not self._queue.empty():
            leftover.append(self._queue.get_nowait())
        try:
            if leftover:
                await self._slots.acquire()
                await self._flush(leftover)
        finally:
            for _, future in leftover:
                if not future.done():
                    future.set_exception(
                        ServiceUnavailable("the service is shutting down; the timer was not created")
                    )

    async def insert(self, timer: NewTimer) -> CreatedTimer:
        """Insert one timer (committed when this returns); raises what the database raised."""
        if self._stopping or self._task is None or self._task.done():
            async with self._engine.begin() as conn:
                (row,) = await repository.insert_timers(
                    conn, timers=[timer], notify_within=self._notify_within
                )
            return row
        future: asyncio.Future[CreatedTimer] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((timer, future))
        return await future

    async def _run(self) -> None:
        while True:
            self._taken = [await self._queue.get()]  # stop() answers these if cancelled now
            await self._slots.acquire()
            batch, self._taken = self._taken, []
            while len(batch) < _MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            task = asyncio.create_task(self._flush(batch))
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)

    async def _flush(self, batch: list[_Waiting]) -> None:
        try:
            async with self._engine.begin() as conn:
                rows = await repository.insert_timers(
                    conn, timers=[timer for timer, _ in batch], notify_within=self._notify_within
                )
        except Exception as exc:  # noqa: BLE001 - every waiting request gets the error
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
        else:
            for (_, future), row in zip(batch, rows, strict=True):
                if not future.done():
                    future.set_result(row)
        finally:
            self._slots.release()
