"""The outcome writer: records attempt outcomes in batches, one fenced UPDATE per verdict per batch.

A batch is whatever queued up while the previous one was written, so a lone timer is written at
once and a burst of thousands costs a handful of statements. A lost connection is retried with
backoff; a batch the database refuses for any other reason is split in halves until the culprit
is found, which is then written in a safe form (or, if even that fails, dropped: its lease lapses
and lease expiry decides). One bad outcome never holds up the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from task_scheduler import metrics
from task_scheduler.db import describe_database_error, is_transient
from task_scheduler.delivery.backoff import RetryBackoff
from task_scheduler.delivery.notifications import destination_event_timers, notification_timers
from task_scheduler.delivery.verdict import Decision, Verdict
from task_scheduler.destinations import breaker
from task_scheduler.destinations import repository as destinations
from task_scheduler.destinations.models import BreakerState
from task_scheduler.destinations.repository import Transition
from task_scheduler.logs import log_event
from task_scheduler.timers import repository
from task_scheduler.timers.repository import Outcome

logger = logging.getLogger(__name__)

MAX_WRITE_BATCH = 1000

_WRITERS: dict[Verdict, Callable[..., Awaitable[set[int]]]] = {
    Verdict.DELIVERED: repository.mark_delivered,
    Verdict.RETRY: repository.schedule_retry,
    Verdict.FAILED: repository.mark_failed,
    Verdict.EXPIRED: repository.mark_expired,
    Verdict.RETURNED: repository.return_leases,
}


@dataclass(frozen=True, slots=True)
class Written:
    kept: set[int]  # the timers whose lease held: their outcomes are written
    breakers: list[Transition]  # the destinations' breakers the outcomes opened or closed


async def write_decisions(
    conn: AsyncConnection,
    *,
    owner: str,
    decisions: Sequence[Decision],
    notify_within: float = 0.0,
    breaker_failures: int = 5,
    breaker_disable_after_seconds: float = 0.0,
) -> Written:
    """Write `decisions` in `conn`'s transaction, with the timers they make (outcome
    notifications, destination events) for those whose lease held, and what they say of their
    destinations (circuit breakers: one statement for the batch; `breaker_failures` consecutive
    failures open one; a probe that fails after `breaker_disable_after_seconds` of failing
    disables it)."""
    by_verdict: dict[Verdict, list[Outcome]] = {}
    for item in decisions:
        by_verdict.setdefault(item.verdict, []).append(item.outcome)
    kept: set[int] = set()
    for verdict, outcomes in by_verdict.items():
        kept |= await _WRITERS[verdict](conn, owner=owner, outcomes=outcomes)
    records = [
        item.outcome.record
        for item in decisions
        if item.outcome.record is not None and item.outcome.timer_id in kept
    ]
    await repository.insert_attempts(conn, records=records)
    notices = [d.notice for d in decisions if d.notice is not None and d.outcome.timer_id in kept]
    notifications = await notification_timers(conn, notices) if notices else []
    signals = [d.breaker for d in decisions if d.breaker is not None and d.outcome.timer_id in kept]
    changes: list[Transition] = []
    if signals:
        changes = await destinations.record_outcomes(
            conn,
            tallies=breaker.tally(signals),
            threshold=breaker_failures,
            disable_after_seconds=breaker_disable_after_seconds,
        )
    follow_ups = notifications + (await destination_event_timers(conn, changes) if changes else [])
    if follow_ups:
        await repository.insert_timers(conn, timers=follow_ups, notify_within=notify_within)
        metrics.NOTIFICATIONS_CREATED.inc(len(notifications))
    return Written(kept, changes)


def _breakers_changed(changes: Sequence[Transition]) -> None:
    """Counted and logged once the transaction that changed them committed."""
    for change in changes:
        if change.disabled:
            metrics.BREAKER_TRANSITIONS.labels("disabled").inc()
            log_event(
                logger,
                "destination.disabled",
                logging.WARNING,
                tenant=change.tenant,
                destination=change.key,
                failing_since=change.failing_since.isoformat() if change.failing_since else None,
                consecutive_failures=change.consecutive_failures,
            )
        if change.before is change.after:
            continue
        metrics.BREAKER_TRANSITIONS.labels(change.after.value).inc()
        log_event(
            logger,
            "destination.breaker_" + change.after.value,
            logging.WARNING if change.after is not BreakerState.CLOSED else logging.INFO,
            tenant=change.tenant,
            destination=change.key,
            was=change.before.value,
            consecutive_failures=change.consecutive_failures,
        )


class OutcomeWriter:
    """One per dispatcher; `run` is its background task."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        owner: str,
        lookahead_seconds: float,
        wake: Callable[[], None],
        breaker_failures: int = 5,
        breaker_disable_after_seconds: float = 0.0,
        on_breakers: Callable[[Sequence[Transition]], None] | None = None,
    ) -> None:
        self._engine = engine
        self._owner = owner
        self._breaker_failures = breaker_failures
        self._breaker_disable_after_seconds = breaker_disable_after_seconds
        self._on_breakers = on_breakers
        self._lookahead_seconds = lookahead_seconds
        self._wake = wake
        self._queue: asyncio.Queue[Decision] = asyncio.Queue()
        # Timers whose outcome is queued or being written, with when it was queued (oldest first).
        self._unwritten: dict[int, float] = {}

    def put(self, decision: Decision) -> None:
        self._unwritten.setdefault(decision.outcome.timer_id, time.monotonic())
        self._queue.put_nowait(decision)

    @property
    def unwritten(self) -> Collection[int]:
        """Timers whose outcome is not written yet (their leases must be kept alive)."""
        return self._unwritten.keys()

    def oldest_unwritten_age(self) -> float:
        """Seconds the oldest unwritten outcome has waited; 0 when none waits."""
        for queued_at in self._unwritten.values():
            return time.monotonic() - queued_at
        return 0.0

    async def join(self) -> None:
        await self._queue.join()

    async def run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_WRITE_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self.write(batch)
            finally:
                for item in batch:
                    self._unwritten.pop(item.outcome.timer_id, None)
                    self._queue.task_done()

    async def write(self, batch: Sequence[Decision]) -> set[int]:
        """Write one batch (see the module's docstring); returns the timer ids written."""
        dropped: set[int] = set()
        kept = await self._write_splitting(batch, dropped)
        wake = False
        for item in batch:
            timer_id = item.outcome.timer_id
            if timer_id in dropped:
                continue
            if timer_id not in kept:
                metrics.DELIVERIES.labels("lease_lost").inc()
                log_event(logger, "timer.lease_lost", logging.WARNING, **item.fields)
                continue
            metrics.DELIVERIES.labels(item.verdict.name.lower()).inc()
            quiet = item.verdict in (Verdict.DELIVERED, Verdict.RETURNED)
            log_event(logger, item.verdict.value, logging.INFO if quiet else logging.WARNING, **item.fields)
            if item.verdict is Verdict.RETURNED or (
                item.verdict is Verdict.RETRY and item.outcome.retry_in_seconds <= self._lookahead_seconds
            ):
                wake = True
        if wake:
            self._wake()  # due again within the lookahead: claim now
        return kept

    async def _write_splitting(self, batch: Sequence[Decision], dropped: set[int]) -> set[int]:
        try:
            return await self._write_retrying(batch)
        except Exception as exc:  # noqa: BLE001 - not a lost connection: a culprit is in this batch
            if len(batch) > 1:
                half = len(batch) // 2
                log_event(
                    logger,
                    "dispatcher.write_split",
                    logging.WARNING,
                    instance=self._owner,
                    count=len(batch),
                    error=describe_database_error(exc),
                )
                first = await self._write_splitting(batch[:half], dropped)
                return first | await self._write_splitting(batch[half:], dropped)
            return await self._write_safe_form(batch[0], exc, dropped)

    async def _write_safe_form(self, item: Decision, exc: Exception, dropped: set[int]) -> set[int]:
        reason = describe_database_error(exc)
        try:
            kept = await self._write_retrying([item.unstorable(reason)])
        except Exception as again:  # noqa: BLE001 - the lease lapses; lease expiry counts it
            dropped.add(item.outcome.timer_id)
            metrics.DELIVERIES.labels("dropped").inc()
            log_event(
                logger,
                "timer.outcome_dropped",
                logging.ERROR,
                **item.fields,
                verdict=item.verdict.name.lower(),
                error=reason,
                safe_form_error=describe_database_error(again),
            )
            return set()
        log_event(logger, "timer.outcome_unstorable", logging.ERROR, **item.fields, reason=reason)
        return kept

    async def _write_retrying(self, batch: Sequence[Decision]) -> set[int]:
        """Write, retrying while the database is unreachable; other errors are raised."""
        backoff = RetryBackoff(first=0.2, cap=5.0)
        while True:
            try:
                async with self._engine.begin() as conn:
                    written = await write_decisions(
                        conn,
                        owner=self._owner,
                        decisions=batch,
                        notify_within=self._lookahead_seconds,
                        breaker_failures=self._breaker_failures,
                        breaker_disable_after_seconds=self._breaker_disable_after_seconds,
                    )
                if written.breakers:
                    _breakers_changed(written.breakers)
                    if self._on_breakers is not None:
                        self._on_breakers(written.breakers)
                return written.kept
            except Exception as exc:
                if not is_transient(exc):
                    raise
                delay = backoff.failed()
                log_event(
                    logger,
                    "dispatcher.write_failed",
                    logging.WARNING,
                    instance=self._owner,
                    count=len(batch),
                    error=repr(exc),
                    retry_in=delay,
                )
                await asyncio.sleep(delay)
