"""Persistence of schedules: explicit SQL, one named function per state change (the table of
transitions is in models.py). The runs themselves are timers (timers/repository.py)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import RowMapping, text
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.ext.asyncio import AsyncConnection

from task_scheduler.schedules import cron
from task_scheduler.schedules.models import Catchup, Overlap, ScheduleStatus, schedules
from task_scheduler.timers import repository as timer_repository
from task_scheduler.timers.repository import NewTimer
from task_scheduler.timers.shape import Flat, RawJson, RequestSpec, RetrySpec, body_from_text

_JSONB = ("headers", "body", "labels")


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleSpec:
    """What a client sets on a schedule, as stored."""

    expression: str
    cron: str  # normalised
    timezone: str = "UTC"
    start_at: datetime | None = None
    end_at: datetime | None = None
    max_runs: int | None = None
    jitter_seconds: float = 0.0
    overlap: Overlap = Overlap.ALLOW
    catchup: Catchup = Catchup.LATEST
    catchup_window_seconds: float = 3600.0
    url: str
    request: RequestSpec = field(default_factory=RequestSpec)
    labels: dict[str, str] = field(default_factory=dict)
    max_lateness_seconds: float | None = None
    retry: RetrySpec = field(default_factory=RetrySpec)

    def cadence(self) -> Cadence:
        return Cadence(cron.parse(self.cron), ZoneInfo(self.timezone), self.start_at)


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleRow(ScheduleSpec):
    id: int
    tenant: str
    status: ScheduleStatus
    runs: int
    next_occurrence_at: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Cadence:
    """A schedule's occurrence times: its expression read in its zone (`anchor`: where an
    `@every` interval starts)."""

    expression: cron.CronExpression
    zone: ZoneInfo
    anchor: datetime | None

    def after(self, moment: datetime) -> datetime | None:
        """The first occurrence strictly after `moment`."""
        return cron.next_after(self.expression, moment, self.zone, anchor=self.anchor)

    def latest(self, moment: datetime) -> datetime | None:
        """The last occurrence at or before `moment`."""
        return cron.previous(self.expression, _just_after(moment), self.zone, anchor=self.anchor)

    def between(self, start: datetime, end: datetime, *, limit: int) -> list[datetime]:
        """The occurrences in (start, end]."""
        return cron.occurrences_between(
            self.expression, start, end, self.zone, limit=limit, anchor=self.anchor
        )


def _just_after(moment: datetime) -> datetime:
    return moment + timedelta(microseconds=1)


SCHEDULE_SPEC = Flat(ScheduleSpec)
SCHEDULE_ROW = Flat(ScheduleRow)
_COLUMNS = ", ".join(SCHEDULE_ROW.columns)
# For the engine, which only passes a schedule's body on to its runs: jsonb's text, unparsed.
_COLUMNS_BODY_AS_TEXT = ", ".join("body::text AS body" if c == "body" else c for c in SCHEDULE_ROW.columns)
# Columns PATCH may set (fixed here, never taken from input).
EDITABLE_COLUMNS = frozenset(SCHEDULE_SPEC.columns) - {"start_at"}
_IN_SCOPE = "(CAST(:tenant AS text) IS NULL OR tenant = :tenant)"


def _param(column: str, value: object) -> object:
    if column in _JSONB:
        if isinstance(value, RawJson):
            return value.text
        return None if value is None else json.dumps(value)
    return value


def _placeholder(column: str) -> str:
    return f"CAST(:{column} AS jsonb)" if column in _JSONB else f":{column}"


def _row(m: RowMapping) -> ScheduleRow:
    return SCHEDULE_ROW.build(m)


def _spec_values(spec: ScheduleSpec) -> dict[str, object]:
    values = {c: _param(c, v) for c, v in SCHEDULE_SPEC.flatten(spec).items()}
    values["overlap"] = spec.overlap.value
    values["catchup"] = spec.catchup.value
    return values


async def insert_schedule(
    conn: AsyncConnection, *, spec: ScheduleSpec, tenant: str, next_occurrence_at: datetime | None
) -> ScheduleRow:
    (row,) = await insert_schedules(conn, new=[(spec, tenant, next_occurrence_at)])
    return row


def _array_type(column: str) -> str:
    if column in _JSONB:
        return "text[]"
    return f"{schedules.c[column].type.compile(dialect=PGDialect()).lower()}[]"  # type: ignore[no-untyped-call]


_NEW_COLUMNS = (*SCHEDULE_SPEC.columns, "tenant", "next_occurrence_at")
_INSERT = text(f"""
WITH input AS (
    SELECT * FROM unnest({", ".join(f"CAST(:{c} AS {_array_type(c)})" for c in _NEW_COLUMNS)})
        WITH ORDINALITY AS i({", ".join(_NEW_COLUMNS)}, ord)
)
INSERT INTO schedules ({", ".join(_NEW_COLUMNS)}, status)
SELECT {", ".join(f"CAST({c} AS jsonb)" if c in _JSONB else c for c in _NEW_COLUMNS)},
       CASE WHEN next_occurrence_at IS NULL THEN 'ended' ELSE 'active' END
FROM input ORDER BY ord
RETURNING {_COLUMNS}
""")


async def insert_schedules(
    conn: AsyncConnection, *, new: Sequence[tuple[ScheduleSpec, str, datetime | None]]
) -> list[ScheduleRow]:
    """Insert schedules (spec, tenant, first occurrence) with one statement; returned in input
    order (identities are drawn in the insert's order)."""
    rows = [
        {**_spec_values(spec), "tenant": tenant, "next_occurrence_at": first} for spec, tenant, first in new
    ]
    params = {c: [row[c] for row in rows] for c in _NEW_COLUMNS}
    made = [_row(r._mapping) for r in await conn.execute(_INSERT, params)]
    return sorted(made, key=lambda row: row.id)


# New schedules and their first runs in one statement (a create's round trips are most of its
# cost): `made_runs` numbers the new schedules in id order, which is the input's order (identities
# are drawn in the insert's order), and run `n` of the input gets schedule `n`'s id. The runs'
# parameters are the timer insert's; the schedules' are prefixed `s_`.
_INSERT_WITH_RUNS = text(f"""
WITH schedule_input AS (
    SELECT * FROM unnest({", ".join(f"CAST(:s_{c} AS {_array_type(c)})" for c in _NEW_COLUMNS)})
        WITH ORDINALITY AS i({", ".join(_NEW_COLUMNS)}, ord)
), made AS (
    INSERT INTO schedules ({", ".join(_NEW_COLUMNS)}, status)
    SELECT {", ".join(f"CAST({c} AS jsonb)" if c in _JSONB else c for c in _NEW_COLUMNS)}, 'active'
    FROM schedule_input ORDER BY ord
    RETURNING {_COLUMNS}
), made_runs AS (
    SELECT id, row_number() OVER (ORDER BY id) AS run_ord FROM made
), {timer_repository.new_timers_sql(schedule_ids="made_runs")}, notified AS (
    SELECT {timer_repository.NOTIFY_NEW} FROM new
)
SELECT {_COLUMNS}, (SELECT count(notified) FROM notified) AS notifications FROM made ORDER BY id
""")


async def insert_schedules_with_runs(
    conn: AsyncConnection,
    *,
    new: Sequence[tuple[ScheduleSpec, str, datetime, NewTimer]],
    notify_within: float,
) -> list[ScheduleRow]:
    """Insert active schedules (spec, tenant, first occurrence) each with its first run (whose
    `schedule_id` is set here) with one statement; returned in input order."""
    params = timer_repository.insert_params([run for *_, run in new], notify_within)
    rows = [
        {**_spec_values(spec), "tenant": tenant, "next_occurrence_at": first}
        for spec, tenant, first, _ in new
    ]
    params.update({f"s_{c}": [row[c] for row in rows] for c in _NEW_COLUMNS})
    return [_row(r._mapping) for r in await conn.execute(_INSERT_WITH_RUNS, params)]


_GET = text(f"SELECT {_COLUMNS} FROM schedules WHERE id = :id AND {_IN_SCOPE}")


async def get_schedule(conn: AsyncConnection, *, schedule_id: int, tenant: str | None) -> ScheduleRow | None:
    row = (await conn.execute(_GET, {"id": schedule_id, "tenant": tenant})).one_or_none()
    return None if row is None else _row(row._mapping)


_LOCK = text(f"SELECT {_COLUMNS} FROM schedules WHERE id = :id AND {_IN_SCOPE} FOR UPDATE")


async def lock_schedule(conn: AsyncConnection, *, schedule_id: int, tenant: str | None) -> ScheduleRow | None:
    """The schedule, its row locked until the transaction ends (every change to a series holds it)."""
    row = (await conn.execute(_LOCK, {"id": schedule_id, "tenant": tenant})).one_or_none()
    return None if row is None else _row(row._mapping)


# Locked in id order, so that claims of many schedules never wait for each other in a cycle.
_LOCK_MANY = text(f"""
SELECT {_COLUMNS_BODY_AS_TEXT} FROM schedules WHERE id = ANY(CAST(:ids AS bigint[])) ORDER BY id FOR UPDATE
""")


async def lock_schedules(conn: AsyncConnection, *, schedule_ids: Sequence[int]) -> list[ScheduleRow]:
    """Lock the rows (in id order) and return what they hold, the body as RawJson (the engine
    only passes it on to the runs it creates); an unreadable row is left out."""
    found = []
    for row in await conn.execute(_LOCK_MANY, {"ids": sorted(set(schedule_ids))}):
        try:
            found.append(SCHEDULE_ROW.build({**row._mapping, "body": body_from_text(row.body)}))
        except (ValueError, TypeError, KeyError):
            continue
    return found


async def list_schedules(
    conn: AsyncConnection,
    *,
    tenant: str | None,
    labels: dict[str, str],
    status: ScheduleStatus | None,
    after_id: int | None,
    limit: int,
    max_bytes: int = timer_repository.PAGE_BYTES,
) -> tuple[list[ScheduleRow], bool]:
    """Schedules in id order after `after_id`: at most `limit`, fewer where their text passes
    `max_bytes` (at least one; see timers.repository.PAGE_BYTES), and whether more match."""
    where: list[str] = []
    params: dict[str, object] = {"limit": limit + 1, "max_bytes": max_bytes}
    if tenant is not None:
        where.append("tenant = :tenant")
        params["tenant"] = tenant
    if labels:
        where.append("labels @> CAST(:labels AS jsonb)")
        params["labels"] = json.dumps(labels)
    if status is not None:
        where.append("status = :status")
        params["status"] = status.value
    if after_id is not None:
        where.append("id > :after_id")
        params["after_id"] = after_id
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    select = (
        f"SELECT {_COLUMNS}, {timer_repository.ROW_BYTES} AS page_row_bytes FROM schedules {clause}"
        " ORDER BY id LIMIT :limit"
    )
    rows, candidates = [], 0
    for row in await conn.execute(text(timer_repository.within_page_bytes(select, "id")), params):
        candidates = row.page_rows
        rows.append(_row(row._mapping))
    return rows[:limit], candidates > len(rows[:limit])


async def update_schedule(
    conn: AsyncConnection, *, schedule_id: int, changes: dict[str, Any], next_occurrence_at: datetime | None
) -> ScheduleRow:
    """Set the changed columns and the cursor of a schedule whose row the caller has locked."""
    assignments = ["updated_at = clock_timestamp()", "next_occurrence_at = :next_occurrence_at"]
    params: dict[str, object] = {"id": schedule_id, "next_occurrence_at": next_occurrence_at}
    for column, value in changes.items():
        if column not in EDITABLE_COLUMNS:
            raise ValueError(f"column {column!r} is not editable")
        assignments.append(f"{column} = {_placeholder(column)}")
        params[column] = _param(column, value.value if isinstance(value, Overlap | Catchup) else value)
    statement = text(f"UPDATE schedules SET {', '.join(assignments)} WHERE id = :id RETURNING {_COLUMNS}")
    return _row((await conn.execute(statement, params)).one()._mapping)


_SET_STATUS = text(f"""
UPDATE schedules
SET status = :to, updated_at = clock_timestamp(),
    next_occurrence_at = CASE WHEN :to = 'ended' THEN NULL ELSE next_occurrence_at END
WHERE id = :id AND status = ANY(CAST(:from AS text[]))
RETURNING {_COLUMNS}
""")


async def _set_status(
    conn: AsyncConnection, schedule_id: int, source: Sequence[ScheduleStatus], target: ScheduleStatus
) -> ScheduleRow | None:
    params = {"id": schedule_id, "to": target.value, "from": [s.value for s in source]}
    row = (await conn.execute(_SET_STATUS, params)).one_or_none()
    return None if row is None else _row(row._mapping)


async def pause(conn: AsyncConnection, *, schedule_id: int) -> ScheduleRow | None:
    """active → paused (the cursor stays: the series resumes from it)."""
    return await _set_status(conn, schedule_id, [ScheduleStatus.ACTIVE], ScheduleStatus.PAUSED)


async def resume(conn: AsyncConnection, *, schedule_id: int) -> ScheduleRow | None:
    """paused → active."""
    return await _set_status(conn, schedule_id, [ScheduleStatus.PAUSED], ScheduleStatus.ACTIVE)


async def end(conn: AsyncConnection, *, schedule_id: int) -> ScheduleRow | None:
    """active | paused → ended; the cursor is cleared."""
    return await _set_status(
        conn, schedule_id, [ScheduleStatus.ACTIVE, ScheduleStatus.PAUSED], ScheduleStatus.ENDED
    )


@dataclass(frozen=True, slots=True)
class Advance:
    """A claim moving a series on: its new cursor, runs fired, and whether it ends."""

    schedule_id: int
    next_occurrence_at: datetime | None
    fired: int
    ends: bool


_ADVANCE = text("""
UPDATE schedules AS s
SET next_occurrence_at = CASE WHEN a.ends THEN NULL ELSE a.next END,
    runs = s.runs + a.fired,
    status = CASE WHEN a.ends THEN 'ended' ELSE s.status END,
    updated_at = CASE WHEN a.ends THEN clock_timestamp() ELSE s.updated_at END
FROM unnest(CAST(:ids AS bigint[]), CAST(:nexts AS timestamptz[]), CAST(:fired AS bigint[]),
            CAST(:ends AS boolean[])) AS a(id, next, fired, ends)
WHERE s.id = a.id AND s.status <> 'ended'
""")


async def advance(conn: AsyncConnection, *, advances: Sequence[Advance]) -> None:
    """Move the cursors of schedules whose rows the caller has locked (one statement)."""
    if not advances:
        return
    await conn.execute(
        _ADVANCE,
        {
            "ids": [a.schedule_id for a in advances],
            "nexts": [a.next_occurrence_at for a in advances],
            "fired": [a.fired for a in advances],
            "ends": [a.ends for a in advances],
        },
    )


_COUNT_ACTIVE = text("SELECT count(*) FROM schedules WHERE status = 'active'")


async def count_active(conn: AsyncConnection) -> int:
    return int((await conn.execute(_COUNT_ACTIVE)).scalar_one())
