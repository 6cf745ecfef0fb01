"""Persistence of timers: explicit SQL, one named function per state change.

The database's clock (`now()`) decides when a timer is due; every query that a caller needs to
compare against returns the database's `now()` as `db_now`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
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


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one attempt, to be recorded under the lease it was made with."""

    timer_id: int
    attempt: int
    error: str | None = None
    retry_in_seconds: float = 0.0


# Every finishing update is fenced: only the lease owner, for the attempt it claimed, while firing.
_FENCE = "t.id = o.id AND t.status = 'firing' AND t.lease_owner = :owner AND t.attempts = o.attempt"

_MARK_DELIVERED = text(f"""
UPDATE timers AS t
SET status = 'delivered', delivered_at = now(), lease_owner = NULL, lease_expires_at = NULL,
    updated_at = now()
FROM unnest(CAST(:ids AS bigint[]), CAST(:attempts AS integer[])) AS o(id, attempt)
WHERE {_FENCE}
RETURNING t.id
""")

_SCHEDULE_RETRY = text(f"""
UPDATE timers AS t
SET status = 'pending', due_at = now() + make_interval(secs => o.delay), last_error = o.error,
    lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
FROM unnest(CAST(:ids AS bigint[]), CAST(:attempts AS integer[]),
            CAST(:delays AS double precision[]), CAST(:errors AS text[])) AS o(id, attempt, delay, error)
WHERE {_FENCE}
RETURNING t.id
""")

_MARK_FAILED = text(f"""
UPDATE timers AS t
SET status = 'failed', last_error = o.error, lease_owner = NULL, lease_expires_at = NULL,
    updated_at = now()
FROM unnest(CAST(:ids AS bigint[]), CAST(:attempts AS integer[]), CAST(:errors AS text[]))
    AS o(id, attempt, error)
WHERE {_FENCE}
RETURNING t.id
""")


async def mark_delivered(
    conn: AsyncConnection, *, owner: str, outcomes: Sequence[Outcome]
) -> set[int]:
    """firing → delivered, for many timers in one statement; returns the ids whose lease held."""
    result = await conn.execute(
        _MARK_DELIVERED,
        {
            "owner": owner,
            "ids": [o.timer_id for o in outcomes],
            "attempts": [o.attempt for o in outcomes],
        },
    )
    return {row.id for row in result}


async def schedule_retry(
    conn: AsyncConnection, *, owner: str, outcomes: Sequence[Outcome]
) -> set[int]:
    """firing → pending, due again `retry_in_seconds` from now; returns the ids whose lease held."""
    result = await conn.execute(
        _SCHEDULE_RETRY,
        {
            "owner": owner,
            "ids": [o.timer_id for o in outcomes],
            "attempts": [o.attempt for o in outcomes],
            "delays": [o.retry_in_seconds for o in outcomes],
            "errors": [o.error for o in outcomes],
        },
    )
    return {row.id for row in result}


async def mark_failed(
    conn: AsyncConnection, *, owner: str, outcomes: Sequence[Outcome]
) -> set[int]:
    """firing → failed (attempts used up, or not retryable); returns the ids whose lease held."""
    result = await conn.execute(
        _MARK_FAILED,
        {
            "owner": owner,
            "ids": [o.timer_id for o in outcomes],
            "attempts": [o.attempt for o in outcomes],
            "errors": [o.error for o in outcomes],
        },
    )
    return {row.id for row in result}


_RELEASE_LEASES = text(f"""
UPDATE timers AS t
SET status = 'pending', attempts = t.attempts - 1, lease_owner = NULL, lease_expires_at = NULL,
    updated_at = now()
FROM unnest(CAST(:ids AS bigint[]), CAST(:attempts AS integer[])) AS o(id, attempt)
WHERE {_FENCE}
RETURNING t.id
""")


async def release_leases(
    conn: AsyncConnection, *, owner: str, outcomes: Sequence[Outcome]
) -> set[int]:
    """firing → pending for claimed timers this instance will not send; the attempt is undone."""
    result = await conn.execute(
        _RELEASE_LEASES,
        {
            "owner": owner,
            "ids": [o.timer_id for o in outcomes],
            "attempts": [o.attempt for o in outcomes],
        },
    )
    return {row.id for row in result}


_EXTEND_LEASES = text("""
UPDATE timers
SET lease_expires_at = now() + make_interval(secs => CAST(:lease_seconds AS double precision))
WHERE status = 'firing' AND lease_owner = :owner
""")


async def extend_leases(conn: AsyncConnection, *, owner: str, lease_seconds: float) -> int:
    """Heartbeat: every lease `owner` holds now lasts `lease_seconds` from the database's now."""
    result = await conn.execute(_EXTEND_LEASES, {"owner": owner, "lease_seconds": lease_seconds})
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
