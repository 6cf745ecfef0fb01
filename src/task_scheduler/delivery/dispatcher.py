"""The dispatcher: claims due timers, holds the near future in memory, fires each on time.

One per instance, no leader. Each loop turn it (1) returns lapsed leases of crashed instances to
`pending`, (2) claims timers due within `lookahead_seconds` (`FOR UPDATE SKIP LOCKED`, leased to
this instance), (3) sleeps until woken by a NOTIFY about a near-due timer, a freed slot, or the
poll interval. Each claimed timer waits in its own task for (due_at - database now at claim) on
this host's monotonic clock, so a wrong host clock can make a timer late, never early.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from task_scheduler.config import Settings
from task_scheduler.delivery.backoff import retry_delay
from task_scheduler.delivery.client import DeliveryResult, WebhookClient
from task_scheduler.logs import log_event
from task_scheduler.timers import repository
from task_scheduler.timers.repository import ClaimedTimer

logger = logging.getLogger(__name__)

# Start a request only if it can finish this long before the lease lapses.
_LEASE_SAFETY_SECONDS = 1.0
_FINISH_WRITE_TRIES = 6


class Dispatcher:
    """Claim, hold and fire timers for one instance; started and stopped by the app's lifespan."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        client: WebhookClient,
        settings: Settings,
        listen_dsn: str,
    ) -> None:
        self._engine = engine
        self._client = client
        self._settings = settings
        self._listen_dsn = listen_dsn
        self.owner = settings.instance_id
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._held: dict[int, asyncio.Task[None]] = {}
        self._sending: set[int] = set()
        self._send_slots = asyncio.Semaphore(settings.max_concurrent_deliveries)
        self._claim_task: asyncio.Task[None] | None = None
        self._listen_task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._claim_task is not None and not self._claim_task.done()

    @property
    def held_count(self) -> int:
        return len(self._held)

    async def start(self) -> None:
        self._claim_task = asyncio.create_task(self._claim_loop(), name="dispatcher-claim")
        self._listen_task = asyncio.create_task(self._listen_loop(), name="dispatcher-listen")
        log_event(logger, "dispatcher.started", instance=self.owner)

    async def stop(self) -> None:
        """Stop claiming, let requests in flight finish (grace period), hand back the rest."""
        self._stopping.set()
        self._wake.set()
        for task in (self._listen_task, self._claim_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        waiting = [tid for tid in self._held if tid not in self._sending]
        for tid in waiting:
            self._held[tid].cancel()
        in_flight = list(self._held.values())
        if in_flight:
            _, not_done = await asyncio.wait(
                in_flight, timeout=self._settings.shutdown_grace_seconds
            )
            for task in not_done:
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)
        released = 0
        if waiting:
            try:
                async with self._engine.begin() as conn:
                    released = await repository.release_leases(
                        conn, timer_ids=waiting, owner=self.owner
                    )
            except Exception as exc:  # noqa: BLE001 - the leases then simply lapse
                log_event(logger, "dispatcher.release_failed", logging.WARNING, error=repr(exc))
        log_event(logger, "dispatcher.stopped", instance=self.owner, released=released)

    # -- claiming ---------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        loop = asyncio.get_running_loop()
        settings = self._settings
        next_expiry_check = 0.0
        failures = 0
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                if loop.time() >= next_expiry_check:
                    await self._expire_leases()
                    next_expiry_check = loop.time() + settings.poll_interval_seconds
                room = settings.max_in_flight - len(self._held)
                asked = min(room, settings.claim_batch_size)
                got = await self._claim(asked) if asked > 0 else 0
                if failures:
                    log_event(logger, "dispatcher.recovered", instance=self.owner)
                failures = 0
            except Exception as exc:  # noqa: BLE001 - the loop must outlive any database outage
                failures += 1
                delay = min(0.1 * 2**failures, 5.0)
                log_event(
                    logger,
                    "dispatcher.claim_failed",
                    logging.WARNING,
                    instance=self.owner,
                    error=repr(exc),
                    retry_in=delay,
                )
                await self._idle(delay)
                continue
            if asked > 0 and got == asked:
                continue  # more may be due right now
            await self._idle(settings.poll_interval_seconds)

    async def _idle(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)

    async def _expire_leases(self) -> None:
        async with self._engine.begin() as conn:
            expired = await repository.expire_leases(conn, limit=self._settings.claim_batch_size)
        if expired:
            log_event(logger, "dispatcher.leases_expired", logging.WARNING, count=expired)

    async def _claim(self, limit: int) -> int:
        settings = self._settings
        async with self._engine.begin() as conn:
            claimed = await repository.claim_due(
                conn,
                owner=self.owner,
                lookahead_seconds=settings.lookahead_seconds,
                lease_seconds=settings.lease_seconds,
                limit=limit,
            )
        # The database's now() is taken before this point, so mapping it here never fires early.
        received = asyncio.get_running_loop().time()
        for timer in claimed:
            fire_at = received + max(0.0, (timer.due_at - timer.db_now).total_seconds())
            lease_left = (timer.lease_expires_at - timer.db_now).total_seconds()
            send_by = (
                received + lease_left - settings.request_timeout_seconds - _LEASE_SAFETY_SECONDS
            )
            task = asyncio.create_task(self._fire(timer, fire_at, send_by))
            self._held[timer.id] = task
            task.add_done_callback(functools.partial(self._forget, timer.id))
        if claimed:
            log_event(logger, "dispatcher.claimed", logging.DEBUG, count=len(claimed))
        return len(claimed)

    def _forget(self, timer_id: int, task: asyncio.Task[None]) -> None:
        if self._held.get(timer_id) is task:
            del self._held[timer_id]
        if not task.cancelled() and task.exception() is not None:
            log_event(
                logger,
                "timer.fire_crashed",
                logging.ERROR,
                timer_id=timer_id,
                error=repr(task.exception()),
            )
        if len(self._held) == self._settings.max_in_flight - 1:
            self._wake.set()  # a slot is free again

    # -- firing -----------------------------------------------------------------------------

    async def _fire(self, timer: ClaimedTimer, fire_at: float, send_by: float) -> None:
        loop = asyncio.get_running_loop()
        delay = fire_at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        async with self._send_slots:
            if loop.time() > send_by:
                # Too close to the lease's end: another instance may take it over; let it lapse.
                log_event(
                    logger,
                    "timer.lease_lapsing",
                    logging.WARNING,
                    timer_id=timer.id,
                    attempt=timer.attempt,
                )
                return
            self._sending.add(timer.id)
            late_ms = (loop.time() - fire_at) * 1000
            try:
                result = await self._client.send(
                    url=timer.url,
                    timer_id=timer.id,
                    delivery_id=timer.delivery_id,
                    attempt=timer.attempt,
                    due_at=timer.due_at,
                )
            finally:
                self._sending.discard(timer.id)
        await self._finish(timer, result, late_ms)

    async def _finish(self, timer: ClaimedTimer, result: DeliveryResult, late_ms: float) -> None:
        settings = self._settings
        fields = {
            "timer_id": timer.id,
            "attempt": timer.attempt,
            "instance": self.owner,
            "status_code": result.status_code,
            "duration_ms": round(result.duration_ms, 1),
            "late_ms": round(late_ms, 1),
        }
        write: Callable[[AsyncConnection], Awaitable[bool]]
        wake_claimer = False
        if result.ok:
            action, level = "timer.delivered", logging.INFO

            async def write(conn: AsyncConnection) -> bool:
                return await repository.mark_delivered(
                    conn, timer_id=timer.id, owner=self.owner, attempt=timer.attempt
                )

        elif result.retryable and timer.attempt < settings.max_attempts:
            delay = retry_delay(
                timer.attempt, base=settings.backoff_base_seconds, cap=settings.backoff_cap_seconds
            )
            action, level = "timer.retry_scheduled", logging.WARNING
            fields.update(error=result.error, retry_in=round(delay, 3))

            async def write(conn: AsyncConnection) -> bool:
                return await repository.schedule_retry(
                    conn,
                    timer_id=timer.id,
                    owner=self.owner,
                    attempt=timer.attempt,
                    delay_seconds=delay,
                    error=_attempt_error(timer.attempt, result),
                )

            wake_claimer = delay <= settings.lookahead_seconds
        else:
            action, level = "timer.failed", logging.WARNING
            fields.update(error=result.error)

            async def write(conn: AsyncConnection) -> bool:
                return await repository.mark_failed(
                    conn,
                    timer_id=timer.id,
                    owner=self.owner,
                    attempt=timer.attempt,
                    error=_attempt_error(timer.attempt, result),
                )

        if await self._write_outcome(write, timer):
            log_event(logger, action, level, **fields)
            if wake_claimer:
                self._wake.set()  # the retry is due within the lookahead: claim it now
        else:
            log_event(logger, "timer.lease_lost", logging.WARNING, **fields)

    async def _write_outcome(
        self, write: Callable[[AsyncConnection], Awaitable[bool]], timer: ClaimedTimer
    ) -> bool:
        """Record an attempt's outcome, retrying through short database outages."""
        for attempt in range(_FINISH_WRITE_TRIES):
            try:
                async with self._engine.begin() as conn:
                    return await write(conn)
            except Exception as exc:  # noqa: BLE001 - retried; after that the lease lapses
                log_event(
                    logger,
                    "timer.finish_write_failed",
                    logging.WARNING,
                    timer_id=timer.id,
                    error=repr(exc),
                )
                await asyncio.sleep(min(0.2 * 2**attempt, 5.0))
        return False

    # -- LISTEN/NOTIFY ----------------------------------------------------------------------

    async def _listen_loop(self) -> None:
        """Keep one LISTEN connection open; a notification wakes the claim loop at once."""
        delay = 0.5
        while not self._stopping.is_set():
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self._listen_dsn, timeout=10)
                closed = asyncio.Event()
                conn.add_termination_listener(lambda _c, ev=closed: ev.set())
                await conn.add_listener(repository.NOTIFY_CHANNEL, self._on_notify)
                log_event(logger, "dispatcher.listening", logging.DEBUG, instance=self.owner)
                self._wake.set()  # catch up on whatever was created while not listening
                delay = 0.5
                while not closed.is_set():
                    try:
                        await asyncio.wait_for(closed.wait(), timeout=5.0)
                    except TimeoutError:
                        await conn.execute("SELECT 1", timeout=5.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - reconnect; polling covers the gap
                log_event(
                    logger,
                    "dispatcher.listen_failed",
                    logging.WARNING,
                    instance=self.owner,
                    error=repr(exc),
                    retry_in=delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            finally:
                if conn is not None and not conn.is_closed():
                    conn.terminate()

    def _on_notify(self, *_args: object) -> None:
        self._wake.set()


def _attempt_error(attempt: int, result: DeliveryResult) -> str:
    return f"attempt {attempt}: {result.error}"
