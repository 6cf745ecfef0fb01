"""Read-only SQL behind the dashboard's overview, charts and destinations; every query is bounded.

- Timers by status, whole table (admins): below `COUNT_CAP` rows (by `pg_class.reltuples`, or a
  table never analysed) they are counted, reading at most `COUNT_CAP` rows. Above, they are
  `reltuples` times the status column's most-common-value frequencies in `pg_stats` (what ANALYZE
  / autovacuum last saw): no scan at all, the same cost at 10 M rows as at 10 k. A status too rare
  to be among the most common values gets an upper bound (the rows no common value covers), shown
  as "≤ N". Pending alone is also counted from its partial index up to `COUNT_CAP` (exact below
  the cap, "at least" above), since that is the number an operator watches.
- Timers by status, one tenant: counted over that tenant's newest `COUNT_CAP` timers by due time
  (an index range on ix_timers_tenant_due), shown as "of the latest N" when the cap is reached.
- Charts and destinations read `delivery_rollups` (attempts per minute, tenant, destination and
  outcome, which ui/rollups.py folds from the attempt log every few seconds) of the last hour
  and `delivery_rollups_hourly` of the last day: never the timers or attempt tables. Percentiles
  are estimated from the duration buckets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection

from task_scheduler.db import INT4_MAX
from task_scheduler.timers.models import TimerStatus

COUNT_CAP = 10_000


@dataclass(frozen=True, slots=True)
class StatusCounts:
    counts: dict[str, int]
    capped: bool  # a count reached COUNT_CAP: "at least"
    estimated: bool  # from the planner's statistics, not counted
    upper_bounds: frozenset[str] = frozenset()  # statuses whose number is only an upper bound


_TABLE_ESTIMATE = text("""
SELECT c.reltuples::bigint AS total, s.most_common_vals::text AS vals, s.most_common_freqs AS freqs
FROM pg_class c
LEFT JOIN pg_stats s ON s.schemaname = current_schema() AND s.tablename = 'timers'
                    AND s.attname = 'status'
WHERE c.oid = to_regclass('timers')
""")
_PENDING_CAPPED = text("""
SELECT count(*) FROM (SELECT 1 FROM timers WHERE status = 'pending' LIMIT :cap) AS capped
""")
_FIRST_ROWS = text("""
SELECT status, count(*) AS n FROM (SELECT status FROM timers LIMIT :cap) AS first_rows GROUP BY status
""")
_TENANT_LATEST = text("""
SELECT status, count(*) AS n FROM (
    SELECT status FROM timers WHERE tenant = :tenant ORDER BY due_at DESC, id DESC LIMIT :cap
) AS latest GROUP BY status
""")


async def _counted(conn: AsyncConnection, statement: TextClause, params: dict[str, object]) -> StatusCounts:
    rows = (await conn.execute(statement, {**params, "cap": COUNT_CAP})).all()
    counts = {s.value: 0 for s in TimerStatus} | {r.status: int(r.n) for r in rows}
    return StatusCounts(counts=counts, capped=sum(counts.values()) >= COUNT_CAP, estimated=False)


async def status_counts(conn: AsyncConnection, *, tenant: str | None) -> StatusCounts:
    if tenant is not None:
        return await _counted(conn, _TENANT_LATEST, {"tenant": tenant})
    row = (await conn.execute(_TABLE_ESTIMATE)).one_or_none()
    if row is None or row.total < COUNT_CAP or row.vals is None or row.freqs is None:
        return await _counted(conn, _FIRST_ROWS, {})
    total = int(row.total)
    common = dict(zip(row.vals.strip("{}").split(","), (float(f) for f in row.freqs), strict=False))
    rest = round(total * max(0.0, 1.0 - sum(common.values())))
    counts = {s.value: round(total * common[s.value]) if s.value in common else rest for s in TimerStatus}
    pending = int((await conn.execute(_PENDING_CAPPED, {"cap": COUNT_CAP})).scalar_one())
    capped = pending >= COUNT_CAP
    counts["pending"] = max(counts["pending"], pending) if capped else pending
    bounds = frozenset(s.value for s in TimerStatus if s.value not in common and s.value != "pending")
    return StatusCounts(counts=counts, capped=capped, estimated=True, upper_bounds=bounds)


DURATION_EDGES_MS = (10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0)
BUCKETS = len(DURATION_EDGES_MS) + 1
INT_MAX = INT4_MAX  # the rollups' integer columns


def bucket_counts(stored: Sequence[int | None] | None) -> list[int]:
    """A rollup's bucket array as read back, made exactly `BUCKETS` counts from 0 to INT_MAX.
    The fold writes it so, but a row written past the service (an operator's SQL, a restore) may
    hold NULLs, negative counts or any length: one such row once made every read of its
    destination's health answer 500 and the fold fail for good on its hour."""
    values = list(stored or ())[:BUCKETS]
    return [min(INT_MAX, max(0, n or 0)) for n in values] + [0] * (BUCKETS - len(values))


@dataclass(frozen=True, slots=True)
class HostStats:
    authority: str  # host[:port] of the webhook URL, without any user:password@
    attempts: int
    succeeded: int
    p50_ms: float  # estimated from the duration buckets (see `bucket_quantile`)
    p99_ms: float
    last_ok: bool  # its latest minute with attempts had a success
    last_error: str | None  # the error class of its latest failed attempts


@dataclass(frozen=True, slots=True)
class AttemptRollup:
    """Recent attempts as the rollups hold them: small whatever the traffic.
    Bucket i of a histogram holds values from DURATION_EDGES_MS[i-1] up to DURATION_EDGES_MS[i]
    (bucket 0: below the first edge, the last: the last edge and above)."""

    per_minute: dict[datetime, tuple[int, int]]  # minute: (succeeded, failed), last hour
    per_hour: dict[datetime, tuple[int, int]]  # hour: (succeeded, failed), last day
    durations: dict[int, tuple[int, int]]  # last hour
    lateness: dict[int, tuple[int, int]]  # first attempts only: started_at - due_at, last hour
    lateness_day: dict[int, tuple[int, int]]  # the same, last day
    hosts: list[HostStats]  # last hour


def bucket_quantile(counts: list[int], q: float) -> float:
    """The q-quantile of values counted in DURATION_EDGES_MS buckets, linear within its bucket
    (from 0 in the first); in the open last bucket, that bucket's lower edge."""
    total = sum(counts)
    if not total:
        return 0.0
    rank = q * total
    seen = 0
    for index, n in enumerate(counts):
        if n and seen + n >= rank:
            if index >= len(DURATION_EDGES_MS):
                return DURATION_EDGES_MS[-1]
            low = DURATION_EDGES_MS[index - 1] if index else 0.0
            return low + (DURATION_EDGES_MS[index] - low) * (rank - seen) / n
        seen += n
    return DURATION_EDGES_MS[-1]


# The last hour's minutes and the last day's hours (of one tenant, or all).
_MINUTES = """
minutes AS MATERIALIZED (
    SELECT minute, destination, outcome, outcome = 'ok' AS ok, greatest(deliveries, 0) AS deliveries,
           duration_buckets, lateness_buckets
    FROM delivery_rollups
    WHERE minute >= date_trunc('minute', now()) - interval '59 minutes' AND minute <= now()
      AND (CAST(:tenant AS text) IS NULL OR tenant = :tenant)
)"""
_HOURS = """
hours AS MATERIALIZED (
    SELECT hour, outcome = 'ok' AS ok, greatest(deliveries, 0) AS deliveries, lateness_buckets
    FROM delivery_rollups_hourly
    WHERE hour >= date_trunc('hour', now(), 'UTC') - interval '23 hours' AND hour <= now()
      AND (CAST(:tenant AS text) IS NULL OR tenant = :tenant)
)"""
_CHARTS = text(f"""
WITH {_MINUTES}, {_HOURS}
SELECT 'minute' AS kind, minute AS at, CAST(NULL AS bigint) AS bucket, ok, sum(deliveries) AS n
FROM minutes GROUP BY minute, ok
UNION ALL
SELECT 'hour', hour, NULL, ok, sum(deliveries) FROM hours GROUP BY hour, ok
UNION ALL
SELECT 'duration', NULL, u.i - 1, ok, sum(greatest(u.n, 0))
FROM minutes, unnest(duration_buckets) WITH ORDINALITY AS u(n, i) WHERE u.i <= {BUCKETS} GROUP BY u.i, ok
UNION ALL
SELECT 'lateness', NULL, u.i - 1, ok, sum(greatest(u.n, 0))
FROM minutes, unnest(lateness_buckets) WITH ORDINALITY AS u(n, i) WHERE u.i <= {BUCKETS} GROUP BY u.i, ok
UNION ALL
SELECT 'lateness_day', NULL, u.i - 1, ok, sum(greatest(u.n, 0))
FROM hours, unnest(lateness_buckets) WITH ORDINALITY AS u(n, i) WHERE u.i <= {BUCKETS} GROUP BY u.i, ok
""")
_HOSTS = text(f"""
WITH {_MINUTES}, hosts AS (
    SELECT destination, sum(deliveries) AS attempts,
           coalesce(sum(deliveries) FILTER (WHERE ok), 0) AS succeeded,
           max(minute) FILTER (WHERE ok) = max(minute) AS last_ok,
           (array_agg(outcome ORDER BY minute DESC, outcome) FILTER (WHERE NOT ok))[1] AS last_error
    FROM minutes GROUP BY destination
), durations AS (
    SELECT destination, u.i, sum(greatest(u.n, 0)) AS n
    FROM minutes, unnest(duration_buckets) WITH ORDINALITY AS u(n, i) WHERE u.i <= {BUCKETS} GROUP BY destination, u.i
)
SELECT h.*, (SELECT array_agg(d.n ORDER BY d.i) FROM durations d WHERE d.destination = h.destination)
       AS buckets
FROM hosts h
""")


def _add(table: dict[Any, tuple[int, int]], key: Any, ok: bool, n: int) -> None:
    succeeded, failed = table.get(key, (0, 0))
    table[key] = (succeeded + n, failed) if ok else (succeeded, failed + n)


async def attempt_rollup(conn: AsyncConnection, *, tenant: str | None) -> AttemptRollup:
    """What the charts and the destinations page show, from the rollups (ui/rollups.py)."""
    params = {"tenant": tenant}
    totals: dict[str, dict[datetime, tuple[int, int]]] = {"minute": {}, "hour": {}}
    histograms: dict[str, dict[int, tuple[int, int]]] = {"duration": {}, "lateness": {}, "lateness_day": {}}
    for r in await conn.execute(_CHARTS, params):
        if r.kind in totals:
            _add(totals[r.kind], r.at.astimezone(UTC), r.ok, int(r.n))
        elif r.n:
            _add(histograms[r.kind], int(r.bucket), r.ok, int(r.n))
    hosts = [
        HostStats(
            authority=r.destination or "?",
            attempts=int(r.attempts),
            succeeded=int(r.succeeded),
            p50_ms=bucket_quantile(bucket_counts(r.buckets), 0.5),
            p99_ms=bucket_quantile(bucket_counts(r.buckets), 0.99),
            last_ok=bool(r.last_ok),
            last_error=r.last_error,
        )
        for r in await conn.execute(_HOSTS, params)
    ]
    return AttemptRollup(
        per_minute=totals["minute"],
        per_hour=totals["hour"],
        durations=histograms["duration"],
        lateness=histograms["lateness"],
        lateness_day=histograms["lateness_day"],
        hosts=hosts,
    )
