"""Persistence of timers: explicit SQL, one named function per state change.

The database's clock (`now()`) decides when a timer is due; every query that a caller needs to
compare against returns the database's `now()` as `db_now`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import RowMapping, text
from sqlalchemy.ext.asyncio import AsyncConnection

NOTIFY_CHANNEL = "task_scheduler_due"


@dataclass(frozen=True, slots=True)
class TimerRow:
    id: int
    url: str
    status: str
    due_at: datetime
    created_at: datetime
    attempts: int
    delivery_id: uuid.UUID
    last_error: str | None
    delivered_at: datetime | None
    db_now: datetime


@dataclass(frozen=True, slots=True)
class ClaimedTimer:
    id: int
    url: str
    due_at: datetime
    attempt: int
    delivery_id: uuid.UUID
    lease_expires_at: datetime
    db_now: datetime


_TIMER_COLUMNS = (
    "id, url, status, due_at, created_at, attempts, delivery_id, last_error, delivered_at"
)

_CREATE = text(f"""
WITH new AS (
    INSERT INTO timers (url, due_at)
    VALUES (:url, now() + make_interval(secs => CAST(:delay_seconds AS double precision)))
    RETURNING {_TIMER_COLUMNS}
)
SELECT new.*, now() AS db_now,
       CASE WHEN new.due_at <= now() + make_interval(secs => CAST(:notify_within AS double precision))
            THEN pg_notify('{NOTIFY_CHANNEL}', '') END AS notified
FROM new
""")


async def create_timer(
    conn: AsyncConnection, *, url: str, delay_seconds: int, notify_within: float
) -> TimerRow:
    """Insert a pending timer; wake the dispatchers (NOTIFY, sent on commit) if it is due soon."""
    row = (
        await conn.execute(
            _CREATE,
            {"url": url, "delay_seconds": float(delay_seconds), "notify_within": notify_within},
        )
    ).one()
    return _timer_row(row._mapping)


_GET = text(f"SELECT {_TIMER_COLUMNS}, now() AS db_now FROM timers WHERE id = :id")


async def get_timer(conn: AsyncConnection, *, timer_id: int) -> TimerRow | None:
    row = (await conn.execute(_GET, {"id": timer_id})).one_or_none()
    return None if row is None else _timer_row(row._mapping)


def _timer_row(m: RowMapping) -> TimerRow:
    return TimerRow(
        id=m["id"],
        url=m["url"],
        status=m["status"],
        due_at=m["due_at"],
        created_at=m["created_at"],
        attempts=m["attempts"],
        delivery_id=m["delivery_id"],
        last_error=m["last_error"],
        delivered_at=m["delivered_at"],
        db_now=m["db_now"],
    )


_CLAIM_DUE = text("""
UPDATE timers
SET status = 'firing',
    attempts = attempts + 1,
    lease_owner = :owner,
    lease_expires_at = greatest(due_at, now()) + make_interval(secs => CAST(:lease_seconds AS double precision)),
    updated_at = now()
WHERE id IN (
    SELECT id FROM timers
    WHERE status = 'pending'
      AND due_at <= now() + make_interval(secs => CAST(:lookahead_seconds AS double precision))
    ORDER BY due_at, id
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
)
RETURNING id, url, due_at, attempts, delivery_id, lease_expires_at, now() AS db_now
""")


async def claim_due(
    conn: AsyncConnection,
    *,
    owner: str,
    lookahead_seconds: float,
    lease_seconds: float,
    limit: int,
) -> list[ClaimedTimer]:
    """pending → firing for timers due within the lookahead, leased to `owner`, earliest first."""
    result = await conn.execute(
        _CLAIM_DUE,
        {
            "owner": owner,
            "lookahead_seconds": lookahead_seconds,
            "lease_seconds": lease_seconds,
            "limit": limit,
        },
    )
    claimed = [
        ClaimedTimer(
            id=r.id,
            url=r.url,
            due_at=r.due_at,
            attempt=r.attempts,
            delivery_id=r.delivery_id,
            lease_expires_at=r.lease_expires_at,
            db_now=r.db_now,
        )
        for r in result
    ]
    claimed.sort(key=lambda c: (c.due_at, c.id))
    return claimed


_FENCE = "id = :id AND status = 'firing' AND lease_owner = :owner AND attempts = :attempt"

_MARK_DELIVERED = text(f"""
UPDATE timers
SET status = 'delivered', delivered_at = now(), lease_owner = NULL, lease_expires_at = NULL,
    updated_at = now()
WHERE {_FENCE}
""")

_SCHEDULE_RETRY = text(f"""
UPDATE timers
SET status = 'pending',
    due_at = now() + make_interval(secs => CAST(:delay_seconds AS double precision)),
    last_error = :error, lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
WHERE {_FENCE}
""")

_MARK_FAILED = text(f"""
UPDATE timers
SET status = 'failed', last_error = :error, lease_owner = NULL, lease_expires_at = NULL,
    updated_at = now()
WHERE {_FENCE}
""")


async def mark_delivered(conn: AsyncConnection, *, timer_id: int, owner: str, attempt: int) -> bool:
    """firing → delivered; False when the lease was lost (another instance owns the timer now)."""
    result = await conn.execute(
        _MARK_DELIVERED, {"id": timer_id, "owner": owner, "attempt": attempt}
    )
    return result.rowcount == 1


async def schedule_retry(
    conn: AsyncConnection,
    *,
    timer_id: int,
    owner: str,
    attempt: int,
    delay_seconds: float,
    error: str,
) -> bool:
    """firing → pending with a later due time; False when the lease was lost."""
    result = await conn.execute(
        _SCHEDULE_RETRY,
        {
            "id": timer_id,
            "owner": owner,
            "attempt": attempt,
            "delay_seconds": delay_seconds,
            "error": error,
        },
    )
    return result.rowcount == 1


async def mark_failed(
    conn: AsyncConnection, *, timer_id: int, owner: str, attempt: int, error: str
) -> bool:
    """firing → failed; False when the lease was lost."""
    result = await conn.execute(
        _MARK_FAILED, {"id": timer_id, "owner": owner, "attempt": attempt, "error": error}
    )
    return result.rowcount == 1


_RELEASE_LEASES = text("""
UPDATE timers
SET status = 'pending', attempts = attempts - 1, lease_owner = NULL, lease_expires_at = NULL,
    updated_at = now()
WHERE id = ANY(:ids) AND status = 'firing' AND lease_owner = :owner
""")


async def release_leases(conn: AsyncConnection, *, timer_ids: list[int], owner: str) -> int:
    """firing → pending for claimed timers this instance will not send (shutdown); attempt undone."""
    if not timer_ids:
        return 0
    result = await conn.execute(_RELEASE_LEASES, {"ids": timer_ids, "owner": owner})
    return result.rowcount


_EXPIRE_LEASES = text("""
UPDATE timers
SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL, updated_at = now(),
    last_error = 'lease expired: the instance firing it stopped before finishing'
WHERE id IN (
    SELECT id FROM timers
    WHERE status = 'firing' AND lease_expires_at < now()
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
)
""")


async def expire_leases(conn: AsyncConnection, *, limit: int) -> int:
    """firing → pending for timers whose owner let the lease lapse (crashed); they fire again."""
    result = await conn.execute(_EXPIRE_LEASES, {"limit": limit})
    return result.rowcount
