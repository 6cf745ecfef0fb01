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
from datetime import datetime

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection

from task_scheduler.timers.models import TimerStatus

COUNT_CAP = 10_000
RECENT_TIMERS = 200_000
ATTEMPT_ROWS = 50_000


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


@dataclass(frozen=True, slots=True)
class RecentAttempt:
    started_at: datetime
    duration_ms: float
    ok: bool
    lateness_ms: float | None  # first attempts only: started_at - due_at
    host: str
    error_class: str | None


_RECENT_ATTEMPTS = text("""
SELECT a.started_at, a.duration_ms, a.error_class IS NULL AS ok, a.error_class,
       CASE WHEN a.attempt = 1 AND t.attempts = 1
            THEN extract(epoch FROM a.started_at - t.due_at) * 1000 END AS lateness_ms,
       lower(coalesce(substring(t.url FROM '^[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/?#]*@)?(\\[[^]]*\\]|[^:/?#]*)'), ''))
           AS host
FROM timer_attempts a JOIN timers t ON t.id = a.timer_id
WHERE a.timer_id > (SELECT coalesce(max(id), 0) FROM timers) - :recent
  AND a.started_at > now() - interval '1 hour'
  AND (CAST(:tenant AS text) IS NULL OR t.tenant = :tenant)
ORDER BY a.timer_id DESC
LIMIT :rows
""")


async def recent_attempts(conn: AsyncConnection, *, tenant: str | None) -> list[RecentAttempt]:
    """The attempts behind the charts and the destinations page (bounded: see the module)."""
    result = await conn.execute(
        _RECENT_ATTEMPTS, {"tenant": tenant, "recent": RECENT_TIMERS, "rows": ATTEMPT_ROWS}
    )
    return [
        RecentAttempt(
            started_at=r.started_at,
            duration_ms=float(r.duration_ms),
            ok=bool(r.ok),
            lateness_ms=None if r.lateness_ms is None else float(r.lateness_ms),
            host=r.host or "?",
            error_class=r.error_class,
        )
        for r in result
    ]
