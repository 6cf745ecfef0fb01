"""Recurring schedules (issue 14): how fast they are created through the API, and a burst of their
runs: many active schedules, some of them due in the same second."""

from __future__ import annotations

import asyncio
import math
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from bench.common import Row, correctness
from bench.harness import Delivered, Receiver, connect, fresh_database, ordinary_closed_loop, start_service
from task_scheduler.schedules.models import schedules
from task_scheduler.timers.models import timers

# Once a year (1 January, 00:00 UTC): a schedule that is active, with its pending run, and never
# fires while a benchmark runs.
IDLE_SCHEDULE = {"cron": "0 0 1 1 *", "url": "http://example.com/webhook"}
CONNECTIONS = 64


def daily_at(moment: datetime) -> str:
    """A 6-field expression (seconds first) whose next occurrence is `moment`'s whole second, UTC."""
    at = moment.astimezone(UTC)
    return f"{at.second} {at.minute} {at.hour} * * *"


async def schedule_create(server_url: str, workdir: Path, seconds: float = 10.0) -> Row:
    """POST /schedules as `create_installed` sends POST /timer: defaults, one ordinary aiohttp
    client, 64 connections, back to back (each create stores the schedule and its first run)."""
    proc = start_service(await fresh_database(server_url), workdir, "schedule-create")
    try:
        await proc.wait_ready()
        url = f"{proc.base_url}/schedules"
        await ordinary_closed_loop(url, CONNECTIONS, 2.0, IDLE_SCHEDULE, id_key="schedule_id")  # warm up
        result = await ordinary_closed_loop(url, CONNECTIONS, seconds, IDLE_SCHEDULE, id_key="schedule_id")
    finally:
        proc.terminate()
    result.pop("ids")
    return Row(
        "schedule create: POST /schedules, defaults, one aiohttp client, 64 connections",
        f"{result['per_second']:,} creates/s",
        ">= 2,000 creates/s, no errors",
        result["per_second"] >= 2000 and result["errors"] == 0,
        f"errors {result['errors']} {result['statuses']}",
        result,
    )


async def schedule_burst(server_url: str, workdir: Path, total: int = 100_000, due: int = 10_000) -> Row:
    """`total` active schedules, `due` of them firing once in the same second (a daily 6-field
    expression at that second), the others once a year. Two are created through the API, one of
    each kind; the rest are copies of their rows made in SQL (schedule and pending run), as the
    timer bursts insert their timers straight into the table: creating 100,000 through the API
    would measure the API again (schedule_create) and take minutes. Measured: the time from that
    second until every run was delivered, and the runs' lateness from their occurrence; checked:
    none lost, doubled or early, and every due schedule has its next run pending."""
    database_url = await fresh_database(server_url)
    receiver = Receiver(workdir)
    receiver.start()
    proc = start_service(database_url, workdir, "schedule-burst")
    conn: asyncpg.Connection | None = None
    try:
        await proc.wait_ready()
        conn = await connect(database_url)
        async with aiohttp.ClientSession(base_url=proc.base_url) as api:
            idle_id = await _create(api, IDLE_SCHEDULE)
            await _copy(conn, idle_id, total - due - 1)
            # The due second: far enough ahead for the copies to be made on a slow machine.
            fire_at = math.ceil(time.time() + 20.0)
            occurrence = datetime.fromtimestamp(fire_at, UTC)
            due_id = await _create(api, {"cron": daily_at(occurrence), "url": receiver.url})
            due_ids = [due_id, *await _copy(conn, due_id, due - 1)]
        margin = fire_at - time.time()
        await receiver.wait_for(due, within=max(0.0, margin) + 120)
        await asyncio.sleep(1.0)  # late duplicates would arrive by now
        runs = await conn.fetch(
            "SELECT id, extract(epoch FROM occurrence_at)::float8 AS due FROM timers"
            " WHERE schedule_id = ANY($1::bigint[]) AND occurrence_at = $2",
            due_ids,
            occurrence,
        )
        next_pending = await conn.fetchval(
            "SELECT count(DISTINCT schedule_id) FROM timers WHERE schedule_id = ANY($1::bigint[])"
            " AND status = 'pending' AND occurrence_at > $2",
            due_ids,
            occurrence,
        )
        active = await conn.fetchval("SELECT count(*) FROM schedules WHERE status = 'active'")
    finally:
        if conn is not None:
            await conn.close()
        proc.terminate()
        records = receiver.stop()
    delivered = Delivered.check(records, {r["id"]: r["due"] for r in runs})
    s = delivered.summary()
    all_in = delivered.last_arrival - fire_at
    details: dict[str, Any] = {
        **s,
        "all_in_s": round(all_in, 2),
        "active_schedules": active,
        "runs_due": len(runs),
        "next_run_pending": next_pending,
        "copies_done_before_due_s": round(margin, 1),
    }
    return Row(
        f"schedule burst: {total:,} active schedules, {due:,} due in the same second",
        f"all delivered {all_in:.1f} s after due; lateness p50 {s['lateness_p50_ms']} / "
        f"p99 {s['lateness_p99_ms']} ms",
        "all within 20 s, none lost, doubled or early; each has its next run",
        all_in <= 20
        and margin > 2.0
        and active == total
        and len(runs) == due
        and delivered.lost == delivered.duplicates == delivered.early == 0
        and next_pending == due,
        correctness(delivered) + f", next run pending {next_pending}/{due}",
        details,
    )


async def schedule_steady(server_url: str, workdir: Path, per_second: int = 1_000, seconds: int = 10) -> Row:
    """`per_second` schedule runs a second, `seconds` seconds in a row: for each second, one
    schedule with `jitter_seconds: 1` due then, created through the API, and `per_second - 1`
    copies made in SQL (as in schedule_burst), each copy's run given its own jitter as the service
    draws it (uniform over the second after the occurrence), so the runs arrive as a steady flow,
    not a burst per second. Lateness counts from each run's due time (occurrence plus jitter)."""
    database_url = await fresh_database(server_url)
    receiver = Receiver(workdir)
    receiver.start()
    proc = start_service(database_url, workdir, "schedule-steady")
    conn: asyncpg.Connection | None = None
    total = per_second * seconds
    try:
        await proc.wait_ready()
        conn = await connect(database_url)
        first_second = math.ceil(time.time() + 20.0)  # far enough ahead for the copies
        ids: list[int] = []
        async with aiohttp.ClientSession(base_url=proc.base_url) as api:
            for k in range(seconds):
                occurrence = datetime.fromtimestamp(first_second + k, UTC)
                schedule = {"cron": daily_at(occurrence), "url": receiver.url, "jitter_seconds": 1}
                original = await _create(api, schedule)
                ids += [original, *await _copy(conn, original, per_second - 1)]
        await conn.execute(
            "UPDATE timers SET due_at = occurrence_at + random() * interval '1 second'"
            " WHERE schedule_id = ANY($1::bigint[]) AND status = 'pending'",
            ids,
        )
        margin = first_second - time.time()
        await receiver.wait_for(total, within=max(0.0, margin) + seconds + 120)
        await asyncio.sleep(1.0)  # late duplicates would arrive by now
        runs = await conn.fetch(
            "SELECT id, extract(epoch FROM due_at)::float8 AS due FROM timers"
            " WHERE schedule_id = ANY($1::bigint[]) AND occurrence_at < $2",
            ids,
            datetime.fromtimestamp(first_second + seconds, UTC),
        )
    finally:
        if conn is not None:
            await conn.close()
        proc.terminate()
        records = receiver.stop()
    delivered = Delivered.check(records, {r["id"]: r["due"] for r in runs})
    s = delivered.summary()
    return Row(
        f"schedule runs, steady: {per_second:,}/s for {seconds} s (jittered daily schedules)",
        f"lateness p50 {s['lateness_p50_ms']} / p99 {s['lateness_p99_ms']} / max {s['lateness_max_ms']} ms",
        "as timers: p50 <= 5, p99 <= 50, max <= 250 ms",
        s["lateness_p50_ms"] <= 5
        and s["lateness_p99_ms"] <= 50
        and s["lateness_max_ms"] <= 250
        and margin > 2.0
        and len(runs) == total
        and delivered.lost == delivered.duplicates == delivered.early == 0,
        correctness(delivered),
        {**s, "runs_due": len(runs), "copies_done_before_due_s": round(margin, 1)},
    )


async def _create(api: aiohttp.ClientSession, schedule: dict[str, Any]) -> int:
    async with api.post("/schedules", json=schedule) as response:
        answer = await response.json()
        if response.status != 201:
            raise RuntimeError(f"POST /schedules answered {response.status}: {answer}")
    schedule_id: int = answer["schedule_id"]
    return schedule_id


_SCHEDULE_COLUMNS = ", ".join(c.name for c in schedules.c if c.name != "id")
_RUN_COLUMNS = [c.name for c in timers.c if c.name not in ("id", "delivery_id", "schedule_id")]
# Copies of a schedule's row and of its pending run (a new delivery_id each), `$2` at a time.
_COPY = f"""
WITH copies AS (
    INSERT INTO schedules ({_SCHEDULE_COLUMNS})
    SELECT {_SCHEDULE_COLUMNS} FROM schedules, generate_series(1, $2::int) AS n WHERE id = $1
    RETURNING id
)
INSERT INTO timers ({", ".join(_RUN_COLUMNS)}, schedule_id)
SELECT {", ".join("run." + name for name in _RUN_COLUMNS)}, copies.id
FROM copies, timers AS run WHERE run.schedule_id = $1 AND run.status = 'pending'
RETURNING schedule_id
"""
COPY_BATCH = 10_000


async def _copy(conn: asyncpg.Connection, schedule_id: int, count: int) -> list[int]:
    """`count` copies of the schedule and its pending run; their ids."""
    ids: list[int] = []
    while len(ids) < count:
        rows = await conn.fetch(_COPY, schedule_id, min(COPY_BATCH, count - len(ids)))
        if not rows:
            raise RuntimeError(f"schedule {schedule_id} has no pending run to copy")
        ids += [row["schedule_id"] for row in rows]
    return ids
