"""The dispatcher: claims due timers, holds the near future in memory, fires each on time.

One per instance, no leader. Each loop turn it (1) returns lapsed leases of dead instances to
`pending`, (2) claims timers due within `lookahead_seconds` (`FOR UPDATE SKIP LOCKED`, leased to
this instance), (3) sleeps until woken by a NOTIFY about a near-due timer, a freed slot, or the
poll interval. Each claimed timer waits in its own task for (due_at - database now at claim) on
this host's monotonic clock, so a wrong host clock can make a timer late, never early.

Leases: a heartbeat every third of `lease_seconds` extends every lease this instance holds, so a
live instance keeps its timers however long its queue is; only a dead (or cut off) instance's
leases lapse. A request starts only while the last heartbeat vouches for the lease until after
the request's timeout; otherwise the timer is handed back.

Outcomes are recorded by one writer task in batches (one fenced UPDATE per kind per batch): a
batch is whatever queued up while the previous one was written, so a lone timer is written at
once and a burst of thousands costs a handful of statements.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from task_scheduler import metrics
from task_scheduler.config import Settings
from task_scheduler.delivery.backoff import retry_delay
from task_scheduler.delivery.client import DeliveryResult, WebhookClient, WebhookRequest
from task_scheduler.delivery.host_slots import HostSlots
from task_scheduler.delivery.signers import TenantSigners
from task_scheduler.logs import log_event
from task_scheduler.timers import repository
from task_scheduler.timers.repository import AttemptRecord, ClaimedTimer, Outcome

logger = logging.getLogger(__name__)

# Heartbeats per lease period: two may fail in a row before a lease is at risk.
_HEARTBEATS_PER_LEASE = 3
_MAX_WRITE_BATCH = 1000
_TIMER_SLACK_SECONDS = 0.0005
# Held timers, stuck ones included, stay below this many times max_in_flight (memory bound).
_MAX_HELD_FACTOR = 5
# A timer waiting this long for its host's slots no longer counts against max_in_flight.
_STUCK_SECONDS = 1.0
LISTEN_APPLICATION_NAME = "task-scheduler-listen"


class Verdict(Enum):
    DELIVERED = "timer.delivered"
    RETRY = "timer.retry_scheduled"
    FAILED = "timer.failed"
    EXPIRED = "timer.expired"
    RETURNED = "timer.lease_returned"


@dataclass(frozen=True, slots=True)
class _Pending:
    verdict: Verdict
    outcome: Outcome
    fields: dict[str, object]


_WRITERS: dict[Verdict, Callable[..., Awaitable[set[int]]]] = {
    Verdict.DELIVERED: repository.mark_delivered,
    Verdict.RETRY: repository.schedule_retry,
    Verdict.FAILED: repository.mark_failed,
    Verdict.EXPIRED: repository.mark_expired,
    Verdict.RETURNED: repository.release_leases,
}


class Dispatcher:
    """Claim, hold and fire timers for one instance; started and stopped by the app's lifespan."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        client: WebhookClient,
        settings: Settings,
        listen_dsn: str,
        signers: TenantSigners | None = None,
    ) -> None:
        self._engine = engine
        self._client = client
        self._settings = settings
        self._listen_dsn = listen_dsn
        self._signers = signers
        self.owner = settings.instance_id
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._held: dict[int, asyncio.Task[None]] = {}
        self._sending: set[int] = set()
        self._send_slots = asyncio.Semaphore(settings.max_concurrent_deliveries)
        self._host_slots = HostSlots(settings.max_concurrent_per_host)
        self._short_of_room = False
        self._outcomes: asyncio.Queue[_Pending] = asyncio.Queue()
        self._unwritten: set[int] = set()  # timers whose outcome is queued or being written
        self._tasks: dict[str, asyncio.Task[None]] = {}
        # Monotonic time until which the last heartbeat made every lease held here last; taken
        # from the moment the query was sent, so it errs short.
        self._leases_valid_until = 0.0

    @property
    def running(self) -> bool:
        task = self._tasks.get("claim")
        return task is not None and not task.done()

    async def start(self) -> None:
        for name, loop in (
            ("claim", self._claim_loop),
            ("listen", self._listen_loop),
            ("heartbeat", self._heartbeat_loop),
            ("writer", self._writer_loop),
            *((("signers", self._signers.run),) if self._signers is not None else ()),
        ):
            self._tasks[name] = asyncio.create_task(loop(), name=f"dispatcher-{name}")
        log_event(logger, "dispatcher.started", instance=self.owner)

    async def stop(self) -> None:
        """Stop claiming, let requests in flight finish (grace period), hand back the rest."""
        self._stopping.set()
        self._wake.set()
        for name in ("listen", "claim"):
            await _cancel(self._tasks[name])
        waiting = [tid for tid in self._held if tid not in self._sending]
        for tid in waiting:
            self._held[tid].cancel()  # each hands its timer back on the way out
        grace = self._settings.shutdown_grace_seconds
        in_flight = list(self._held.values())
        if in_flight:
            _, late = await asyncio.wait(in_flight, timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._outcomes.join(), timeout=max(grace, 1.0))
        for name in ("writer", "heartbeat", "signers"):
            if name in self._tasks:
                await _cancel(self._tasks[name])
        log_event(logger, "dispatcher.stopped", instance=self.owner, handed_back=len(waiting))

    # -- claiming ---------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        loop = asyncio.get_running_loop()
        settings = self._settings
        next_expiry_check = 0.0
        failures = 0
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                if not failures and loop.time() >= next_expiry_check:
                    await self._expire_leases()
                    next_expiry_check = loop.time() + settings.poll_interval_seconds
                # Timers stuck behind a full host for over a second do not count against
                # max_in_flight; all held timers together stay below _MAX_HELD_FACTOR times it.
                active = len(self._held) - self._host_slots.waiting_longer_than(_STUCK_SECONDS)
                room = min(
                    settings.max_in_flight - active,
                    settings.max_in_flight * _MAX_HELD_FACTOR - len(self._held),
                )
                asked = min(room, settings.claim_batch_size)
                self._short_of_room = asked <= 0
                got = await self._claim(asked) if asked > 0 else 0
                if failures:
                    log_event(logger, "dispatcher.recovered", instance=self.owner)
                    # Every instance lost the database too: give their heartbeats and outcome
                    # writes a full lease to catch up before any lease counts as abandoned.
                    next_expiry_check = loop.time() + settings.lease_seconds
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
            metrics.LEASES_EXPIRED.inc(expired)
            log_event(logger, "dispatcher.leases_expired", logging.WARNING, count=expired)

    async def _claim(self, limit: int) -> int:
        settings = self._settings
        # time.monotonic(), not loop.time(): the event loop's clock is read once per loop
        # iteration, so under load it lags, and a deadline computed from it comes too early.
        asked_at = time.monotonic()
        async with self._engine.begin() as conn:
            claimed = await repository.claim_due(
                conn,
                owner=self.owner,
                lookahead_seconds=settings.lookahead_seconds,
                lease_seconds=settings.lease_seconds,
                limit=limit,
            )
            # The database's clock, read after the claimed rows were in: mapping it to
            # `received` can only make a timer late (by this one small query's answer), never
            # early. Not the claim's now() (its transaction's start) and before the commit: both
            # would make every held timer late by milliseconds (by the claim statement, the rows'
            # decoding, the commit's fsync). Nothing is sent before the commit: the tasks start
            # after it.
            db_now = await repository.database_clock(conn)
            received = time.monotonic()
        lease_valid_until = asked_at + settings.lease_seconds
        for timer in claimed:
            fire_at = received + max(0.0, (timer.due_at - db_now).total_seconds())
            task = asyncio.create_task(self._fire(timer, db_now, received, fire_at, lease_valid_until))
            self._held[timer.id] = task
            task.add_done_callback(functools.partial(self._forget, timer.id))
        if claimed:
            metrics.CLAIMED.inc(len(claimed))
            metrics.HELD.set(len(self._held))
            log_event(logger, "dispatcher.claimed", logging.DEBUG, count=len(claimed))
        return len(claimed)

    def _forget(self, timer_id: int, task: asyncio.Task[None]) -> None:
        if self._held.get(timer_id) is task:
            del self._held[timer_id]
            metrics.HELD.set(len(self._held))
        if not task.cancelled() and task.exception() is not None:
            log_event(
                logger,
                "timer.fire_crashed",
                logging.ERROR,
                timer_id=timer_id,
                error=repr(task.exception()),
            )
        if self._short_of_room:  # the claim loop waits for room: there is some again
            self._short_of_room = False
            self._wake.set()

    async def _heartbeat_loop(self) -> None:
        settings = self._settings
        while True:
            await asyncio.sleep(settings.lease_seconds / _HEARTBEATS_PER_LEASE)
            working = [*self._held, *self._unwritten]
            if not working:
                continue
            asked_at = time.monotonic()
            try:
                async with self._engine.begin() as conn:
                    await repository.extend_leases(
                        conn, owner=self.owner, timer_ids=working, lease_seconds=settings.lease_seconds
                    )
                self._leases_valid_until = asked_at + settings.lease_seconds
            except Exception as exc:  # noqa: BLE001 - retried next beat; leases may then lapse
                log_event(
                    logger,
                    "dispatcher.heartbeat_failed",
                    logging.WARNING,
                    instance=self.owner,
                    error=repr(exc),
                )

    # -- firing -----------------------------------------------------------------------------

    async def _fire(
        self,
        timer: ClaimedTimer,
        claimed_db_now: datetime,
        received: float,
        fire_at: float,
        claim_lease_until: float,
    ) -> None:
        timeout = timer.timeout_seconds or self._settings.request_timeout_seconds
        sent = False
        try:
            # Timers wake by the loop's millisecond, possibly lagging clock: check the real one
            # and sleep again until the due time has really come.
            while (delay := fire_at - time.monotonic()) > 0:  # noqa: ASYNC110 - a deadline, not an event
                await asyncio.sleep(delay + _TIMER_SLACK_SECONDS)
            # A slot of the timer's host first, then one of the instance: a slow host fills its
            # own slots and waits there, without taking the slots other hosts' timers need.
            async with self._host_slots.slot(timer.url), self._send_slots:
                # The database's now, estimated from the claim: errs early by the round trip.
                db_now = claimed_db_now + timedelta(seconds=time.monotonic() - received)
                if timer.deliver_before is not None and db_now > timer.deliver_before:
                    sent = True  # nothing goes out, but the outcome is decided
                    self._expire(timer, (db_now - timer.deliver_before).total_seconds())
                    return
                lease_until = max(claim_lease_until, self._leases_valid_until)
                if time.monotonic() + timeout > lease_until:
                    # No heartbeat vouches for the lease until the request would end (database
                    # unreachable, or this process stalled): hand the timer back rather than
                    # risk a second instance sending it too.
                    return
                self._sending.add(timer.id)
                sent = True
                late_ms = (time.monotonic() - fire_at) * 1000
                try:
                    result = await self._client.send(
                        WebhookRequest(
                            url=timer.url,
                            timer_id=timer.id,
                            delivery_id=timer.delivery_id,
                            attempt=timer.attempt,
                            due_at=timer.due_at,
                            method=timer.method,
                            headers=timer.headers,
                            body=timer.body,
                            labels=timer.labels,
                            timeout_seconds=timeout,
                            signer=None if self._signers is None else self._signers.for_tenant(timer.tenant),
                        )
                    )
                finally:
                    self._sending.discard(timer.id)
            self._record(timer, result, late_ms)
        finally:
            if not sent:
                self._queue_outcome(
                    _Pending(Verdict.RETURNED, Outcome(timer.id, timer.attempt), {"timer_id": timer.id})
                )

    def _record(self, timer: ClaimedTimer, result: DeliveryResult, late_ms: float) -> None:
        settings = self._settings
        fields: dict[str, object] = {
            "timer_id": timer.id,
            "attempt": timer.attempt,
            "instance": self.owner,
            "status_code": result.status_code,
            "duration_ms": round(result.duration_ms, 1),
            "late_ms": round(late_ms, 1),
        }
        metrics.FIRING_LATENESS.observe(max(late_ms, 0.0) / 1000)
        metrics.DELIVERY_DURATION.observe(result.duration_ms / 1000)
        metrics.WEBHOOK_REQUESTS.labels(metrics.webhook_result(result.status_code, result.error_class)).inc()
        record = AttemptRecord(
            timer_id=timer.id,
            attempt=timer.attempt,
            started_at=result.started_at,
            duration_ms=result.duration_ms,
            status_code=result.status_code,
            error_class=result.error_class,
            error_message=result.error,
            response_body=result.response_body,
        )
        if result.ok:
            verdict, outcome = Verdict.DELIVERED, Outcome(timer.id, timer.attempt, record=record)
        else:
            error = f"attempt {timer.attempt}: {result.error}"
            fields["error"] = result.error
            max_attempts = timer.max_attempts or settings.max_attempts
            used = timer.attempt - timer.attempts_before_redrive
            if result.retryable and used < max_attempts:
                cap = timer.backoff_cap_seconds or settings.backoff_cap_seconds
                if result.retry_after_seconds is not None:
                    delay = min(result.retry_after_seconds, cap)  # the receiver's wish, within policy
                else:
                    base = timer.backoff_base_seconds or settings.backoff_base_seconds
                    delay = retry_delay(used, base=base, cap=cap)
                fields["retry_in"] = round(delay, 3)
                verdict, outcome = (
                    Verdict.RETRY,
                    Outcome(timer.id, timer.attempt, error, delay, record),
                )
            else:
                verdict, outcome = (
                    Verdict.FAILED,
                    Outcome(timer.id, timer.attempt, error, record=record),
                )
        self._queue_outcome(_Pending(verdict, outcome, fields))

    def _expire(self, timer: ClaimedTimer, late_by_seconds: float) -> None:
        error = f"expired: delivery would have started {late_by_seconds:.3f}s after deliver_before"
        fields: dict[str, object] = {
            "timer_id": timer.id,
            "attempt": timer.attempt,
            "late_by_s": round(late_by_seconds, 3),
        }
        self._queue_outcome(_Pending(Verdict.EXPIRED, Outcome(timer.id, timer.attempt, error), fields))

    # -- recording outcomes -----------------------------------------------------------------

    def _queue_outcome(self, pending: _Pending) -> None:
        self._unwritten.add(pending.outcome.timer_id)
        self._outcomes.put_nowait(pending)

    async def _writer_loop(self) -> None:
        while True:
            batch = [await self._outcomes.get()]
            while len(batch) < _MAX_WRITE_BATCH and not self._outcomes.empty():
                batch.append(self._outcomes.get_nowait())
            try:
                await self._write(batch)
            finally:
                for item in batch:
                    self._unwritten.discard(item.outcome.timer_id)
                    self._outcomes.task_done()

    async def _write(self, batch: Sequence[_Pending]) -> None:
        """Write one batch, retrying through database outages; a lapsed lease drops the outcome."""
        by_verdict: dict[Verdict, list[_Pending]] = {}
        for item in batch:
            by_verdict.setdefault(item.verdict, []).append(item)
        failures = 0
        while True:
            try:
                async with self._engine.begin() as conn:
                    kept: set[int] = set()
                    for verdict, items in by_verdict.items():
                        kept |= await _WRITERS[verdict](
                            conn, owner=self.owner, outcomes=[i.outcome for i in items]
                        )
                    records = [
                        i.outcome.record
                        for i in batch
                        if i.outcome.record is not None and i.outcome.timer_id in kept
                    ]
                    await repository.insert_attempts(conn, records=records)
                break
            except Exception as exc:  # noqa: BLE001 - retried; the lease decides who may write
                failures += 1
                delay = min(0.1 * 2**failures, 5.0)
                log_event(
                    logger,
                    "dispatcher.write_failed",
                    logging.WARNING,
                    instance=self.owner,
                    count=len(batch),
                    error=repr(exc),
                    retry_in=delay,
                )
                await asyncio.sleep(delay)
        wake = False
        for item in batch:
            if item.outcome.timer_id not in kept:
                metrics.DELIVERIES.labels("lease_lost").inc()
                log_event(logger, "timer.lease_lost", logging.WARNING, **item.fields)
                continue
            metrics.DELIVERIES.labels(item.verdict.name.lower()).inc()
            quiet = item.verdict in (Verdict.DELIVERED, Verdict.RETURNED)
            level = logging.INFO if quiet else logging.WARNING
            log_event(logger, item.verdict.value, level, **item.fields)
            if item.verdict is Verdict.RETURNED or (
                item.verdict is Verdict.RETRY
                and item.outcome.retry_in_seconds <= self._settings.lookahead_seconds
            ):
                wake = True
        if wake and not self._stopping.is_set():
            self._wake.set()  # due again within the lookahead: claim now

    # -- LISTEN/NOTIFY ----------------------------------------------------------------------

    async def _listen_loop(self) -> None:
        """Keep one LISTEN connection open; a notification wakes the claim loop at once."""
        delay = 0.5
        while not self._stopping.is_set():
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(
                    self._listen_dsn,
                    timeout=10,
                    server_settings={"application_name": LISTEN_APPLICATION_NAME},
                )
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


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
