"""Group commit for single creates: concurrent requests that arrive while earlier ones are being
committed share the next transaction (one commit for all of them).

A commit waits for the disk (fsync); with one transaction per request, the disk's flush rate caps
the create rate (about 220 commits/s here). Coalescing keeps every item durable before it is
acknowledged, and a lone request is not delayed: it is written at once, in a batch of one.

Every item taken is answered: at shutdown, what is queued or taken but not yet handed to a
transaction is written by `stop()`, and an item that still has no answer then (the database
failed) gets `ServiceUnavailable` (503), never silence. `write` may answer one item with an
exception (it failed alone, e.g. in its own savepoint): only that caller gets it.

With `alone_on_failure`, a batch is written without savepoints (each costs two round trips);
if the database refuses it, the transaction is rolled back and each item is written again in a
transaction of its own, so the one it refuses fails alone and the others are created.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from task_scheduler.errors import ServiceUnavailable

In = TypeVar("In")
Out = TypeVar("Out")

_MAX_BATCH = 500


class GroupCommit(Generic[In, Out]):
    """Subclasses say how a batch is written (`write`), what the background task is called and
    what a caller hears when shutdown leaves its item unwritten."""

    name = "group-commit"
    unwritten_message = "the service is shutting down; nothing was created"
    alone_on_failure = False

    def __init__(self, *, engine: AsyncEngine, concurrent_batches: int = 4) -> None:
        self._engine = engine
        self._queue: asyncio.Queue[tuple[In, asyncio.Future[Out]]] = asyncio.Queue()
        # Taken from the queue, not yet handed to a flush (waiting for a slot).
        self._taken: list[tuple[In, asyncio.Future[Out]]] = []
        self._stopping = False
        self._slots = asyncio.Semaphore(concurrent_batches)
        self._task: asyncio.Task[None] | None = None
        self._flushes: set[asyncio.Task[None]] = set()

    async def write(self, conn: AsyncConnection, items: list[In]) -> Sequence[Out | Exception]:
        """Write `items` in `conn`'s transaction; one result (or exception) per item, in order."""
        raise NotImplementedError

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        """Stop batching; every item taken is answered before this returns (written, or failed
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
                    future.set_exception(ServiceUnavailable(self.unwritten_message))

    async def submit(self, item: In) -> Out:
        """Write one item (committed when this returns); raises what writing it raised."""
        if self._stopping or self._task is None or self._task.done():
            async with self._engine.begin() as conn:
                (result,) = await self.write(conn, [item])
            if isinstance(result, Exception):
                raise result
            return result
        future: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, future))
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

    async def _flush(self, batch: list[tuple[In, asyncio.Future[Out]]]) -> None:
        try:
            try:
                async with self._engine.begin() as conn:
                    results = await self.write(conn, [item for item, _ in batch])
            except Exception as exc:  # noqa: BLE001 - every waiting request gets the error
                if not (self.alone_on_failure and len(batch) > 1):
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    return
                self.refused(len(batch), exc)
                results = [await self._alone(item) for item, _ in batch]
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)
        finally:
            self._slots.release()

    async def _alone(self, item: In) -> Out | Exception:
        """`item` written in a transaction of its own: its result, or what writing it raised."""
        try:
            async with self._engine.begin() as conn:
                (result,) = await self.write(conn, [item])
        except Exception as exc:  # noqa: BLE001 - this item fails alone; its caller gets it
            return exc
        return result

    def refused(self, count: int, error: Exception) -> None:
        """The database refused a batch of `count` (each item is written again alone)."""
