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
- Charts and destinations read `timer_attempts` of the newest `RECENT_TIMERS` timers by id (a
  primary-key range, not a scan of the attempt log), started in the last hour, at most
  `ATTEMPT_ROWS` rows: an attempt of a much older timer (a long retry chain) is left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection

from task_scheduler.timers.models import TimerStatus
from task_scheduler.timers.repository import url_authority_sql

COUNT_CAP = 10_000
RECENT_TIMERS = 200_000
ATTEMPT_ROWS = 20_000


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


@dataclass(frozen=True, slots=True)
class HostStats:
    authority: str  # host[:port] of the webhook URL, without any user:password@
    attempts: int
    succeeded: int
    p50_ms: float
    p99_ms: float
    last_ok: bool
    last_error: str | None


@dataclass(frozen=True, slots=True)
class AttemptRollup:
    """Recent attempts, already aggregated by the database: small whatever the traffic.
    Bucket i of a histogram holds values from DURATION_EDGES_MS[i-1] up to DURATION_EDGES_MS[i]
    (bucket 0: below the first edge, the last: the last edge and above)."""

    per_minute: dict[datetime, tuple[int, int]]  # minute: (succeeded, failed)
    durations: dict[int, tuple[int, int]]
    lateness: dict[int, tuple[int, int]]  # first attempts only: started_at - due_at
    hosts: list[HostStats]


_ATTEMPT_ROLLUP = text(f"""
WITH recent AS MATERIALIZED (
    SELECT a.started_at, a.duration_ms, a.error_class, a.error_class IS NULL AS ok,
           CASE WHEN a.attempt = 1 AND t.attempts = 1
                THEN greatest(0, extract(epoch FROM a.started_at - t.due_at) * 1000) END AS lateness_ms,
           {url_authority_sql("t.url")} AS authority
    FROM timer_attempts a JOIN timers t ON t.id = a.timer_id
    WHERE a.timer_id > (SELECT coalesce(max(id), 0) FROM timers) - :recent
      AND a.started_at > now() - interval '1 hour'
      AND (CAST(:tenant AS text) IS NULL OR t.tenant = :tenant)
    ORDER BY a.timer_id DESC
    LIMIT :rows
), bucketed AS (
    SELECT date_trunc('minute', started_at) AS minute,
           width_bucket(duration_ms, CAST(:edges AS double precision[])) AS duration_bucket,
           width_bucket(lateness_ms, CAST(:edges AS double precision[])) AS lateness_bucket, ok
    FROM recent
)
SELECT CASE WHEN GROUPING(minute) = 0 THEN 'minute'
            WHEN GROUPING(duration_bucket) = 0 THEN 'duration' ELSE 'lateness' END AS kind,
       extract(epoch FROM minute) AS minute, coalesce(duration_bucket, lateness_bucket) AS bucket, ok,
       count(*) AS n, NULL AS authority, NULL AS succeeded, NULL AS p50, NULL AS p99,
       NULL AS last_ok, NULL AS last_error
FROM bucketed
GROUP BY GROUPING SETS ((minute, ok), (duration_bucket, ok), (lateness_bucket, ok))
HAVING GROUPING(lateness_bucket) = 1 OR lateness_bucket IS NOT NULL
UNION ALL
SELECT 'host', NULL, NULL, NULL, count(*), authority,
       count(*) FILTER (WHERE ok),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms),
       percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ms),
       (array_agg(ok ORDER BY started_at DESC))[1], (array_agg(error_class ORDER BY started_at DESC))[1]
FROM recent
GROUP BY authority
""")


async def attempt_rollup(conn: AsyncConnection, *, tenant: str | None) -> AttemptRollup:
    """What the charts and the destinations page show (bounded: see the module)."""
    result = await conn.execute(
        _ATTEMPT_ROLLUP,
        {"tenant": tenant, "recent": RECENT_TIMERS, "rows": ATTEMPT_ROWS, "edges": list(DURATION_EDGES_MS)},
    )
    per_minute: dict[datetime, tuple[int, int]] = {}
    histograms: dict[str, dict[int, tuple[int, int]]] = {"duration": {}, "lateness": {}}
    hosts: list[HostStats] = []
    for r in result:
        if r.kind == "host":
            hosts.append(
                HostStats(
                    authority=r.authority or "?",
                    attempts=int(r.n),
                    succeeded=int(r.succeeded),
                    p50_ms=float(r.p50),
                    p99_ms=float(r.p99),
                    last_ok=bool(r.last_ok),
                    last_error=r.last_error,
                )
            )
            continue
        if r.kind == "minute":
            key: datetime | int = datetime.fromtimestamp(float(r.minute), UTC)
            table: dict[Any, tuple[int, int]] = per_minute
        else:
            key, table = int(r.bucket), histograms[r.kind]
        ok, failed = table.get(key, (0, 0))
        table[key] = (ok + int(r.n), failed) if r.ok else (ok, failed + int(r.n))
    return AttemptRollup(per_minute, histograms["duration"], histograms["lateness"], hosts)
