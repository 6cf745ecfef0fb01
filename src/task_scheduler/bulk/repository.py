"""Persistence of bulk jobs: explicit SQL, one named function per state change (the table of
transitions is in models.py). The timers' own transitions are in timers/repository.py."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from pydantic import JsonValue
from sqlalchemy import RowMapping, text
from sqlalchemy.ext.asyncio import AsyncConnection

from task_scheduler.bulk.models import BulkAction, BulkState


@dataclass(frozen=True, slots=True, kw_only=True)
class BulkJob:
    id: int
    tenant: str | None
    action: BulkAction
    offset_seconds: float | None
    filter: dict[str, JsonValue]  # as stored; read back through the API's schema before use
    state: BulkState
    max_timer_id: int
    last_timer_id: int
    matched: int
    done: int
    skipped: int
    lease_owner: str | None
    lease_expires_at: datetime | None
    error: str | None
    created_at: datetime
    updated_at: datetime


_COLUMNS = ", ".join(f.name for f in BulkJob.__dataclass_fields__.values())
# `tenant`: the caller's tenant, whose jobs alone it sees; None (an admin) sees every job.
_IN_SCOPE = "(CAST(:tenant AS text) IS NULL OR tenant = :tenant)"


def _job(m: RowMapping) -> BulkJob:
    values = dict(m)
    values["action"] = BulkAction(values["action"])
    values["state"] = BulkState(values["state"])
    return BulkJob(**values)


_CREATE = text(f"""
INSERT INTO bulk_jobs (tenant, action, offset_seconds, filter, max_timer_id)
VALUES (:tenant, :action, :offset_seconds, CAST(:filter AS jsonb), (SELECT coalesce(max(id), 0) FROM timers))
RETURNING {_COLUMNS}
""")


async def create_job(
    conn: AsyncConnection,
    *,
    tenant: str | None,
    action: BulkAction,
    offset_seconds: float | None,
    filter_json: dict[str, JsonValue],
) -> BulkJob:
    """A queued job over the timers that exist now (up to the newest id)."""
    params = {
        "tenant": tenant,
        "action": action.value,
        "offset_seconds": offset_seconds,
        "filter": json.dumps(filter_json),
    }
    return _job((await conn.execute(_CREATE, params)).one()._mapping)


_GET = text(f"SELECT {_COLUMNS} FROM bulk_jobs WHERE id = :id AND {_IN_SCOPE}")


async def get_job(conn: AsyncConnection, *, job_id: int, tenant: str | None) -> BulkJob | None:
    row = (await conn.execute(_GET, {"id": job_id, "tenant": tenant})).one_or_none()
    return None if row is None else _job(row._mapping)


_TAKE = text(f"""
UPDATE bulk_jobs
SET state = 'running', lease_owner = :owner,
    lease_expires_at = now() + make_interval(secs => CAST(:lease_seconds AS double precision)),
    updated_at = now()
WHERE id = (
    SELECT id FROM bulk_jobs
    WHERE state = 'queued' OR (state = 'running' AND lease_expires_at < now())
    ORDER BY id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
RETURNING {_COLUMNS}
""")


async def take_job(conn: AsyncConnection, *, owner: str, lease_seconds: float) -> BulkJob | None:
    """queued → running, or running → running for a job whose lease lapsed (its instance stopped):
    the oldest such job, leased to `owner`."""
    row = (await conn.execute(_TAKE, {"owner": owner, "lease_seconds": lease_seconds})).one_or_none()
    return None if row is None else _job(row._mapping)


_HOLD = text(f"""
UPDATE bulk_jobs
SET lease_expires_at = now() + make_interval(secs => CAST(:lease_seconds AS double precision))
WHERE id = :id AND state = 'running' AND lease_owner = :owner
RETURNING {_COLUMNS}
""")


async def hold(conn: AsyncConnection, *, job_id: int, owner: str, lease_seconds: float) -> BulkJob | None:
    """Start of a batch: renew `owner`'s lease and lock the job's row until the batch commits
    (a cancel waits for it); the job as it is now, or None if `owner` no longer runs it."""
    params = {"id": job_id, "owner": owner, "lease_seconds": lease_seconds}
    row = (await conn.execute(_HOLD, params)).one_or_none()
    return None if row is None else _job(row._mapping)


_NEXT_TIMER_ID = text("SELECT min(id) FROM timers WHERE id > :after")


async def next_timer_id(conn: AsyncConnection, *, after: int) -> int | None:
    """The first timer id after `after` (one step down the primary key), None past the last."""
    found: int | None = (await conn.execute(_NEXT_TIMER_ID, {"after": after})).scalar()
    return found


_ADVANCE = text("""
UPDATE bulk_jobs
SET last_timer_id = :last_timer_id, matched = matched + :matched, done = done + :done,
    skipped = skipped + :matched - :done, updated_at = now(),
    state = CASE WHEN :finished THEN 'done' ELSE state END,
    lease_owner = CASE WHEN :finished THEN NULL ELSE lease_owner END,
    lease_expires_at = CASE WHEN :finished THEN NULL ELSE lease_expires_at END
WHERE id = :id AND state = 'running' AND lease_owner = :owner
""")


async def advance(
    conn: AsyncConnection,
    *,
    job_id: int,
    owner: str,
    last_timer_id: int,
    matched: int,
    done: int,
    finished: bool,
) -> bool:
    """End of a batch, in its transaction: the cursor and the counters move (`matched` timers
    taken, `done` of them changed, the rest skipped); running → done when `finished`."""
    params = {
        "id": job_id,
        "owner": owner,
        "last_timer_id": last_timer_id,
        "matched": matched,
        "done": done,
        "finished": finished,
    }
    return (await conn.execute(_ADVANCE, params)).rowcount == 1


_FAIL = text("""
UPDATE bulk_jobs
SET state = 'failed', error = :error, lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
WHERE id = :id AND state = 'running' AND lease_owner = :owner
""")


async def fail_job(conn: AsyncConnection, *, job_id: int, owner: str, error: str) -> bool:
    """running → failed: a batch raised an error that running it again would raise again."""
    return (await conn.execute(_FAIL, {"id": job_id, "owner": owner, "error": error})).rowcount == 1


_CANCEL = text(f"""
UPDATE bulk_jobs
SET state = 'cancelled', lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
WHERE id = :id AND state IN ('queued', 'running') AND {_IN_SCOPE}
RETURNING {_COLUMNS}
""")


async def cancel_job(conn: AsyncConnection, *, job_id: int, tenant: str | None) -> BulkJob | None:
    """queued | running → cancelled (the timers already handled stay so); None if the job is
    finished or not the caller's."""
    row = (await conn.execute(_CANCEL, {"id": job_id, "tenant": tenant})).one_or_none()
    return None if row is None else _job(row._mapping)
