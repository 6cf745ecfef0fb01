"""Persistence of timers: explicit SQL, one named function per state change.

Statements that pick rows with `LIMIT ... FOR UPDATE SKIP LOCKED` take them as
`id = ANY(ARRAY(SELECT ...))`: the subquery runs once. As `id IN (SELECT ...)`, a plan cached
while the table was empty (a nested-loop semi join) re-ran it for every row: quadratic, and a
claim of 500 took all 10,000 due timers (each re-run locked a new set).

The database's clock (`now()`) decides when a timer is due; every query that a caller needs to
compare against returns the database's `now()` as `db_now`. The dispatcher reads the database's
clock after its claim instead (`database_clock`): it maps due times onto its own clock from that
reading, and `now()` (the transaction's start, a round trip and the claim statement earlier)
would make every held timer late by that much.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Result, RowMapping, TextClause, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.ext.asyncio import AsyncConnection

from task_scheduler.db import EARLIEST_TIME, INT4_MAX, LATEST_TIME
from task_scheduler.destinations.keys import default_key
from task_scheduler.destinations.models import HOLDING_OR_LIMITED
from task_scheduler.timers.models import TimerStatus, timers
from task_scheduler.timers.shape import Flat, RawJson, StoredSpec, TimerSpec, body_from_text

NOTIFY_CHANNEL = "task_scheduler_due"


@dataclass(frozen=True, slots=True, kw_only=True)
class TimerRow(StoredSpec):
    id: int
    status: TimerStatus
    due_at: datetime
    created_at: datetime
    updated_at: datetime
    attempts: int
    delivery_id: uuid.UUID
    last_error: str | None
    delivered_at: datetime | None
    db_now: datetime
    tenant: str = "default"
    schedule_id: int | None = None
    occurrence_at: datetime | None = None
    replay_of: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class NewTimer(StoredSpec):
    """A timer to insert: due `delay_seconds` from the database's now, or at `fire_at`; its
    lateness cutoff `deliver_before`, or `max_lateness_seconds` after its due time."""

    tenant: str = "default"
    delay_seconds: float | None = None
    fire_at: datetime | None = None
    max_lateness_seconds: float | None = None
    # A schedule's run: the occurrence it stands for (None for a run triggered outside the series).
    schedule_id: int | None = None
    occurrence_at: datetime | None = None
    # A replay: the finished timer whose request it sends again.
    replay_of: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ClaimedTimer(StoredSpec):
    id: int
    due_at: datetime
    attempt: int
    delivery_id: uuid.UUID
    lease_expires_at: datetime
    attempts_before_redrive: int = 0
    tenant: str = "default"
    schedule_id: int | None = None
    occurrence_at: datetime | None = None


TIMER_ROW = Flat(TimerRow)
NEW_TIMER = Flat(NewTimer)
CLAIMED_TIMER = Flat(ClaimedTimer)
TIMER_SPEC = Flat(TimerSpec)

# JSONB columns travel as JSON text and are cast back in SQL.
_JSONB_COLUMNS = frozenset(c.name for c in timers.c if isinstance(c.type, JSONB))


def _array_type(column: str) -> str:
    """The type of a column's array parameter in the batched INSERT: the column's own."""
    if column in _JSONB_COLUMNS:
        return "text[]"
    sql_type = timers.c[column].type.compile(dialect=PGDialect())  # type: ignore[no-untyped-call]
    return f"{sql_type.lower()}[]"


def _select_list(flat: Flat[Any], *, computed: Mapping[str, str]) -> str:
    """The columns a row class is read from, `expression AS field` where it is not a column."""
    return ", ".join(f"{computed[c]} AS {c}" if c in computed else c for c in flat.columns)


def _jsonb_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, RawJson):
        return value.text
    return json.dumps(value) if value != {} else "{}"  # most timers have none: skip the encoder


_TIMER_COLUMNS = _select_list(TIMER_ROW, computed={"db_now": "now()"})
_NOTIFY_IF_SOON = (
    "CASE WHEN {due} <= now() + make_interval(secs => CAST(:notify_within AS double precision))"
    f" THEN pg_notify('{NOTIFY_CHANNEL}', '') END AS notified"
)

# How a new timer's due time and lateness cutoff are computed; every other column is stored as given.
_SCHEDULING = {
    "delay_seconds": "double precision[]",
    "fire_at": "timestamptz[]",
    "max_lateness_seconds": "double precision[]",
}
_STORED = tuple(c for c in NEW_TIMER.columns if c not in _SCHEDULING)
_STORED_AS = {
    "deliver_before": "coalesce(deliver_before, due + make_interval(secs => max_lateness_seconds))",
    **{c: f"CAST({c} AS jsonb)" for c in _STORED if c in _JSONB_COLUMNS},
}
_INSERT_ARRAYS = {**_SCHEDULING, **{c: _array_type(c) for c in _STORED}}
_UNNEST_ARGS = ",\n        ".join(f"CAST(:{c} AS {t})" for c, t in _INSERT_ARRAYS.items())

# The CTEs that insert new timers (`new`: their id and due time); `{join}` may add a relation whose
# `schedule_id` column replaces the given one (the runs of schedules made in the same statement).
_NEW_TIMERS = f"""input AS (
    SELECT * FROM unnest(
        {_UNNEST_ARGS}
    ) WITH ORDINALITY AS i({", ".join(_INSERT_ARRAYS)}, ord)
), scheduled AS (
    SELECT input.*, coalesce(fire_at, now() + make_interval(secs => delay_seconds)) AS due{{extra}}
    FROM input{{join}}
), new AS (
    INSERT INTO timers (due_at, {", ".join(_STORED)})
    SELECT due, {{stored}}
    FROM scheduled
    ORDER BY ord
    {{on_conflict}}
    RETURNING id, due_at
)"""
NOTIFY_NEW = _NOTIFY_IF_SOON.format(due="new.due_at")  # one per due-soon timer of `new`
# A schedule's run for an occurrence that has one already is not made twice (the unique index).
_RUN_CONFLICT = (
    "ON CONFLICT (schedule_id, occurrence_at)"
    " WHERE schedule_id IS NOT NULL AND status <> 'cancelled' DO NOTHING"
)


def new_timers_sql(*, on_conflict: str = "", schedule_ids: str | None = None) -> str:
    """The `input`, `scheduled` and `new` CTEs. `schedule_ids`: a relation (made earlier in the
    same WITH) with `id` and `run_ord`: row `run_ord` of the input gets `id` as its schedule."""
    stored = [_STORED_AS.get(c, c) for c in _STORED]
    extra = join = ""
    if schedule_ids is not None:
        stored = [
            "new_schedule_id" if c == "schedule_id" else e for c, e in zip(_STORED, stored, strict=True)
        ]
        extra = f", {schedule_ids}.id AS new_schedule_id"
        join = f" JOIN {schedule_ids} ON {schedule_ids}.run_ord = input.ord"
    return _NEW_TIMERS.format(stored=", ".join(stored), on_conflict=on_conflict, extra=extra, join=join)


_INSERT_TEMPLATE = f"""
WITH {{timers}}
SELECT new.id, new.due_at, now() AS db_now, {NOTIFY_NEW}
FROM new
ORDER BY new.id
"""
_INSERT = text(_INSERT_TEMPLATE.format(timers=new_timers_sql()))
_INSERT_RUNS = text(_INSERT_TEMPLATE.format(timers=new_timers_sql(on_conflict=_RUN_CONFLICT)))


@dataclass(frozen=True, slots=True)
class CreatedTimer:
    """What creating a timer answers with (time_left from the database clock)."""

    id: int
    due_at: datetime
    db_now: datetime


def insert_params(timers: Sequence[NewTimer], notify_within: float) -> dict[str, object]:
    params: dict[str, object] = {"notify_within": notify_within}
    for column in _INSERT_ARRAYS:
        get = NEW_TIMER.getters[column]
        if column == "destination":
            params[column] = [t.destination or default_key(t.url) for t in timers]
        elif column in _JSONB_COLUMNS:
            params[column] = [_jsonb_text(get(t)) for t in timers]
        else:
            params[column] = [get(t) for t in timers]
    return params


async def insert_timers(
    conn: AsyncConnection, *, timers: Sequence[NewTimer], notify_within: float
) -> list[CreatedTimer]:
    """Insert pending timers with one statement, returned in input order; due-soon ones NOTIFY
    the dispatchers (PostgreSQL sends one notification per transaction, on commit)."""
    result = await conn.execute(_INSERT, insert_params(timers, notify_within))
    return [CreatedTimer(row.id, row.due_at, row.db_now) for row in result]


async def insert_runs(
    conn: AsyncConnection, *, timers: Sequence[NewTimer], notify_within: float
) -> list[int]:
    """Insert runs of schedules like insert_timers, but a run whose occurrence has a run already
    (not cancelled) is not inserted; returns the ids of those that were."""
    result = await conn.execute(_INSERT_RUNS, insert_params(timers, notify_within))
    return [row.id for row in result]


# `tenant`, wherever a caller reads or changes timers: the tenant whose timers alone it sees;
# None (an admin) sees every tenant's.
_IN_SCOPE = "(CAST(:tenant AS text) IS NULL OR tenant = :tenant)"

_GET = text(f"SELECT {_TIMER_COLUMNS} FROM timers WHERE id = :id AND {_IN_SCOPE}")


async def get_timer(conn: AsyncConnection, *, timer_id: int, tenant: str | None) -> TimerRow | None:
    row = (await conn.execute(_GET, {"id": timer_id, "tenant": tenant})).one_or_none()
    return None if row is None else _timer_row(row._mapping)


def _timer_row(m: Mapping[Any, Any]) -> TimerRow:
    return TIMER_ROW.build(m)  # ±infinity times are read as the extreme instants (Flat)


# Columns PATCH may set directly (the names are fixed here, never taken from input).
EDITABLE_COLUMNS = frozenset(TIMER_SPEC.columns)


async def update_pending(
    conn: AsyncConnection,
    *,
    timer_id: int,
    tenant: str | None,
    changes: dict[str, object],
    delay_seconds: float | None = None,
    fire_at: datetime | None = None,
    max_lateness_seconds: float | None = None,
    expected_updated_at: list[datetime] | None = None,
    notify_within: float,
) -> TimerRow | None:
    """pending → pending with new fields and/or a new due time; None if the timer is not pending,
    was changed since any of `expected_updated_at`, or would end with its lateness cutoff before
    its due time."""
    assignments = ["updated_at = now()"]
    params: dict[str, object] = {"id": timer_id, "tenant": tenant, "notify_within": notify_within}
    for column, value in changes.items():
        if column not in EDITABLE_COLUMNS:
            raise ValueError(f"column {column!r} is not editable")
        if column in _JSONB_COLUMNS:
            assignments.append(f"{column} = CAST(:{column} AS jsonb)")
            params[column] = _jsonb_text(value)
        else:
            assignments.append(f"{column} = :{column}")
            params[column] = value
    if "url" in changes:
        destination = await _destination_after(
            conn, timer_id=timer_id, tenant=tenant, new_url=str(changes["url"])
        )
        if destination is not None:
            assignments.append("destination = :destination")
            params["destination"] = destination
    new_due = "due_at"
    if fire_at is not None or delay_seconds is not None:
        new_due = (
            "coalesce(CAST(:fire_at AS timestamptz),"
            " now() + make_interval(secs => CAST(:delay AS double precision)))"
        )
        assignments.append(f"due_at = {new_due}")
        params.update(fire_at=fire_at, delay=delay_seconds)
    new_cutoff = "CAST(:deliver_before AS timestamptz)" if "deliver_before" in changes else "deliver_before"
    if max_lateness_seconds is not None:
        if "deliver_before" in changes:
            raise ValueError("give either deliver_before or max_lateness_seconds, not both")
        new_cutoff = f"{new_due} + make_interval(secs => CAST(:lateness AS double precision))"
        assignments.append(f"deliver_before = {new_cutoff}")
        params["lateness"] = max_lateness_seconds
    fence = f"id = :id AND status = 'pending' AND {_IN_SCOPE}"
    fence += f" AND ({new_cutoff} IS NULL OR {new_cutoff} >= {new_due})"
    if expected_updated_at is not None:
        fence += " AND updated_at = ANY(CAST(:expected_updated_at AS timestamptz[]))"
        params["expected_updated_at"] = expected_updated_at
    statement = text(f"""
        UPDATE timers SET {", ".join(assignments)}
        WHERE {fence}
        RETURNING {_TIMER_COLUMNS}, {_NOTIFY_IF_SOON.format(due="due_at")}
    """)
    row = (await conn.execute(statement, params)).one_or_none()
    return None if row is None else _timer_row(row._mapping)


_URL_AND_DESTINATION = text(f"SELECT url, destination FROM timers WHERE id = :id AND {_IN_SCOPE} FOR UPDATE")


async def _destination_after(
    conn: AsyncConnection, *, timer_id: int, tenant: str | None, new_url: str
) -> str | None:
    """The destination of a timer whose URL an edit changes, when it changes too: a timer whose
    destination is its URL's origin (the default) follows its URL; one given on create stays.
    (Read under the lock the edit takes anyway.)"""
    row = (await conn.execute(_URL_AND_DESTINATION, {"id": timer_id, "tenant": tenant})).one_or_none()
    if row is not None and row.destination is not None and row.destination == default_key(row.url):
        return default_key(new_url)
    return None


# Bulk forms of a transition pick their rows like this: the given ids not locked by another
# transaction (a claim, an edit), which are left for the caller to count as skipped.
_UNLOCKED_OF_IDS = (
    "id = ANY(ARRAY(SELECT id FROM timers WHERE id = ANY(CAST(:ids AS bigint[])) FOR UPDATE SKIP LOCKED))"
)

_CANCEL_TEMPLATE = f"""
UPDATE timers SET status = 'cancelled', updated_at = now()
WHERE {{pick}} AND status = 'pending' AND {_IN_SCOPE}
RETURNING {_TIMER_COLUMNS}
"""
_CANCEL = text(_CANCEL_TEMPLATE.format(pick="id = :id"))
_CANCEL_MANY = text(_CANCEL_TEMPLATE.format(pick=_UNLOCKED_OF_IDS))


async def cancel(conn: AsyncConnection, *, timer_id: int, tenant: str | None) -> TimerRow | None:
    """pending → cancelled; None when the timer is not pending (claimed, finished or unknown)."""
    row = (await conn.execute(_CANCEL, {"id": timer_id, "tenant": tenant})).one_or_none()
    return None if row is None else _timer_row(row._mapping)


async def cancel_many(
    conn: AsyncConnection, *, timer_ids: Sequence[int], tenant: str | None
) -> list[TimerRow]:
    """pending → cancelled for those of `timer_ids` that are pending and not locked by another
    transaction (never waited for); returns the cancelled ones."""
    result = await conn.execute(_CANCEL_MANY, {"ids": list(timer_ids), "tenant": tenant})
    return [_timer_row(row._mapping) for row in result]


_REDRIVE_TEMPLATE = f"""
UPDATE timers
SET status = 'pending', due_at = now(), deliver_before = NULL, attempts_before_redrive = attempts,
    updated_at = now()
WHERE {{pick}} AND status IN ('failed', 'expired') AND {_IN_SCOPE}
RETURNING {{returning}}, {_NOTIFY_IF_SOON.format(due="due_at")}
"""
_REDRIVE = text(_REDRIVE_TEMPLATE.format(pick="id = :id", returning=_TIMER_COLUMNS))
_REDRIVE_MANY = text(_REDRIVE_TEMPLATE.format(pick=_UNLOCKED_OF_IDS, returning="id"))


async def redrive(
    conn: AsyncConnection, *, timer_id: int, tenant: str | None, notify_within: float
) -> TimerRow | None:
    """failed | expired → pending, due now, with a fresh retry budget and no lateness cutoff."""
    params = {"id": timer_id, "tenant": tenant, "notify_within": notify_within}
    row = (await conn.execute(_REDRIVE, params)).one_or_none()
    return None if row is None else _timer_row(row._mapping)


async def redrive_many(
    conn: AsyncConnection, *, timer_ids: Sequence[int], tenant: str | None, notify_within: float
) -> list[int]:
    """failed | expired → pending like `redrive`, for those of `timer_ids` not locked by another
    transaction; returns their ids."""
    params = {"ids": list(timer_ids), "tenant": tenant, "notify_within": notify_within}
    return [row.id for row in await conn.execute(_REDRIVE_MANY, params)]


_RESCHEDULE_MANY = text(f"""
UPDATE timers
SET due_at = due_at + make_interval(secs => CAST(:offset AS double precision)),
    deliver_before = deliver_before + make_interval(secs => CAST(:offset AS double precision)),
    updated_at = now()
WHERE {_UNLOCKED_OF_IDS} AND status = 'pending' AND {_IN_SCOPE}
  AND due_at + make_interval(secs => CAST(:offset AS double precision))
      BETWEEN '1970-01-01 00:00:00+00' AND now() + make_interval(secs => CAST(:horizon AS double precision))
  AND (deliver_before IS NULL
       OR deliver_before + make_interval(secs => CAST(:offset AS double precision)) >= '1970-01-01 00:00:00+00')
RETURNING id, {_NOTIFY_IF_SOON.format(due="due_at")}
""")


async def reschedule_many(
    conn: AsyncConnection,
    *,
    timer_ids: Sequence[int],
    tenant: str | None,
    offset_seconds: float,
    horizon_seconds: float,
    notify_within: float,
) -> list[int]:
    """pending → pending, due `offset_seconds` later (earlier if negative), the lateness cutoff
    moved with it, for those of `timer_ids` not locked by another transaction; a timer the move
    would take before 1970 or beyond the horizon is left as it is. Returns the moved ids."""
    params = {
        "ids": list(timer_ids),
        "tenant": tenant,
        "offset": offset_seconds,
        "horizon": horizon_seconds,
        "notify_within": notify_within,
    }
    return [row.id for row in await conn.execute(_RESCHEDULE_MANY, params)]


@dataclass(frozen=True, slots=True, kw_only=True)
class TimerFilter:
    """Which timers a list or a bulk action takes: all the given conditions hold."""

    status: TimerStatus | None = None
    labels: dict[str, str] = field(default_factory=dict)
    due_after: datetime | None = None  # due_at at or after
    due_before: datetime | None = None  # due_at before
    host: str | None = None  # the URL's host, any case
    error_class: str | None = None  # of the timer's latest attempt
    destination: str | None = None  # the destination key, exactly (NULL on timers made before)


def _latest_error_class(timer_id: str) -> str:
    """SQL for the error class of the latest attempt of the timer whose id is `timer_id`."""
    return (
        f"(SELECT a.error_class FROM timer_attempts AS a WHERE a.timer_id = {timer_id}"
        " ORDER BY a.attempt DESC LIMIT 1)"
    )


def _host_condition(url: str, host: str, params: dict[str, object]) -> str:
    """SQL: the URL in column `url` goes to `host` (on any port) or to `host:port`, any case."""
    authority = url_authority_sql(url)
    host = host.lower()
    literal = host.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    params.update(host=host, host_port=f"{literal}:%")
    return f"({authority} = :host OR {authority} LIKE :host_port)"


def _filter_conditions(where: TimerFilter, params: dict[str, object]) -> list[str]:
    """The SQL conditions of a filter (AND-ed), its values put in `params`."""
    conditions: list[str] = []
    if where.status is not None:
        conditions.append("status = :status")
        params["status"] = where.status.value
    if where.labels:
        conditions.append("labels @> CAST(:labels AS jsonb)")
        params["labels"] = json.dumps(where.labels)
    if where.due_after is not None:
        conditions.append("due_at >= :due_after")
        params["due_after"] = where.due_after
    if where.due_before is not None:
        conditions.append("due_at < :due_before")
        params["due_before"] = where.due_before
    if where.host is not None:
        conditions.append(_host_condition("url", where.host, params))
    if where.error_class is not None:
        conditions.append(f"{_latest_error_class('timers.id')} = :error_class")
        params["error_class"] = where.error_class
    if where.destination is not None:
        conditions.append("destination = :destination")
        params["destination"] = where.destination
    return conditions


def _bulk_selection(
    *, tenant: str | None, where: TimerFilter, statuses: Sequence[TimerStatus], params: dict[str, object]
) -> str:
    """The WHERE of the timers a bulk action takes: in scope, in one of `statuses`, matching."""
    params.update(tenant=tenant, statuses=[s.value for s in statuses])
    conditions = [_IN_SCOPE, "status = ANY(CAST(:statuses AS text[]))", *_filter_conditions(where, params)]
    return " AND ".join(conditions)


async def count_matching(
    conn: AsyncConnection, *, tenant: str | None, where: TimerFilter, statuses: Sequence[TimerStatus]
) -> int:
    """How many timers a bulk action would take now (its dry run)."""
    params: dict[str, object] = {}
    selection = _bulk_selection(tenant=tenant, where=where, statuses=statuses, params=params)
    statement = text(f"SELECT count(*) FROM timers WHERE {selection}")
    return int((await conn.execute(statement, params)).scalar_one())


async def bulk_candidates(
    conn: AsyncConnection,
    *,
    tenant: str | None,
    where: TimerFilter,
    statuses: Sequence[TimerStatus],
    after_id: int,
    upto_id: int,
    limit: int,
) -> list[int]:
    """The next `limit` ids a bulk action takes, in id order after the keyset cursor `after_id`
    and not beyond `upto_id` (the runner's window: never beyond the newest timer when the job
    started). Read without locks; the transition then locks and re-checks each. No index holds
    a host, a destination or an error class, so the plan is a walk of the primary key from
    `after_id` that filters rows: the window bounds that walk, however few rows match."""
    params: dict[str, object] = {"after_id": after_id, "upto_id": upto_id, "limit": limit}
    selection = _bulk_selection(tenant=tenant, where=where, statuses=statuses, params=params)
    statement = text(f"""
        SELECT id FROM timers WHERE id > :after_id AND id <= :upto_id AND {selection}
        ORDER BY id LIMIT :limit
    """)
    return [row.id for row in await conn.execute(statement, params)]


# What a page of timers may carry, counted as the text of their URL, headers, labels and body: a
# body may hold 64 KiB of JSON, which parsed (small arrays or objects) takes ~25 times that in
# Python objects (and the answer copies them a few times over); a page of 1,000 such timers took a
# service process 15 s of CPU, its event loop (and every delivery of the process) with it, and
# 400 MB. A page stops at the timer that passes this much (at least one timer; the cursor goes
# on from there): ~1,000 ordinary timers, 6 of the largest.
PAGE_BYTES = 512 * 1024
# A timer's or schedule's text as a page counts it.
ROW_BYTES = (
    "octet_length(url) + octet_length(headers::text) + octet_length(labels::text)"
    " + coalesce(octet_length(body::text), 0)"
)


def within_page_bytes(select: str, order: str) -> str:
    """SQL for the rows of `select` (which ends `ORDER BY {order} LIMIT :limit` and selects
    `ROW_BYTES AS page_row_bytes`) up to and including the one that passes `:max_bytes`, in the
    same order, each with `page_rows`: how many rows `select` gave. Rows past the bound are never
    sent to the service."""
    return f"""
        SELECT * FROM (
            SELECT page.*, sum(page_row_bytes) OVER (ORDER BY {order}) - page_row_bytes AS page_bytes_before,
                   count(*) OVER () AS page_rows
            FROM ({select}) AS page
        ) AS sized
        WHERE page_bytes_before < :max_bytes
        ORDER BY {order}
    """


@dataclass(frozen=True, slots=True)
class TimerSlice:
    rows: list[TimerRow]  # in (due_at, id) order
    more: bool  # timers after the last row match too (the limit or PAGE_BYTES stopped the slice)


async def list_slice(
    conn: AsyncConnection,
    *,
    tenant: str | None,
    status: TimerStatus | None = None,
    labels: dict[str, str] | None = None,
    due_after: datetime | None = None,
    due_before: datetime | None = None,
    after: tuple[datetime, int] | None = None,
    limit: int,
    max_bytes: int = PAGE_BYTES,
) -> TimerSlice:
    """Timers in (due_at, id) order after the keyset cursor `after`, filtered: at most `limit`,
    fewer where they pass `max_bytes` (at least one), and whether more match after the last.
    The rows past the bound are left in the database (never sent, never parsed)."""
    clause, params = _list_where(tenant, status, labels, due_after, due_before, after)
    select = (
        f"SELECT {_TIMER_COLUMNS}, {ROW_BYTES} AS page_row_bytes FROM timers {clause}"
        " ORDER BY due_at, id LIMIT :limit"
    )
    statement = text(within_page_bytes(select, "due_at, id"))
    params.update(limit=limit + 1, max_bytes=max_bytes)
    rows, candidates = [], 0
    for row in await conn.execute(statement, params):
        candidates = row.page_rows
        rows.append(_timer_row(row._mapping))
    return TimerSlice(rows=rows[:limit], more=candidates > len(rows[:limit]))


def _list_where(
    tenant: str | None,
    status: TimerStatus | None,
    labels: dict[str, str] | None,
    due_after: datetime | None,
    due_before: datetime | None,
    after: tuple[datetime, int] | None,
) -> tuple[str, dict[str, object]]:
    """The WHERE clause of the list's filters (each one an index can serve) and its parameters."""
    where: list[str] = []
    params: dict[str, object] = {}
    if tenant is not None:
        where.append("tenant = :tenant")
        params["tenant"] = tenant
    matching = TimerFilter(status=status, labels=labels or {}, due_after=due_after, due_before=due_before)
    where += _filter_conditions(matching, params)
    if after is not None:
        where.append("(due_at, id) > (:cursor_due, :cursor_id)")
        params.update(cursor_due=after[0], cursor_id=after[1])
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    return clause, params


def url_authority_sql(url: str) -> str:
    """SQL for the host[:port] of the URL in column `url`, lower-cased, without user:password@
    (string functions, not a regex per row); what the dashboard calls a destination."""
    authority = f"split_part(split_part(split_part({url}, '/', 3), '?', 1), '#', 1)"
    return f"lower(substr({authority}, strpos({authority}, '@') + 1))"


@dataclass(frozen=True, slots=True)
class ScannedTimers:
    """A window of the list and the timers in it that match the filters no index serves."""

    rows: list[TimerRow]  # the matches, in (due_at, id) order
    scanned: int  # timers the window read
    last: tuple[datetime, int] | None  # the window's last (due_at, id): where the next one starts
    cut: bool = False  # more matches came after the rows (the limit or PAGE_BYTES stopped them)

    def goes_on_after(self, limit: int, window: int) -> tuple[datetime, int] | None:
        """Where the next page starts when this page shows the first `limit` rows of a scan of
        `window` timers (asked for limit + 1): after its last row when more matches came after
        it, after the window when the window was read to its end, None at the end."""
        page = self.rows[:limit]
        if (self.cut or len(self.rows) > limit) and page:
            return page[-1].due_at, page[-1].id
        if self.scanned >= window and self.last is not None:
            return self.last
        return None


async def scan_timers(
    conn: AsyncConnection,
    *,
    tenant: str | None,
    status: TimerStatus | None,
    labels: dict[str, str] | None,
    due_after: datetime | None,
    due_before: datetime | None,
    after: tuple[datetime, int] | None,
    host: str | None,
    error_class: str | None,
    window: int,
    limit: int,
    max_bytes: int = PAGE_BYTES,
) -> ScannedTimers:
    """Timers of a destination host and/or whose last attempt failed with `error_class`. No index
    holds either (the host is inside `url`; the class is on the attempt), so this reads the next
    `window` timers of the list (its filters and order, as list_slice reads them) and keeps the
    matches, at most `limit` and as many as fit in `max_bytes` (at least one): every call is
    bounded, and the caller pages on from `last` when the window held fewer matches than it asked
    for. The class is one primary-key probe per timer."""
    clause, params = _list_where(tenant, status, labels, due_after, due_before, after)
    checks = ["true"]
    if host is not None:
        checks.append(_host_condition("s.url", host, params))
    if error_class is not None:
        checks.append(f"{_latest_error_class('s.id')} = :error_class")
        params["error_class"] = error_class
    statement = text(f"""
        WITH scanned AS MATERIALIZED (
            SELECT id, due_at, url FROM timers {clause} ORDER BY due_at, id LIMIT :window
        ), edge AS (
            SELECT count(*) AS scanned_count,
                   (SELECT due_at FROM scanned ORDER BY due_at DESC, id DESC LIMIT 1) AS edge_due,
                   (SELECT id FROM scanned ORDER BY due_at DESC, id DESC LIMIT 1) AS edge_id
            FROM scanned
        ), hits AS MATERIALIZED (
            SELECT s.id AS hit_id, s.due_at AS hit_due FROM scanned s WHERE {" AND ".join(checks)}
            ORDER BY s.due_at, s.id LIMIT :limit
        ), kept AS (
            SELECT hit_id FROM (
                SELECT hit_id, sum(hit_bytes) OVER (ORDER BY hit_due, hit_id) - hit_bytes AS bytes_before
                FROM (
                    SELECT hit_id, hit_due, (SELECT {ROW_BYTES} FROM timers WHERE id = hit_id) AS hit_bytes
                    FROM hits
                ) AS sized
            ) AS running WHERE bytes_before < :max_bytes
        )
        SELECT edge.scanned_count, edge.edge_due, edge.edge_id, (SELECT count(*) FROM hits) AS hit_count,
               matched.*
        FROM edge LEFT JOIN (
            SELECT {_TIMER_COLUMNS} FROM timers JOIN kept ON timers.id = kept.hit_id
        ) AS matched ON true
        ORDER BY matched.due_at, matched.id
    """)
    params.update(window=window, limit=limit, max_bytes=max_bytes)
    rows: list[TimerRow] = []
    scanned, hits, last = 0, 0, None
    for row in await conn.execute(statement, params):
        values = dict(row._mapping)
        scanned, hits = int(values.pop("scanned_count")), int(values.pop("hit_count"))
        edge_due, edge_id = values.pop("edge_due"), values.pop("edge_id")
        last = None if edge_id is None else (edge_due, int(edge_id))
        if values["id"] is not None:
            rows.append(_timer_row(values))
    return ScannedTimers(rows=rows, scanned=scanned, last=last, cut=hits > len(rows))


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    timer_id: int
    attempt: int
    started_at: datetime
    duration_ms: float
    status_code: int | None
    error_class: str | None
    error_message: str | None
    response_body: str | None


_INSERT_ATTEMPTS = text("""
INSERT INTO timer_attempts (timer_id, attempt, started_at, duration_ms, status_code, error_class,
                            error_message, response_body)
SELECT * FROM unnest(CAST(:timer_ids AS bigint[]), CAST(:attempts AS integer[]),
                     CAST(:started AS timestamptz[]), CAST(:durations AS double precision[]),
                     CAST(:codes AS integer[]), CAST(:classes AS text[]), CAST(:messages AS text[]),
                     CAST(:bodies AS text[]))
ON CONFLICT DO NOTHING
""")


async def insert_attempts(conn: AsyncConnection, *, records: Sequence[AttemptRecord]) -> None:
    """Append rows to the attempt log (one statement for the batch)."""
    if not records:
        return
    await conn.execute(
        _INSERT_ATTEMPTS,
        {
            "timer_ids": [r.timer_id for r in records],
            "attempts": [r.attempt for r in records],
            "started": [r.started_at for r in records],
            "durations": [r.duration_ms for r in records],
            "codes": [r.status_code for r in records],
            "classes": [r.error_class for r in records],
            "messages": [r.error_message for r in records],
            "bodies": [r.response_body for r in records],
        },
    )


# Attempts per page of GET /timer/{id}/attempts (its `limit`'s default and most).
ATTEMPTS_PAGE = 1000
_LIST_ATTEMPTS = text("""
SELECT timer_id, attempt, started_at, duration_ms, status_code, error_class, error_message,
       response_body
FROM timer_attempts WHERE timer_id = :id AND attempt > :after ORDER BY attempt LIMIT :limit
""")


async def list_attempts(
    conn: AsyncConnection, *, timer_id: int, after: int = 0, limit: int = ATTEMPTS_PAGE
) -> list[AttemptRecord]:
    """The timer's attempts numbered after `after`, in order, at most `limit`: a timer retried
    by hand again and again can have any number of them."""
    params = {"id": timer_id, "after": after, "limit": limit}
    return [AttemptRecord(**row._mapping) for row in await conn.execute(_LIST_ATTEMPTS, params)]


_LOCK_IDEMPOTENCY_KEY = text("SELECT pg_advisory_xact_lock(hashtextextended(:tenant || '/' || :key, 0))")
_FIND_IDEMPOTENCY_KEY = text("""
SELECT request_hash, timer_id FROM idempotency_keys
WHERE tenant = :tenant AND key = :key
  AND created_at > now() - make_interval(secs => CAST(:window AS double precision))
""")
_SAVE_IDEMPOTENCY_KEY = text("""
INSERT INTO idempotency_keys (tenant, key, request_hash, timer_id) VALUES (:tenant, :key, :hash, :timer_id)
ON CONFLICT (tenant, key) DO UPDATE
SET request_hash = EXCLUDED.request_hash, timer_id = EXCLUDED.timer_id, created_at = now()
""")


async def find_idempotency_key(
    conn: AsyncConnection, *, tenant: str, key: str, window_seconds: float
) -> tuple[str, int] | None:
    """Lock `key` for this transaction (same-key requests queue here), then read it if fresh."""
    await conn.execute(_LOCK_IDEMPOTENCY_KEY, {"tenant": tenant, "key": key})
    params = {"tenant": tenant, "key": key, "window": window_seconds}
    row = (await conn.execute(_FIND_IDEMPOTENCY_KEY, params)).one_or_none()
    return None if row is None else (row.request_hash, row.timer_id)


async def save_idempotency_key(
    conn: AsyncConnection, *, tenant: str, key: str, request_hash: str, timer_id: int
) -> None:
    params = {"tenant": tenant, "key": key, "hash": request_hash, "timer_id": timer_id}
    await conn.execute(_SAVE_IDEMPOTENCY_KEY, params)


_COUNT_PENDING = text("""
SELECT count(*) FROM (
    SELECT 1 FROM timers WHERE tenant = :tenant AND status = 'pending' LIMIT :upto
) AS capped
""")


async def count_pending(conn: AsyncConnection, *, tenant: str, upto: int) -> int:
    """The tenant's pending timers, counted up to `upto` (enough to enforce a cap)."""
    return int((await conn.execute(_COUNT_PENDING, {"tenant": tenant, "upto": upto})).scalar_one())


_CLAIM_TEMPLATE = """
UPDATE timers
SET status = 'firing',
    attempts = least(attempts, 2147483646) + 1,  -- never overflows: a counter at the limit is quarantined
    lease_owner = :owner,
    lease_expires_at = greatest(due_at, now()) + make_interval(secs => CAST(:lease_seconds AS double precision)),
    updated_at = now()
WHERE id = ANY(ARRAY(
    SELECT id FROM timers AS t
    WHERE status = 'pending'
      AND due_at <= now() + make_interval(secs => CAST(:lookahead_seconds AS double precision))
      AND {which}
    ORDER BY due_at, id
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
))
RETURNING {returning}
"""
# The body as jsonb's text, never parsed here (RawJson): a claim holds it until it is sent.
_CLAIMED_COLUMNS = _select_list(CLAIMED_TIMER, computed={"attempt": "attempts", "body": "body::text"})
# A destination that is paused, or whose circuit breaker is not closed, holds its timers (pending,
# attempts untouched); a limited one's go out through the flow-control claim (claim_limited); one
# past its lateness cutoff is still claimed here, to be expired unsent.
_NOT_HELD = f"""(t.destination IS NULL OR t.deliver_before < now() OR NOT EXISTS (
        SELECT 1 FROM destinations AS d
        WHERE d.tenant = t.tenant AND d.key = t.destination AND ({HOLDING_OR_LIMITED})))"""
_CLAIM_DUE = text(_CLAIM_TEMPLATE.format(which=_NOT_HELD, returning=_CLAIMED_COLUMNS))
# The same, passing by the destinations (keys, in any tenant) this instance has a backlog of
# waiting for their host's slots (delivery/host_slots.py); only while there are some.
_CLAIM_DUE_SPARING = text(
    _CLAIM_TEMPLATE.format(
        which=f"{_NOT_HELD} AND (t.destination IS NULL OR t.destination <> ALL(CAST(:sparing AS text[])))",
        returning=_CLAIMED_COLUMNS,
    )
)
# A half-open destination's probe: its earliest due timer (the claim took the probe for it).
_CLAIM_PROBE = text(
    _CLAIM_TEMPLATE.format(
        which="t.tenant = :tenant AND t.destination = :destination", returning=_CLAIMED_COLUMNS
    )
)


_CLOCK = text("SELECT clock_timestamp()")


async def database_clock(conn: AsyncConnection) -> datetime:
    """The database's clock now (`clock_timestamp()`, not the transaction's `now()`)."""
    now: datetime = (await conn.execute(_CLOCK)).scalar_one()
    return now


# The claim counts attempts up to here and no further (`attempts` is an integer column).
_ATTEMPTS_LIMIT = INT4_MAX


@dataclass(frozen=True, slots=True)
class Unprocessable:
    """A claimed row that could not be made a ClaimedTimer, and why."""

    timer_id: int
    attempt: int
    reason: str


@dataclass(frozen=True, slots=True)
class Claim:
    timers: list[ClaimedTimer]  # earliest due first
    unprocessable: list[Unprocessable]  # to be quarantined in the claim's transaction


def _finite_time(value: object, column: str) -> None:
    # db.py reads ±infinity and years outside 1-9999 as the earliest or latest instant.
    if not isinstance(value, datetime) or value.tzinfo is None or value in (EARLIEST_TIME, LATEST_TIME):
        raise ValueError(f"{column} is not a finite time within years 1-9999: {value!r}")


def _claimed_timer(m: RowMapping) -> ClaimedTimer:
    """The row as a ClaimedTimer; raises on values the dispatcher cannot handle."""
    if not isinstance(m["headers"], dict) or not isinstance(m["labels"], dict):
        raise ValueError("headers and labels must be JSON objects")
    if not 0 < m["attempt"] < _ATTEMPTS_LIMIT:
        raise ValueError(f"the attempt counter is out of range: {m['attempt']}")
    for name in ("due_at", "lease_expires_at"):
        _finite_time(m[name], name)
    for name in ("deliver_before", "occurrence_at"):
        if m[name] is not None:
            _finite_time(m[name], name)
    timer = CLAIMED_TIMER.build({**m, "body": body_from_text(m["body"])})
    if (problem := timer.retry.problem()) is not None:
        # e.g. an infinite timeout: no heartbeat could ever vouch for it, so the timer would be
        # claimed and returned unsent on every turn, forever
        raise ValueError(problem)
    return timer


async def claim_due(
    conn: AsyncConnection,
    *,
    owner: str,
    lookahead_seconds: float,
    lease_seconds: float,
    limit: int,
    sparing: Sequence[str] = (),
) -> Claim:
    """pending → firing for timers due within the lookahead, leased to `owner`, earliest first,
    but those their destination holds (paused, or its breaker not closed) and those of the
    destinations `sparing` (this instance has enough of them waiting). A row that cannot be
    made a ClaimedTimer is returned apart, to be failed as unprocessable; it never fails the others."""
    params: dict[str, object] = {
        "owner": owner,
        "lookahead_seconds": lookahead_seconds,
        "lease_seconds": lease_seconds,
        "limit": limit,
    }
    if sparing:
        result = await conn.execute(_CLAIM_DUE_SPARING, {**params, "sparing": list(sparing)})
    else:
        result = await conn.execute(_CLAIM_DUE, params)
    return _claim_of(result)


def _claim_of(result: Result[Any]) -> Claim:
    claimed: list[ClaimedTimer] = []
    unprocessable: list[Unprocessable] = []
    for row in result:
        try:
            claimed.append(_claimed_timer(row._mapping))
        except Exception as exc:  # noqa: BLE001 - one bad row fails only itself
            unprocessable.append(Unprocessable(row.id, row.attempt, f"cannot be claimed: {exc!r}"))
    claimed.sort(key=lambda c: (c.due_at, c.id))
    return Claim(claimed, unprocessable)


async def claim_probe(
    conn: AsyncConnection,
    *,
    owner: str,
    tenant: str,
    destination: str,
    lookahead_seconds: float,
    lease_seconds: float,
) -> Claim:
    """pending → firing for the one timer a half-open destination's probe sends: its earliest
    due within the lookahead (the destination's breaker is taken by this transaction)."""
    params = {
        "owner": owner,
        "tenant": tenant,
        "destination": destination,
        "lookahead_seconds": lookahead_seconds,
        "lease_seconds": lease_seconds,
        "limit": 1,
    }
    return _claim_of(await conn.execute(_CLAIM_PROBE, params))


# The flow-control claim: for each destination, at most its allowance of its timers due now
# (not ahead: a limited timer is sent when claimed), earliest first. One statement for every
# destination; the subquery runs once (`id = ANY(ARRAY(...))`, see the module's docstring).
_CLAIM_LIMITED = text(f"""
UPDATE timers
SET status = 'firing',
    flow_claimed = true,
    attempts = attempts + 1,
    lease_owner = :owner,
    lease_expires_at = greatest(due_at, now()) + make_interval(secs => CAST(:lease_seconds AS double precision)),
    updated_at = now()
WHERE id = ANY(ARRAY(
    SELECT picked.id
    FROM unnest(CAST(:tenants AS text[]), CAST(:keys AS text[]), CAST(:counts AS integer[]))
        AS a(tenant, key, allowed)
    CROSS JOIN LATERAL (
        SELECT t.id FROM timers AS t
        WHERE t.status = 'pending' AND t.destination IS NOT NULL
          AND t.tenant = a.tenant AND t.destination = a.key AND t.due_at <= now()
        ORDER BY t.due_at, t.id
        LIMIT a.allowed
        FOR UPDATE SKIP LOCKED
    ) AS picked
))
RETURNING {_CLAIMED_COLUMNS}
""")


async def claim_limited(
    conn: AsyncConnection, *, owner: str, allowances: Sequence[tuple[str, str, int]], lease_seconds: float
) -> Claim:
    """pending → firing for at most `allowed` due timers of each (tenant, destination, allowed),
    earliest first; the caller holds the destinations' rows locked (destinations/flow.py)."""
    params = {
        "owner": owner,
        "tenants": [a[0] for a in allowances],
        "keys": [a[1] for a in allowances],
        "counts": [a[2] for a in allowances],
        "lease_seconds": lease_seconds,
    }
    return _claim_of(await conn.execute(_CLAIM_LIMITED, params))


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one attempt, to be recorded under the lease it was made with."""

    timer_id: int
    attempt: int
    error: str | None = None
    retry_in_seconds: float = 0.0
    record: AttemptRecord | None = None  # the attempt log row, when a request was made


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


def _finish_with_error(status: str) -> TextClause:
    """firing → `status` for a batch, each row with its error text (fenced like every finish)."""
    return text(f"""
UPDATE timers AS t
SET status = '{status}', last_error = o.error, lease_owner = NULL, lease_expires_at = NULL,
    updated_at = now()
FROM unnest(CAST(:ids AS bigint[]), CAST(:attempts AS integer[]), CAST(:errors AS text[]))
    AS o(id, attempt, error)
WHERE {_FENCE}
RETURNING t.id
""")


_MARK_FAILED = _finish_with_error("failed")
_MARK_EXPIRED = _finish_with_error("expired")
_SKIP_OCCURRENCES = _finish_with_error("cancelled")


async def _finish(
    conn: AsyncConnection, statement: TextClause, *, owner: str, outcomes: Sequence[Outcome]
) -> set[int]:
    """Run one fenced finishing UPDATE for a batch; returns the ids whose lease held. (Each
    statement uses the arrays it needs; text() ignores the others.)"""
    result = await conn.execute(
        statement,
        {
            "owner": owner,
            "ids": [o.timer_id for o in outcomes],
            "attempts": [o.attempt for o in outcomes],
            "delays": [o.retry_in_seconds for o in outcomes],
            "errors": [o.error for o in outcomes],
        },
    )
    return {row.id for row in result}


async def mark_delivered(conn: AsyncConnection, *, owner: str, outcomes: Sequence[Outcome]) -> set[int]:
    """firing → delivered, for many timers in one statement; returns the ids whose lease held."""
    return await _finish(conn, _MARK_DELIVERED, owner=owner, outcomes=outcomes)


async def schedule_retry(conn: AsyncConnection, *, owner: str, outcomes: Sequence[Outcome]) -> set[int]:
    """firing → pending, due again `retry_in_seconds` from now; returns the ids whose lease held."""
    return await _finish(conn, _SCHEDULE_RETRY, owner=owner, outcomes=outcomes)


async def mark_failed(conn: AsyncConnection, *, owner: str, outcomes: Sequence[Outcome]) -> set[int]:
    """firing → failed (attempts used up, or not retryable); returns the ids whose lease held."""
    return await _finish(conn, _MARK_FAILED, owner=owner, outcomes=outcomes)


async def mark_expired(conn: AsyncConnection, *, owner: str, outcomes: Sequence[Outcome]) -> set[int]:
    """firing → expired: delivery would have started after `deliver_before`; nothing was sent."""
    return await _finish(conn, _MARK_EXPIRED, owner=owner, outcomes=outcomes)


_RETURN_LEASES = text(f"""
UPDATE timers AS t
SET status = 'pending', attempts = t.attempts - 1, lease_owner = NULL, lease_expires_at = NULL,
    updated_at = now()
FROM unnest(CAST(:ids AS bigint[]), CAST(:attempts AS integer[])) AS o(id, attempt)
WHERE {_FENCE}
RETURNING t.id
""")


async def return_leases(conn: AsyncConnection, *, owner: str, outcomes: Sequence[Outcome]) -> set[int]:
    """firing → pending: claimed timers this instance returns unsent; the attempt is undone."""
    return await _finish(conn, _RETURN_LEASES, owner=owner, outcomes=outcomes)


_EXTEND_LEASES = text("""
UPDATE timers
SET lease_expires_at = now() + make_interval(secs => CAST(:lease_seconds AS double precision))
WHERE id = ANY(CAST(:ids AS bigint[])) AND status = 'firing' AND lease_owner = :owner
""")


async def extend_leases(
    conn: AsyncConnection, *, owner: str, timer_ids: list[int], lease_seconds: float
) -> int:
    """Heartbeat: the leases `owner` still works on last `lease_seconds` from the database's now.
    Only those: a row the owner no longer holds in memory (its outcome write was lost) must lapse
    and be taken over, not be kept alive by the owner's other work."""
    params = {"owner": owner, "ids": timer_ids, "lease_seconds": lease_seconds}
    result = await conn.execute(_EXTEND_LEASES, params)
    return result.rowcount


# A lapsed lease is an attempt without an attempt record (every written outcome has one, and a
# returned lease undoes its attempt): lapses since the last redrive = attempts - records.
_LAPSES = """(CAST(t.attempts AS bigint) - t.attempts_before_redrive - (
        SELECT count(*) FROM timer_attempts AS a
        WHERE a.timer_id = t.id AND a.attempt > t.attempts_before_redrive))"""

_FAIL_LAPSED_LEASES = text(f"""
UPDATE timers
SET status = 'failed', lease_owner = NULL, lease_expires_at = NULL, updated_at = now(),
    last_error = 'unprocessable: lease_expired: the lease lapsed ' || CAST(:max_lapses AS integer)
                 || ' times (each instance firing it crashed or stalled)'
WHERE id = ANY(ARRAY(
    SELECT id FROM timers AS t
    WHERE t.status = 'firing' AND t.lease_expires_at < now() AND {_LAPSES} >= CAST(:max_lapses AS integer)
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
))
""")

_EXPIRE_LEASES = text("""
UPDATE timers
SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL, updated_at = now(),
    last_error = 'lease expired: the instance firing it stopped before finishing'
WHERE id = ANY(ARRAY(
    SELECT id FROM timers
    WHERE status = 'firing' AND lease_expires_at < now()
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
))
""")


@dataclass(frozen=True, slots=True)
class LapsedLeases:
    returned: int  # firing → pending: they fire again
    failed: int  # firing → failed: lapsed `max_lapses` times


async def expire_leases(conn: AsyncConnection, *, limit: int, max_lapses: int) -> LapsedLeases:
    """firing → pending for timers whose owner let the lease lapse (crashed); they fire again,
    unless this was their `max_lapses`-th lapse: firing → failed, so a timer that crashes or
    stalls every instance firing it is not claimed forever."""
    params = {"limit": limit, "max_lapses": max_lapses}
    failed = (await conn.execute(_FAIL_LAPSED_LEASES, params)).rowcount
    returned = (await conn.execute(_EXPIRE_LEASES, {"limit": limit})).rowcount
    return LapsedLeases(returned=returned, failed=failed)


# -- a schedule's runs (schedules/engine.py decides; these make the transitions) -----------------

_CANCEL_OCCURRENCES = text("""
UPDATE timers SET status = 'cancelled', last_error = :reason, updated_at = now()
WHERE id = ANY(ARRAY(
    SELECT id FROM timers
    WHERE schedule_id = :schedule_id AND occurrence_at IS NOT NULL AND status = 'pending'
    FOR UPDATE SKIP LOCKED
))
RETURNING id
""")


async def cancel_occurrences(conn: AsyncConnection, *, schedule_id: int, reason: str) -> list[int]:
    """pending → cancelled for the series runs of a schedule (paused, edited or deleted). A run
    locked by a claim at this moment is skipped, not waited for: the claim holds it and then waits
    for the schedule's row, which the caller holds (waiting here would deadlock)."""
    result = await conn.execute(_CANCEL_OCCURRENCES, {"schedule_id": schedule_id, "reason": reason})
    return [row.id for row in result]


async def skip_occurrences(conn: AsyncConnection, *, owner: str, outcomes: Sequence[Outcome]) -> set[int]:
    """firing → cancelled: claimed runs their schedule skips (overlap or catch-up), unsent."""
    return await _finish(conn, _SKIP_OCCURRENCES, owner=owner, outcomes=outcomes)


_DEFER_OCCURRENCES = text(f"""
UPDATE timers AS t
SET status = 'pending', attempts = t.attempts - 1, due_at = now() + make_interval(secs => o.delay),
    lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
FROM unnest(CAST(:ids AS bigint[]), CAST(:attempts AS integer[]),
            CAST(:delays AS double precision[])) AS o(id, attempt, delay)
WHERE {_FENCE}
RETURNING t.id
""")


async def defer_occurrences(conn: AsyncConnection, *, owner: str, outcomes: Sequence[Outcome]) -> set[int]:
    """firing → pending, unsent and due again `retry_in_seconds` from now (the attempt undone):
    a run that waits for its schedule's previous run to finish (overlap `buffer_one`)."""
    return await _finish(conn, _DEFER_OCCURRENCES, owner=owner, outcomes=outcomes)


@dataclass(frozen=True, slots=True)
class ActiveRun:
    """A run of a schedule not finished yet (pending, firing or waiting for a retry)."""

    schedule_id: int
    timer_id: int
    status: TimerStatus
    occurrence_at: datetime | None
    attempts: int


_ACTIVE_RUNS = text("""
SELECT schedule_id, id AS timer_id, status, occurrence_at, attempts FROM timers
WHERE schedule_id = ANY(CAST(:schedule_ids AS bigint[])) AND status IN ('pending', 'firing')
""")


async def active_runs(conn: AsyncConnection, *, schedule_ids: Sequence[int]) -> list[ActiveRun]:
    rows = await conn.execute(_ACTIVE_RUNS, {"schedule_ids": list(schedule_ids)})
    return [
        ActiveRun(row.schedule_id, row.timer_id, TimerStatus(row.status), row.occurrence_at, row.attempts)
        for row in rows
    ]


_RUN_OCCURRENCES = text("""
SELECT occurrence_at FROM timers
WHERE schedule_id = :schedule_id AND occurrence_at = ANY(CAST(:occurrences AS timestamptz[]))
  AND status <> 'cancelled'
""")


async def occurrences_with_runs(
    conn: AsyncConnection, *, schedule_id: int, occurrences: Sequence[datetime]
) -> set[datetime]:
    """Which of `occurrences` have a run (not cancelled), as committed when the statement began:
    read without waiting for a run another transaction holds (a claim that then waits for the
    schedule's row, which the caller holds)."""
    rows = await conn.execute(
        _RUN_OCCURRENCES, {"schedule_id": schedule_id, "occurrences": list(occurrences)}
    )
    return {row.occurrence_at for row in rows}


# A schedule's runs as their lists show them (no request: GET /timer/{id} has it): a page of up
# to 1,000 runs reads no body, headers or labels (PAGE_BYTES says why that matters).
_RUN_COLUMNS = _select_list(
    TIMER_ROW, computed={"db_now": "now()", "body": "NULL", "headers": "'{}'::jsonb", "labels": "'{}'::jsonb"}
)


async def list_runs(
    conn: AsyncConnection, *, schedule_id: int, before_id: int | None, limit: int
) -> list[TimerRow]:
    """A schedule's runs, newest (highest id) first, before the keyset cursor `before_id`,
    without their requests (body None, headers and labels empty)."""
    params: dict[str, object] = {"schedule_id": schedule_id, "limit": limit}
    cursor = ""
    if before_id is not None:
        cursor = "AND id < :before_id"
        params["before_id"] = before_id
    statement = text(f"""
        SELECT {_RUN_COLUMNS} FROM timers WHERE schedule_id = :schedule_id {cursor}
        ORDER BY schedule_id DESC, id DESC LIMIT :limit
    """)
    return [_timer_row(row._mapping) for row in await conn.execute(statement, params)]


_LATEST_OUTCOMES = text(f"""
SELECT r.* FROM unnest(CAST(:schedule_ids AS bigint[])) AS s(id)
CROSS JOIN LATERAL (
    SELECT {_RUN_COLUMNS} FROM timers
    WHERE schedule_id = s.id AND status <> 'pending' AND (CAST(:tenant AS text) IS NULL OR tenant = :tenant)
    ORDER BY schedule_id DESC, id DESC LIMIT 1
) AS r
""")


async def latest_outcomes(
    conn: AsyncConnection, *, schedule_ids: Sequence[int], tenant: str | None
) -> list[TimerRow]:
    """Each schedule's newest run that is no longer pending (one walk down ix_timers_schedule_runs
    per schedule, past its few pending runs), without its request (as list_runs)."""
    if not schedule_ids:
        return []
    params = {"schedule_ids": list(schedule_ids), "tenant": tenant}
    return [_timer_row(row._mapping) for row in await conn.execute(_LATEST_OUTCOMES, params)]


_DELETE_FINISHED = text("""
DELETE FROM timers
WHERE id = ANY(ARRAY(
    SELECT id FROM timers
    WHERE status IN ('delivered', 'failed', 'expired', 'cancelled')
      AND updated_at < now() - make_interval(secs => CAST(:age AS double precision))
    ORDER BY updated_at
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
))
""")


async def delete_finished(conn: AsyncConnection, *, older_than_seconds: float, limit: int) -> int:
    """Retention: delete up to `limit` finished timers (their attempts and keys cascade)."""
    result = await conn.execute(_DELETE_FINISHED, {"age": older_than_seconds, "limit": limit})
    return result.rowcount


_DELETE_STALE_KEYS = text("""
DELETE FROM idempotency_keys
WHERE (tenant, key) IN (
    SELECT tenant, key FROM idempotency_keys
    WHERE created_at < now() - make_interval(secs => CAST(:age AS double precision))
    LIMIT :limit
)
""")


async def delete_stale_idempotency_keys(
    conn: AsyncConnection, *, older_than_seconds: float, limit: int
) -> int:
    result = await conn.execute(_DELETE_STALE_KEYS, {"age": older_than_seconds, "limit": limit})
    return result.rowcount


_PENDING_STATS = text("""
SELECT count(*) AS pending, count(*) FILTER (WHERE due_at <= now()) AS overdue
FROM timers WHERE status = 'pending'
""")


async def pending_stats(conn: AsyncConnection) -> tuple[int, int]:
    """(pending timers, pending timers already due): read from the partial index, on one core
    (a parallel scan of a big table would take both from the claims and the API)."""
    await conn.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))
    row = (await conn.execute(_PENDING_STATS)).one()
    return int(row.pending), int(row.overdue)
