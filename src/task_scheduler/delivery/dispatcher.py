"""The dispatcher: claims due timers, holds the near future in memory, fires each on time.

One per instance, no leader. Each loop turn it (1) returns lapsed leases of dead instances to
`pending` (or fails timers whose leases lapsed too often), (2) claims timers due within
`lookahead_seconds` (`FOR UPDATE SKIP LOCKED`, leased to this instance), (3) sleeps until woken
by a NOTIFY about a near-due timer (listener.py), a freed slot, or the poll interval. Each claimed
timer waits in its own task for (due_at - database now at claim) on this host's monotonic clock,
so a wrong host clock can make a timer late, never early.

Leases: a heartbeat every third of `lease_seconds` extends every lease this instance holds, so a
live instance keeps its timers however long its queue is; only a dead (or cut off) instance's
leases lapse. A request starts only while the last heartbeat vouches for the lease until after
the request's timeout; otherwise the timer is returned (to `pending`, unsent).

Destinations (destinations/): the claim passes by the timers of a paused destination or one whose
circuit breaker is open, takes the one probe of each breaker whose cool-down is over, and a timer
claimed before its destination began to hold is returned unsent; once it lets them go, they
start slowly (host_slots.py: a tenth of the per-host limit in flight, rising). The timers of a
destination with a rate or parallelism limit go out through a loop of their own (`flow`,
destinations/flow.py): every `flow_interval_seconds` while any is due, it claims what the limits
allow, cluster-wide.

What a result means is decided by verdict.py (pure); outcomes are recorded by writer.py; each
request waits for a slot of its host (host_slots.py). Bulkheads: a claimed row that cannot be
handled, or a timer whose firing crashes, is failed as `unprocessable` and fails only itself.
Every loop runs under the supervisor (restarted after a crash); `problems()` tells /readyz when
one makes no progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from task_scheduler import metrics
from task_scheduler.config import Settings
from task_scheduler.delivery import verdict
from task_scheduler.delivery.backoff import RetryBackoff
from task_scheduler.delivery.client import WebhookClient, WebhookRequest
from task_scheduler.delivery.host_slots import HostSlots, SendSlots
from task_scheduler.delivery.listener import Listener
from task_scheduler.delivery.signers import TenantSigners
from task_scheduler.delivery.verdict import Decision, Verdict
from task_scheduler.delivery.writer import OutcomeWriter, write_decisions
from task_scheduler.destinations import flow
from task_scheduler.destinations import repository as destinations
from task_scheduler.destinations.breaker import BreakerSignal
from task_scheduler.destinations.models import BreakerState
from task_scheduler.destinations.repository import Transition
from task_scheduler.logs import log_event
from task_scheduler.schedules import engine as schedule_engine
from task_scheduler.supervision import Supervisor
from task_scheduler.timers import repository
from task_scheduler.timers.repository import ClaimedTimer
from task_scheduler.timers.shape import RawJson

if TYPE_CHECKING:  # imported only when tracing is on (app.py)
    from task_scheduler.tracing.otel import Tracing

logger = logging.getLogger(__name__)

# Heartbeats per lease period: two may fail in a row before a lease is at risk.
_HEARTBEATS_PER_LEASE = 3
_TIMER_SLACK_SECONDS = 0.0005
# Held timers, stuck ones included, stay below this many times max_in_flight (memory bound).
_MAX_HELD_FACTOR = 5
# A timer waiting this long for its host's slots no longer counts against max_in_flight.
_STUCK_SECONDS = 1.0
# What a held timer takes besides its request's text (its task, row object and bookkeeping).
_PER_TIMER_BYTES = 2_000
# A destination with this many rounds of its host's slots waiting here is passed by the claim
# until fewer wait (HostSlots.crowded).
_CROWDED_ROUNDS = 2


def held_bytes(timer: ClaimedTimer) -> int:
    """About what a held timer's request takes in memory: its URL, headers, labels and body
    (characters; a body as the text the claim keeps)."""
    body = timer.request.body
    if isinstance(body, RawJson):
        body_size = len(body.text)
    elif isinstance(body, str):
        body_size = len(body)
    else:  # None (the default body), or a value a notification built: small
        body_size = 0
    size = len(timer.url) + body_size + _PER_TIMER_BYTES
    for name, value in timer.request.headers.items():
        size += len(name) + len(value)
    for name, value in timer.labels.items():
        size += len(name) + len(value)
    return size


@dataclass(frozen=True, slots=True)
class _Taken:
    """A claim's timers ready to start after its commit, each with its monotonic firing time."""

    scheduled: list[tuple[ClaimedTimer, float]]
    settled: int  # claimed rows settled without a request
    db_now: datetime
    received: float


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
        supervisor: Supervisor | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self._engine = engine
        self._client = client
        self._tracing = tracing  # None: tracing off, each send is the plain one
        self._settings = settings
        self._signers = signers
        self._supervisor = supervisor or Supervisor()
        self.owner = settings.instance_id
        self._wake = asyncio.Event()
        self._flow_wake = asyncio.Event()  # the flow-control claim's (destinations/flow.py)
        self._flow_turns = 0  # which destination is served first when room is short (in turn)
        self._stopping = asyncio.Event()
        self._held: dict[int, asyncio.Task[None]] = {}
        # What each held timer's request takes (held_bytes), and all of them together.
        self._held_size: dict[int, int] = {}
        self._held_bytes = 0
        self._sending: set[int] = set()
        self._send_slots = SendSlots(settings.max_concurrent_deliveries)
        self._host_slots = HostSlots(
            settings.max_concurrent_per_host, slow_start_seconds=settings.slow_start_seconds
        )
        self._short_of_room = False
        self._writer = OutcomeWriter(
            engine=engine,
            owner=self.owner,
            lookahead_seconds=settings.lookahead_seconds,
            wake=self._claim_now,
            breaker_failures=settings.breaker_failures,
            breaker_disable_after_seconds=settings.breaker_disable_after_seconds,
            on_breakers=self._breakers_changed,
        )
        self._listener = Listener(dsn=listen_dsn, wake=self._claim_now, instance=self.owner)
        # Monotonic time until which the last heartbeat made every lease held here last; taken
        # from the moment the query was sent, so it errs short.
        self._leases_valid_until = 0.0
        self._last_claim_turn = time.monotonic()  # when the claim loop last completed a turn
        self._last_flow_turn = time.monotonic()  # and the flow-control claim loop
        # Destinations (tenant, key) that hold their timers (paused, breaker not closed), as last
        # read: a timer claimed before its destination opened is returned unsent, not sent.
        self._holding: frozenset[tuple[str, str]] = frozenset()
        self._holding_read_at = 0.0
        self._probes: set[int] = set()  # timers claimed as their destination's probe
        self._local_failures: dict[tuple[str, str], int] = {}  # see _count_locally

    async def start(self) -> None:
        self._last_claim_turn = self._last_flow_turn = time.monotonic()
        supervisor = self._supervisor
        supervisor.start("claim", self._claim_loop)
        supervisor.start("flow", self._flow_loop)
        supervisor.start("listen", self._listener.run)
        supervisor.start("heartbeat", self._heartbeat_loop)
        supervisor.start("writer", self._writer.run)
        if self._signers is not None:
            supervisor.start("signers", self._signers.run)
        log_event(logger, "dispatcher.started", instance=self.owner)

    async def stop(self) -> None:
        """Stop claiming, let requests in flight finish (grace period), return the rest."""
        # Cancelled first, then told to stop: a claim loop that saw the flag and returned on its
        # own would look like a crash to its supervisor (logged, counted and restarted).
        await self._supervisor.stop("listen", "claim", "flow")
        self._stopping.set()
        waiting = [tid for tid in self._held if tid not in self._sending]
        for tid in waiting:
            self._held[tid].cancel()  # each returns its timer on the way out
        grace = self._settings.shutdown_grace_seconds
        in_flight = list(self._held.values())
        if in_flight:
            _, late = await asyncio.wait(in_flight, timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._writer.join(), timeout=max(grace, 1.0))
        await self._supervisor.stop("writer", "heartbeat", "signers")
        log_event(logger, "dispatcher.stopped", instance=self.owner, returned=len(waiting))

    def problems(self) -> list[str]:
        """Why this dispatcher makes no progress (for /readyz); empty when it does."""
        found = []
        stall = self._settings.readiness_stall_seconds
        unwritten_for = self._writer.oldest_unwritten_age()
        if unwritten_for > stall:
            found.append(f"outcome writer: the oldest unwritten outcome waits for {unwritten_for:.1f}s")
        since_claim = time.monotonic() - self._last_claim_turn
        if since_claim > stall + self._settings.poll_interval_seconds:
            found.append(f"claim loop: no claim has succeeded for {since_claim:.1f}s")
        since_flow = time.monotonic() - self._last_flow_turn
        if since_flow > stall + self._settings.poll_interval_seconds:
            found.append(f"flow-control claim loop: no claim has succeeded for {since_flow:.1f}s")
        return found

    def _count_locally(self, signal: BreakerSignal) -> None:
        """Consecutive failures this instance saw, before they are written: at the threshold its
        timers of that destination wait at once (a fast-failing receiver answers hundreds of
        requests while one outcome batch is written); the breaker's own state (the database's,
        read every poll interval) decides from then on."""
        key = (signal.tenant, signal.key)
        if signal.up:
            self._local_failures.pop(key, None)
            return
        failures = self._local_failures.get(key, 0) + 1
        self._local_failures[key] = failures
        if failures >= self._settings.breaker_failures and key not in self._holding:
            self._holding = self._holding | {key}

    def _breakers_changed(self, changes: Sequence[Transition]) -> None:
        """This instance's outcomes opened or closed breakers: its held timers follow at once."""
        holding = set(self._holding)
        for change in changes:
            # The database's state stands for it from here, not this instance's count of failures.
            self._local_failures.pop((change.tenant, change.key), None)
            if change.after is BreakerState.CLOSED:
                holding.discard((change.tenant, change.key))
            else:
                holding.add((change.tenant, change.key))
        self._hold(frozenset(holding))

    def _hold(self, holding: frozenset[tuple[str, str]]) -> None:
        """The destinations that hold their timers from now on; those let go start slowly."""
        for _tenant, key in self._holding - holding:
            self._host_slots.ramp_up(key)
            log_event(
                logger,
                "destination.slow_start",
                logging.DEBUG,
                destination=key,
                seconds=self._settings.slow_start_seconds,
                instance=self.owner,
            )
        self._holding = holding

    def _claim_now(self) -> None:
        if not self._stopping.is_set():
            self._wake.set()
            self._flow_wake.set()

    # -- claiming ---------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        loop = asyncio.get_running_loop()
        settings = self._settings
        next_expiry_check = 0.0
        backoff = RetryBackoff(first=0.2, cap=5.0)
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                if not backoff.failures and loop.time() >= next_expiry_check:
                    await self._expire_leases()
                    next_expiry_check = loop.time() + settings.poll_interval_seconds
                asked = min(self._room(), settings.claim_batch_size)
                self._short_of_room = asked <= 0
                got = await self._claim(asked) if asked > 0 else 0
                if backoff.failures:
                    log_event(logger, "dispatcher.recovered", instance=self.owner)
                    # Every instance lost the database too: give their heartbeats and outcome
                    # writes a full lease to catch up before any lease counts as abandoned.
                    next_expiry_check = loop.time() + settings.lease_seconds
                backoff.succeeded()
                self._last_claim_turn = time.monotonic()
            except Exception as exc:  # noqa: BLE001 - the loop must outlive any database outage
                delay = backoff.failed()
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

    def _room(self) -> int:
        """How many more timers this instance may claim now. Timers stuck behind a full host for
        over a second do not count against max_in_flight; all held timers together stay below
        _MAX_HELD_FACTOR times it."""
        settings = self._settings
        if self._held_bytes >= settings.max_held_bytes:
            return 0  # the requests held take enough memory: none until some are sent
        active = len(self._held) - self._host_slots.waiting_longer_than(_STUCK_SECONDS)
        return min(
            settings.max_in_flight - active,
            settings.max_in_flight * _MAX_HELD_FACTOR - len(self._held),
        )

    async def _idle(self, seconds: float, wake: asyncio.Event | None = None) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for((wake or self._wake).wait(), timeout=seconds)

    # -- flow control (destinations/flow.py) --------------------------------------------------

    async def _flow_loop(self) -> None:
        """Claim the due timers of limited destinations as their limits allow: every
        flow_interval_seconds while any is due, else when woken (or every poll interval)."""
        settings = self._settings
        backoff = RetryBackoff(first=0.2, cap=5.0)
        while not self._stopping.is_set():
            self._flow_wake.clear()
            try:
                room = min(self._room(), settings.claim_batch_size)
                due = await self._claim_limited(room) if room > 0 else False
                backoff.succeeded()
                self._last_flow_turn = time.monotonic()
            except Exception as exc:  # noqa: BLE001 - the loop must outlive any database outage
                delay = backoff.failed()
                log_event(
                    logger,
                    "dispatcher.flow_claim_failed",
                    logging.WARNING,
                    instance=self.owner,
                    error=repr(exc),
                    retry_in=delay,
                )
                await self._idle(delay, self._flow_wake)
                continue
            if due:
                await asyncio.sleep(settings.flow_interval_seconds)
            else:
                await self._idle(settings.poll_interval_seconds, self._flow_wake)

    async def _claim_limited(self, limit: int) -> bool:
        """One flow-control claim: lock the limited destinations with timers due (those another
        instance is claiming are passed by), take what each one's bucket and parallelism allow,
        spend the tokens. Returns whether any limited destination has timers due (here or being
        claimed by another instance)."""
        asked_at = time.monotonic()
        async with self._engine.begin() as conn:
            buckets = await destinations.lock_limited(conn)
            if not buckets:  # none, or all being claimed by other instances: then come back soon
                return await destinations.limited_due(conn)
            allowed = flow.share(buckets, room=limit, turn=self._flow_turns)
            self._flow_turns += 1
            wanted = [(tenant, key, n) for (tenant, key), n in allowed.items() if n > 0]
            claim = (
                await repository.claim_limited(
                    conn, owner=self.owner, allowances=wanted, lease_seconds=self._settings.lease_seconds
                )
                if wanted
                else repository.Claim([], [])
            )
            sent = Counter((t.tenant, t.destination) for t in claim.timers)
            await destinations.spend_tokens(
                conn,
                left=[(b, b.tokens - sent[(b.tenant, b.key)]) for b in buckets if b.tokens is not None],
            )
            if self._held_here(claim.timers):  # as in _claim
                self._hold(frozenset(await destinations.holding(conn)) | self._held_locally())
            taken = await self._take(conn, claim)
        self._start(taken, asked_at)
        for bucket in buckets:
            label = metrics.destination_label(bucket.tenant, bucket.key)
            if sent[(bucket.tenant, bucket.key)]:
                metrics.FLOW_SENDS.labels(label).inc(sent[(bucket.tenant, bucket.key)])
            if not allowed[(bucket.tenant, bucket.key)]:
                metrics.FLOW_DEFERRALS.labels(label, flow.deferred_by(bucket)).inc()
        return True

    async def _expire_leases(self) -> None:
        async with self._engine.begin() as conn:
            lapsed = await repository.expire_leases(
                conn, limit=self._settings.claim_batch_size, max_lapses=self._settings.max_lease_expiries
            )
        if lapsed.returned or lapsed.failed:
            metrics.LEASES_EXPIRED.inc(lapsed.returned + lapsed.failed)
            log_event(
                logger,
                "dispatcher.leases_expired",
                logging.WARNING,
                count=lapsed.returned,
                failed_for_lapsing_too_often=lapsed.failed,
            )

    async def _claim(self, limit: int) -> int:
        settings = self._settings
        # time.monotonic(), not loop.time(): the event loop's clock is read once per loop
        # iteration, so under load it lags, and a deadline computed from it comes too early.
        asked_at = time.monotonic()
        async with self._engine.begin() as conn:
            claim = await repository.claim_due(
                conn,
                owner=self.owner,
                lookahead_seconds=settings.lookahead_seconds,
                lease_seconds=settings.lease_seconds,
                limit=limit,
                sparing=self._host_slots.crowded(_CROWDED_ROUNDS * settings.max_concurrent_per_host),
            )
            # The claim passed by every destination holding its timers, as of this transaction;
            # one it took timers of, but which holds here, was let go since the last read.
            let_go = self._held_here(claim.timers)
            await self._claim_probes(conn, claim)
            if time.monotonic() - self._holding_read_at >= settings.poll_interval_seconds:
                self._hold(frozenset(await destinations.holding(conn)))
                self._holding_read_at = time.monotonic()
                self._local_failures.clear()  # the database's counts stand from here
            elif let_go:
                self._hold(frozenset(await destinations.holding(conn)) | self._held_locally())
            taken = await self._take(conn, claim)
        return self._start(taken, asked_at)

    def _held_here(self, timers: Sequence[ClaimedTimer]) -> bool:
        """Whether `timers` (one claim's, which passed by the destinations holding in the
        database) include some of a destination held here for the database's sake: it was let go
        since the last read (its breaker closed by another instance's probe, or it was resumed).
        Without reading again at once, they were returned unsent and claimed again, turn after
        turn until the next read (every poll interval)."""
        if not self._holding:
            return False
        locally = self._held_locally()
        return any(
            (t.tenant, t.destination) in self._holding and (t.tenant, t.destination) not in locally
            for t in timers
        )

    def _held_locally(self) -> frozenset[tuple[str, str]]:
        """Destinations held on this instance's own count of failures, not yet the database's."""
        threshold = self._settings.breaker_failures
        return frozenset(key for key, failures in self._local_failures.items() if failures >= threshold)

    async def _take(self, conn: AsyncConnection, claim: repository.Claim) -> _Taken:
        """In the claim's transaction: map the claimed timers' due times onto this host's clock,
        advance their schedules, settle the rows that cannot be sent."""
        # The database's clock, read after the claimed rows were in: mapping it to
        # `received` can only make a timer late (by this one small query's answer), never
        # early. Not the claim's now() (its transaction's start) and before the commit: both
        # would make every held timer late by milliseconds (by the claim statement, the rows'
        # decoding, the commit's fsync). Nothing is sent before the commit: the tasks start
        # after it.
        db_now = await repository.database_clock(conn)
        received = time.monotonic()
        settled = [
            verdict.unprocessable(row.timer_id, row.attempt, reason=row.reason, at=db_now)
            for row in claim.unprocessable
        ]
        claimed = claim.timers
        if any(timer.schedule_id is not None for timer in claimed):
            claimed = await self._advance_schedules(conn, claimed, db_now, settled)
        scheduled: list[tuple[ClaimedTimer, float]] = []
        for timer in claimed:
            try:
                scheduled.append((timer, received + max(0.0, (timer.due_at - db_now).total_seconds())))
            except Exception as exc:  # noqa: BLE001 - one bad timer fails only itself
                reason = f"cannot be scheduled: {exc!r}"
                settled.append(verdict.unprocessable(timer.id, timer.attempt, reason=reason, at=db_now))
        if settled:
            await self._settle(conn, settled)
        return _Taken(scheduled, len(settled), db_now, received)

    def _start(self, taken: _Taken, asked_at: float) -> int:
        """After the commit: one task per claimed timer, holding it until it is due."""
        lease_valid_until = asked_at + self._settings.lease_seconds
        for timer, fire_at_monotonic in taken.scheduled:
            task = asyncio.create_task(
                self._fire(timer, taken.db_now, taken.received, fire_at_monotonic, lease_valid_until)
            )
            self._held[timer.id] = task
            size = held_bytes(timer)
            self._held_bytes += size - self._held_size.get(timer.id, 0)
            self._held_size[timer.id] = size
            task.add_done_callback(functools.partial(self._forget, timer.id))
        count = len(taken.scheduled) + taken.settled
        if count:
            metrics.CLAIMED.inc(count)
            metrics.HELD.set(len(self._held))
            metrics.HELD_BYTES.set(self._held_bytes)
            log_event(logger, "dispatcher.claimed", logging.DEBUG, count=count)
        return count

    async def _claim_probes(self, conn: AsyncConnection, claim: repository.Claim) -> None:
        """Take the probe of each destination whose breaker's cool-down is over (one transaction
        in the cluster gets each) and claim the one timer it sends, added to `claim`. A probe
        with no timer due is given back, with a new cool-down. Its lease bounds the probe: once
        it lapses, the probe may be taken again."""
        settings = self._settings
        probes = await destinations.take_probes(
            conn, cooldown_seconds=settings.breaker_cooldown_seconds, probe_seconds=settings.lease_seconds
        )
        for tenant, key in probes:
            probe = await repository.claim_probe(
                conn,
                owner=self.owner,
                tenant=tenant,
                destination=key,
                lookahead_seconds=settings.lookahead_seconds,
                lease_seconds=settings.lease_seconds,
            )
            if not probe.timers and not probe.unprocessable:
                await destinations.no_probe(conn, tenant=tenant, key=key)
                continue
            claim.timers.extend(probe.timers)
            claim.unprocessable.extend(probe.unprocessable)
            self._probes.update(t.id for t in probe.timers)
            log_event(
                logger,
                "destination.probe",
                tenant=tenant,
                destination=key,
                timer_ids=[t.id for t in probe.timers],
                instance=self.owner,
            )

    async def _advance_schedules(
        self, conn: AsyncConnection, claimed: list[ClaimedTimer], db_now: datetime, settled: list[Decision]
    ) -> list[ClaimedTimer]:
        """Move the series of the schedules' runs among `claimed` on, in the claim's transaction
        (schedules/engine.py); returns the timers still to fire. If the batch fails, each schedule
        is tried alone, so one that cannot be advanced fails only its own runs: they are unsent
        and retried after a backoff (verdict.not_advanced), and every other timer fires."""
        runs = [t for t in claimed if t.schedule_id is not None]
        try:
            done = await self._advance(conn, runs, db_now)
        except Exception as exc:  # noqa: BLE001 - one bad schedule must not stop every claim
            log_event(
                logger, "schedule.advance_batch_failed", logging.WARNING, count=len(runs), error=repr(exc)
            )
            done = set()
            per_schedule: dict[int | None, list[ClaimedTimer]] = {}
            for timer in runs:
                per_schedule.setdefault(timer.schedule_id, []).append(timer)
            for schedule_id, group in per_schedule.items():
                try:
                    done |= await self._advance(conn, group, db_now)
                except Exception as alone:  # noqa: BLE001 - this schedule fails only its own runs
                    log_event(
                        logger,
                        "schedule.advance_failed",
                        logging.ERROR,
                        schedule_id=schedule_id,
                        error=repr(alone),
                    )
                    done |= {t.id for t in group}
                    settled.extend(
                        verdict.not_advanced(
                            t, self._settings, reason=repr(alone), at=db_now, instance=self.owner
                        )
                        for t in group
                    )
        return [t for t in claimed if t.id not in done]

    async def _advance(self, conn: AsyncConnection, runs: list[ClaimedTimer], db_now: datetime) -> set[int]:
        """One savepoint's advance of `runs`; returns the runs it skipped or deferred (not to fire)."""
        async with conn.begin_nested():
            advanced = await schedule_engine.advance(
                conn,
                owner=self.owner,
                claimed=runs,
                now=db_now,
                notify_within=self._settings.lookahead_seconds,
            )
        return advanced.skipped | advanced.deferred

    async def _settle(self, conn: AsyncConnection, settled: list[Decision]) -> None:
        """Write the outcomes of claimed rows settled without a request (rows this instance cannot
        handle, runs whose schedule could not be advanced) in the claim's transaction; if even that
        fails, the claim still stands for the others (those rows' leases lapse)."""
        try:
            async with conn.begin_nested():
                await write_decisions(conn, owner=self.owner, decisions=settled)
        except Exception as exc:  # noqa: BLE001 - lease expiry takes over; it counts lapses
            log_event(logger, "dispatcher.settle_failed", logging.ERROR, count=len(settled), error=repr(exc))
            return
        for decision in settled:
            if decision.verdict is Verdict.RETRY:
                metrics.DELIVERIES.labels("retry").inc()
                log_event(logger, "timer.retry_scheduled", logging.WARNING, **decision.fields)
            else:
                metrics.DELIVERIES.labels("unprocessable").inc()
                log_event(logger, "timer.unprocessable", logging.ERROR, **decision.fields)

    def _forget(self, timer_id: int, task: asyncio.Task[None]) -> None:
        self._probes.discard(timer_id)
        if self._held.get(timer_id) is task:
            del self._held[timer_id]
            self._held_bytes -= self._held_size.pop(timer_id, 0)
            metrics.HELD.set(len(self._held))
            metrics.HELD_BYTES.set(self._held_bytes)
        if self._short_of_room:  # the claim loop waits for room: there is some again
            self._short_of_room = False
            self._wake.set()
            self._flow_wake.set()

    async def _heartbeat_loop(self) -> None:
        settings = self._settings
        while True:
            await asyncio.sleep(settings.lease_seconds / _HEARTBEATS_PER_LEASE)
            working = [*self._held, *self._writer.unwritten]
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
        fire_at_monotonic: float,
        claim_lease_until: float,
    ) -> None:
        decided = False
        try:
            decision = await self._attempt(
                timer, claimed_db_now, received, fire_at_monotonic, claim_lease_until
            )
            if decision is not None:
                decided = True
                self._writer.put(decision)
                if decision.breaker is not None:
                    self._count_locally(decision.breaker)
        except Exception as exc:  # noqa: BLE001 - a timer that crashes its firing fails only itself
            decided = True
            now = claimed_db_now + timedelta(seconds=time.monotonic() - received)
            crash = verdict.unprocessable(timer.id, timer.attempt, reason=f"firing crashed: {exc!r}", at=now)
            log_event(logger, "timer.fire_crashed", logging.ERROR, **crash.fields)
            self._writer.put(crash)
        finally:
            # Cancelled (shutdown) before its request started: return it. Once the request
            # started, the receiver may have it: the lease lapses instead.
            if not decided and timer.id not in self._sending:
                self._writer.put(verdict.returned(timer.id, timer.attempt))
            self._sending.discard(timer.id)

    async def _attempt(
        self,
        timer: ClaimedTimer,
        claimed_db_now: datetime,
        received: float,
        fire_at_monotonic: float,
        claim_lease_until: float,
    ) -> Decision | None:
        """Wait for the due time and the slots, then send; None returns the timer."""
        timeout = timer.retry.timeout_seconds or self._settings.request_timeout_seconds
        # Timers wake by the loop's millisecond, possibly lagging clock: check the real one and
        # sleep again until the due time has really come.
        while (delay := fire_at_monotonic - time.monotonic()) > 0:  # noqa: ASYNC110 - a deadline, not an event
            await asyncio.sleep(delay + _TIMER_SLACK_SECONDS)
        # A slot of the timer's host first, then one of the instance: a slow host fills its own
        # slots and waits there, without taking the slots other hosts' timers need; the
        # instance's slots go first to the host with the fewest requests in flight (SendSlots).
        async with (
            self._host_slots.slot(timer.url, timer.destination) as host,
            self._send_slots.slot(host),
        ):
            # The database's now, estimated from the claim: errs early by the round trip.
            db_now = claimed_db_now + timedelta(seconds=time.monotonic() - received)
            if timer.deliver_before is not None and db_now > timer.deliver_before:
                late_by = (db_now - timer.deliver_before).total_seconds()
                return verdict.expired(timer, late_by_seconds=late_by)  # nothing goes out
            if timer.id not in self._probes and (timer.tenant, timer.destination) in self._holding:
                return None  # its destination opened or was paused since the claim: returned unsent
            lease_until = max(claim_lease_until, self._leases_valid_until)
            if time.monotonic() + timeout > lease_until:
                # No heartbeat vouches for the lease until the request would end (database
                # unreachable, or this process stalled): return the timer rather than risk a
                # second instance sending it too.
                return None
            self._sending.add(timer.id)  # from here on, the timer is not returned
            late_ms = (time.monotonic() - fire_at_monotonic) * 1000
            webhook = WebhookRequest(
                url=timer.url,
                timer_id=timer.id,
                delivery_id=timer.delivery_id,
                attempt=timer.attempt,
                due_at=timer.due_at,
                request=timer.request,
                labels=timer.labels,
                timeout_seconds=timeout,
                signer=None if self._signers is None else self._signers.for_tenant(timer.tenant),
                schedule_id=timer.schedule_id,
                occurrence_at=timer.occurrence_at,
            )
            if self._tracing is None:
                result = await self._client.send(webhook)
            else:
                result = await self._tracing.send_webhook(self._client, webhook, parent=timer.traceparent)
        metrics.FIRING_LATENESS.observe(max(late_ms, 0.0) / 1000)
        metrics.DELIVERY_DURATION.observe(result.duration_ms / 1000)
        metrics.WEBHOOK_REQUESTS.labels(metrics.webhook_result(result.status_code, result.error_class)).inc()
        return verdict.decide(timer, result, self._settings, late_ms=late_ms, instance=self.owner)
