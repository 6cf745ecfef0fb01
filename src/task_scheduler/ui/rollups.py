"""The dashboard's rollups: attempts folded into `delivery_rollups` per minute, tenant,
destination host and outcome (and `delivery_rollups_hourly`, their sums per hour, for the last
day's charts), so that the charts and the destinations page read small rows instead of the
timers and attempt tables.

Every instance runs the fold every `interval` seconds (supervised); a transaction-scoped advisory
lock lets one of them do it at a time, the others skip that turn.

Why the fold is safe against late commits: an attempt's `recorded_at` is `now()` of the outcome
writer's transaction, i.e. when that transaction began, but the row becomes visible only at its
commit. Each run recomputes whole minutes from the watermark up to the current one from the
attempt log (INSERT ... ON CONFLICT DO UPDATE SET every column to its recomputed value, and a
DELETE of the keys no attempt holds any more: idempotent, a run repeated changes nothing), then
moves the watermark only to `now() - SETTLE`. So an attempt whose transaction took less than
`SETTLE` from begin to commit is always in a recomputed minute when it becomes visible; the
minutes before the watermark are final and never read again. The hours those minutes fall in
are recomputed from their minutes in the same transaction. After a pause (every instance
down) the fold catches up from the watermark in `CATCH_UP` chunks, each its own transaction.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from task_scheduler import metrics
from task_scheduler.logs import log_event
from task_scheduler.supervision import Supervisor
from task_scheduler.timers.repository import url_authority_sql
from task_scheduler.ui.repository import BUCKETS, DURATION_EDGES_MS, INT_MAX, bucket_counts

logger = logging.getLogger(__name__)

ROLLUP_LOCK_KEY = 7_262_011_291  # pg_try_advisory_xact_lock: one folding instance at a time
WATERMARK = "delivery_rollups"
SETTLE = timedelta(minutes=2)
CATCH_UP = timedelta(hours=1)
MAX_CHUNKS_PER_RUN = 24
RETENTION = timedelta(days=8)


# Read-only (so PostgreSQL may run it in parallel), grouped down to a few rows per rollup: one
# per duration and lateness bucket seen. Python adds them up into the rollups' arrays. Rows
# written past the service (any value the columns admit) must not fail the whole fold, on every
# turn, for every tenant: lateness is a difference of epochs, not of timestamps (an infinite
# `started_at` is an infinite lateness, not "cannot subtract infinite timestamps"), and durations
# add up as numeric (float8 addition raises "value out of range: overflow" past 1.8e308).
_RECORDED = text(f"""
SELECT t.tenant, date_trunc('minute', a.recorded_at) AS minute,
       {url_authority_sql("t.url")} AS destination, coalesce(a.error_class, 'ok') AS outcome,
       width_bucket(a.duration_ms, CAST(:edges AS double precision[])) AS duration_bucket,
       width_bucket(CASE WHEN a.attempt = 1 AND t.attempts = 1
                         THEN greatest(0, (extract(epoch FROM a.started_at)
                                           - extract(epoch FROM t.due_at)) * 1000) END,
                    CAST(:edges AS double precision[])) AS lateness_bucket,
       count(*) AS n, sum(CAST(a.duration_ms AS numeric)) AS duration_ms_sum
FROM timer_attempts a JOIN timers t ON t.id = a.timer_id
WHERE a.recorded_at >= :lo AND a.recorded_at < :hi
GROUP BY 1, 2, 3, 4, 5, 6
""")


def _write_statement(table: str, period: str) -> TextClause:
    """The recomputed rollups of [lo, hi) written over the stored ones: changed rows updated, keys
    no attempt holds any more deleted (the two touch disjoint keys). Bucket arrays come flat."""
    return text(f"""
WITH folded AS (
    SELECT f.tenant, f.at, f.destination, f.outcome, f.deliveries, f.duration_ms_sum,
           (CAST(:duration_buckets AS integer[]))[(f.i - 1) * {BUCKETS} + 1 : f.i * {BUCKETS}]
               AS duration_buckets,
           (CAST(:lateness_buckets AS integer[]))[(f.i - 1) * {BUCKETS} + 1 : f.i * {BUCKETS}]
               AS lateness_buckets
    FROM unnest(CAST(:tenants AS text[]), CAST(:ats AS timestamptz[]),
                CAST(:destinations AS text[]), CAST(:outcomes AS text[]),
                CAST(:deliveries AS integer[]), CAST(:sums AS double precision[]))
         WITH ORDINALITY AS f(tenant, at, destination, outcome, deliveries, duration_ms_sum, i)
), written AS (
    INSERT INTO {table} AS r (tenant, {period}, destination, outcome, deliveries,
                              duration_ms_sum, duration_buckets, lateness_buckets)
    SELECT tenant, at, destination, outcome, deliveries, duration_ms_sum, duration_buckets,
           lateness_buckets
    FROM folded
    ON CONFLICT (tenant, {period}, destination, outcome) DO UPDATE
    SET deliveries = excluded.deliveries, duration_ms_sum = excluded.duration_ms_sum,
        duration_buckets = excluded.duration_buckets, lateness_buckets = excluded.lateness_buckets
    WHERE (r.deliveries, r.duration_buckets, r.lateness_buckets)
          IS DISTINCT FROM (excluded.deliveries, excluded.duration_buckets, excluded.lateness_buckets)
    RETURNING 1
), dropped AS (
    DELETE FROM {table} r
    WHERE r.{period} >= :lo AND r.{period} < :hi
      AND NOT EXISTS (SELECT 1 FROM folded f
                      WHERE (f.tenant, f.at, f.destination, f.outcome)
                          = (r.tenant, r.{period}, r.destination, r.outcome))
    RETURNING 1
)
SELECT (SELECT count(*) FROM written) AS written, (SELECT count(*) FROM dropped) AS dropped
""")


_WRITE_MINUTES = _write_statement("delivery_rollups", "minute")
_WRITE_HOURS = _write_statement("delivery_rollups_hourly", "hour")
# The hours are sums of their minutes, recomputed whole whenever one of their minutes is.
_MINUTES = text("""
SELECT tenant, minute, destination, outcome, deliveries, duration_ms_sum, duration_buckets,
       lateness_buckets
FROM delivery_rollups WHERE minute >= :lo AND minute < :hi
""")
# A few minutes of attempts, grouped in memory rather than by an external sort; JIT compiling
# took 85 of 700 ms of a fold of 190,000 attempts and saves nothing on so few rows per run.
_FOLD_SETTINGS = text("SELECT set_config('work_mem', '64MB', true), set_config('jit', 'off', true)")
_TRY_LOCK = text("SELECT pg_try_advisory_xact_lock(:key)")
# The watermark as stored, kept between RETENTION ago and the current minute: one written past
# the service (infinite, BC, in the future) once stopped the fold for good (an overflow, or
# nothing ever to fold); minutes older than RETENTION are dropped anyway.
_WATERMARK = text("""
SELECT greatest(least(folded_before, date_trunc('minute', now())),
                date_trunc('minute', now() - CAST(:keep AS interval))) AS folded_before,
       date_trunc('minute', now()) AS this_minute,
       date_trunc('minute', now() - CAST(:settle AS interval)) AS settled
FROM rollup_watermarks WHERE name = :name FOR UPDATE
""")
_FIRST_WATERMARK = text("""
INSERT INTO rollup_watermarks (name, folded_before) VALUES (:name, date_trunc('minute', now()))
ON CONFLICT (name) DO NOTHING
""")
_MOVE_WATERMARK = text("UPDATE rollup_watermarks SET folded_before = :to WHERE name = :name")
_DROP_OLD = text("""
WITH minutes AS (DELETE FROM delivery_rollups WHERE minute < now() - CAST(:keep AS interval))
DELETE FROM delivery_rollups_hourly WHERE hour < now() - CAST(:keep AS interval)
""")


@dataclass(slots=True)
class _Rollup:
    deliveries: int = 0
    duration_ms_sum: float = 0.0
    durations: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    lateness: list[int] = field(default_factory=lambda: [0] * BUCKETS)

    def add(self, n: int, duration_ms_sum: float, duration_bucket: int, lateness_bucket: int | None) -> None:
        self.deliveries += n
        self.duration_ms_sum += duration_ms_sum
        self.durations[duration_bucket] += n
        if lateness_bucket is not None:
            self.lateness[lateness_bucket] += n

    def merge(
        self,
        deliveries: int,
        duration_ms_sum: float,
        durations: list[int | None] | None,
        lateness: list[int | None] | None,
    ) -> None:
        """A minute row read back into its hour. The fold wrote it, but a row written past the
        service may hold anything its columns admit (one whose buckets were shorter once failed
        the fold for good): counts are taken as bucket_counts() reads them and stay integers."""
        self.deliveries = min(INT_MAX, self.deliveries + max(0, deliveries))
        self.duration_ms_sum += duration_ms_sum
        self.durations = [
            min(INT_MAX, a + b) for a, b in zip(self.durations, bucket_counts(durations), strict=True)
        ]
        self.lateness = [
            min(INT_MAX, a + b) for a, b in zip(self.lateness, bucket_counts(lateness), strict=True)
        ]


Key = tuple[str, datetime, str, str]  # tenant, minute or hour, destination, outcome


async def _write(
    conn: AsyncConnection, statement: TextClause, lo: datetime, hi: datetime, rollups: dict[Key, _Rollup]
) -> tuple[int, int]:
    """(written, dropped): `rollups` are every rollup of [lo, hi)."""
    keys, values = list(rollups), list(rollups.values())
    counts = (
        await conn.execute(
            statement,
            {
                "lo": lo,
                "hi": hi,
                "tenants": [k[0] for k in keys],
                "ats": [k[1] for k in keys],
                "destinations": [k[2] for k in keys],
                "outcomes": [k[3] for k in keys],
                "deliveries": [v.deliveries for v in values],
                "sums": [v.duration_ms_sum for v in values],
                "duration_buckets": [n for v in values for n in v.durations],
                "lateness_buckets": [n for v in values for n in v.lateness],
            },
        )
    ).one()
    return int(counts.written), int(counts.dropped)


def _hour(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


@dataclass(frozen=True, slots=True)
class Fold:
    """One chunk: the minutes [start, end) recomputed, and the watermark after it."""

    start: datetime
    end: datetime
    watermark: datetime
    rollups: int  # minute rows the chunk's minutes hold now
    written: int  # of which inserted or changed
    dropped: int  # rows of those minutes no attempt holds any more
    caught_up: bool  # the chunk reached the current minute
    hours_written: int = 0  # hourly rollups inserted or changed (the hours of those minutes)


async def fold_chunk(conn: AsyncConnection) -> Fold | None:
    """Recompute the minutes from the watermark (at most `CATCH_UP` of them) up to the current
    one and move the watermark; None when another instance holds the lock. The caller commits."""
    if not (await conn.execute(_TRY_LOCK, {"key": ROLLUP_LOCK_KEY})).scalar_one():
        return None
    await conn.execute(_FOLD_SETTINGS)
    at = {"settle": SETTLE, "keep": RETENTION, "name": WATERMARK}
    state = (await conn.execute(_WATERMARK, at)).one_or_none()
    if state is None:  # a database migrated, then emptied by hand: start again from now
        await conn.execute(_FIRST_WATERMARK, {"name": WATERMARK})
        state = (await conn.execute(_WATERMARK, at)).one()
    start: datetime = state.folded_before
    end_now: datetime = state.this_minute + timedelta(minutes=1)  # the current minute, so far
    end = min(end_now, start + CATCH_UP)
    minutes: dict[Key, _Rollup] = {}
    recorded = {"lo": start, "hi": end, "edges": list(DURATION_EDGES_MS)}
    for r in await conn.execute(_RECORDED, recorded):
        rollup = minutes.setdefault((r.tenant, r.minute, r.destination, r.outcome), _Rollup())
        rollup.add(int(r.n), float(r.duration_ms_sum), r.duration_bucket, r.lateness_bucket)
    written, dropped = await _write(conn, _WRITE_MINUTES, start, end, minutes)
    first_hour, end_hour = _hour(start), _hour(end - timedelta(minutes=1)) + timedelta(hours=1)
    hours: dict[Key, _Rollup] = {}
    for r in await conn.execute(_MINUTES, {"lo": first_hour, "hi": end_hour}):
        hour = hours.setdefault((r.tenant, _hour(r.minute), r.destination, r.outcome), _Rollup())
        hour.merge(r.deliveries, r.duration_ms_sum, r.duration_buckets, r.lateness_buckets)
    hours_written, _ = await _write(conn, _WRITE_HOURS, first_hour, end_hour, hours)
    watermark = max(start, min(end, state.settled))
    await conn.execute(_MOVE_WATERMARK, {"to": watermark, "name": WATERMARK})
    return Fold(
        start=start,
        end=end,
        watermark=watermark,
        rollups=len(minutes),
        written=written,
        dropped=dropped,
        hours_written=hours_written,
        caught_up=end >= end_now,
    )


async def fold(engine: AsyncEngine) -> list[Fold]:
    """One turn: chunks until the fold reaches the current minute (at most
    `MAX_CHUNKS_PER_RUN`), each in its own transaction, then the rollups older than `RETENTION`
    are dropped. Empty when another instance is folding."""
    folds: list[Fold] = []
    for _ in range(MAX_CHUNKS_PER_RUN):
        async with engine.begin() as conn:
            chunk = await fold_chunk(conn)
        if chunk is None:
            return folds
        folds.append(chunk)
        if chunk.caught_up:
            break
    async with engine.begin() as conn:
        if (await conn.execute(_TRY_LOCK, {"key": ROLLUP_LOCK_KEY})).scalar_one():
            await conn.execute(_DROP_OLD, {"keep": RETENTION})
    return folds


class RollupFolder:
    """The supervised loop `rollups`: `fold` every `interval` seconds."""

    def __init__(self, *, engine: AsyncEngine, supervisor: Supervisor, interval: float = 10.0) -> None:
        self._engine = engine
        self._supervisor = supervisor
        self._interval = interval
        self._failing_since: float | None = None  # monotonic time of the first failed turn in a row
        self._last_error = ""

    def degraded(self, after_seconds: float) -> list[str]:
        """For /readyz, which stays 200 for it (delivery does not depend on the fold): the fold
        failing on every turn for longer than `after_seconds`. It once failed for good on one
        hostile attempt row, and nothing but a log line said so."""
        if self._failing_since is None:
            return []
        failing = time.monotonic() - self._failing_since
        if failing <= after_seconds:
            return []
        return [
            f"rollups: every fold has failed for {failing:.0f}s (last: {self._last_error}); the "
            "dashboard's charts and the destinations' health are not current"
        ]

    async def start(self) -> None:
        self._supervisor.start("rollups", self._loop)

    async def stop(self) -> None:
        await self._supervisor.stop("rollups")

    async def _loop(self) -> None:
        while True:
            try:
                folds = await fold(self._engine)
                if any(f.written or f.dropped for f in folds):
                    log_event(
                        logger,
                        "rollups.folded",
                        logging.DEBUG,
                        since=folds[0].start.isoformat(),
                        watermark=folds[-1].watermark.isoformat(),
                        written=sum(f.written for f in folds),
                        dropped=sum(f.dropped for f in folds),
                    )
                self._failing_since = None
            except Exception as exc:  # noqa: BLE001 - retried at the next turn
                metrics.ROLLUP_FAILURES.inc()
                if self._failing_since is None:
                    self._failing_since = time.monotonic()
                self._last_error = repr(exc)[:300]
                log_event(logger, "rollups.failed", logging.WARNING, error=repr(exc))
            await asyncio.sleep(self._interval)
