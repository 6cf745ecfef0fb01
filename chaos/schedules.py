"""The recurring-schedules scenario: a few schedules firing every second (`* * * * * *`, catch-up
`all` with a window longer than the run) on three instances of one database, while instances are
killed with SIGKILL and restarted; then every occurrence of the covered range is checked in both
sources:

- the database: exactly one run (timer row) per (schedule, occurrence), none missing, none
  doubled, none outside the range (`start_at`/`end_at` bound it);
- the receiver: every occurrence delivered (a 2xx), counted by `X-Schedule-Id` and
  `X-Schedule-Occurrence`; the headers of every request match its run's row.

A run is a timer, so the timers' invariants apply to the runs as they are (`chaos.analysis`):
never early (before its occurrence), one `webhook-id` per run, no duplicate outside crash windows.
A duplicate inside a crash window (the killed instance had sent the webhook and died before
recording it; the run is sent again under the same `webhook-id`) is at-least-once delivery as for
any timer: counted and shown, not a violation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from chaos.analysis import AttemptRow, Record, Result, TimerRow, analyse, percentile, read_records
from chaos.cluster import SERVICE_ENV, Cluster, ReceiverProcess
from chaos.faults import Context, Injector
from chaos.workload import Creator, rfc3339
from task_scheduler.db import asyncpg_dsn

log = logging.getLogger("chaos")

CRON = "* * * * * *"
LEAD_SECONDS = 8.0  # from the first create to the first occurrence
CATCHUP_WINDOW_SECONDS = 600.0  # longer than the whole run: no occurrence is old enough to skip
QUIET_WITHIN = 120.0  # after the last occurrence, at most this long for every run to finish
STRAGGLERS_SECONDS = 2.0
MAX_ATTEMPTS = int(SERVICE_ENV["SCHEDULER_MAX_ATTEMPTS"])


async def run_schedules(
    name: str,
    inject: Injector,
    *,
    schedules: int,
    seconds: int,
    database_url: str,
    workdir: Path,
) -> Result:
    """`schedules` schedules, each with an occurrence every second for `seconds` seconds, under
    `inject`; every process it starts is stopped on the way out."""
    started = time.monotonic()
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    receiver = ReceiverProcess(workdir)
    cluster = Cluster(database_url=database_url, workdir=workdir)
    ctx: Context | None = None
    faults: asyncio.Task[None] | None = None
    try:
        receiver.start()
        await receiver.wait_ready()
        await cluster.start()
        t0 = float(math.ceil(time.time() + LEAD_SECONDS))  # the first occurrence: a whole second
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            creator = Creator(
                urls=cluster.ready_urls, session=session, deadline=time.monotonic() + LEAD_SECONDS
            )
            ids = await _create(creator, receiver.url, count=schedules, t0=t0, seconds=seconds)
            ctx = Context(cluster, receiver, database_url, t0, float(seconds), creator)
            faults = asyncio.create_task(inject(ctx))
            await faults
            restarts = await asyncio.gather(*ctx.background, return_exceptions=True)
        log.info("%s: faults done, waiting for every run to finish", name)
        still_open = await _wait_done(database_url, ids, until=t0 + seconds + QUIET_WITHIN)
        await asyncio.sleep(STRAGGLERS_SECONDS)
        await receiver.flush()
        runs = await _read_runs(database_url, ids)
        records = read_records(receiver.records_path)
        result = analyse(
            scenario=name,
            rows=[run.row for run in runs],
            attempts=await _read_attempts(database_url, ids),
            records=records,
            acknowledged=set(),
            faults=ctx.faults,
            max_attempts=MAX_ATTEMPTS,
            workload_end=t0 + seconds,
        )
        expected = {(sid, round((t0 + k) * 1000)) for sid in ids for k in range(seconds)}
        result.occurrence_problems, counts = check_occurrences(expected, runs, records, result.dup_inside)
        # Lateness from the occurrence, as a receiver sees it (a caught-up run is created late).
        first_ok: dict[int, float] = {}
        for record in sorted(records, key=lambda r: r.arrived):
            if record.ok:
                first_ok.setdefault(record.timer_id, record.arrived)
        result.lateness_ms = [
            (first_ok[run.row.id] - run.row.first_due) * 1000 for run in runs if run.row.id in first_ok
        ]
        late = result.lateness_ms
        result.notes.append(
            f"{len(ids)} schedules x {seconds} occurrences ({CRON}, catchup all): {counts}"
            + (
                f"; lateness from the occurrence p50 {percentile(late, 0.5):.0f} ms, "
                f"p99 {percentile(late, 0.99):.0f} ms, max {max(late):.0f} ms"
                if late
                else ""
            )
        )
        if still_open:
            result.notes.append(f"{still_open} runs still pending or firing, or schedules not ended")
        failed_restarts = [r for r in restarts if isinstance(r, BaseException)]
        if failed_restarts:
            result.notes.append(f"{len(failed_restarts)} restarts failed: {failed_restarts[0]!r}")
        result.seconds = time.monotonic() - started
        result.t0 = t0
        return result
    finally:
        background = [*([faults] if faults else []), *(ctx.background if ctx else [])]
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        cluster.stop()
        receiver.stop()


async def _create(creator: Creator, url: str, *, count: int, t0: float, seconds: int) -> list[int]:
    """The schedules, bounded by start_at and end_at half a second around the covered range."""
    body = {
        "cron": CRON,
        "url": url,
        "start_at": rfc3339(t0 - 0.5),
        "end_at": rfc3339(t0 + seconds - 0.5),
        "catchup": "all",
        "catchup_window_seconds": CATCHUP_WINDOW_SECONDS,
        "labels": {"chaos": "schedules"},
    }
    ids = []
    for _ in range(count):
        schedule_id = await creator.schedule(body)
        if schedule_id is None:
            raise RuntimeError("no instance created a schedule before the first occurrence")
        ids.append(schedule_id)
    if time.time() > t0 - 1:
        raise RuntimeError("creating the schedules took until their first occurrence")
    return ids


class Run:
    """A run's row as the analysis of timers reads it, and the occurrence it stands for."""

    def __init__(self, row: Any) -> None:
        self.schedule_id: int = row["schedule_id"]
        occurrence: datetime = row["occurrence_at"]
        self.occurrence_ms = round(occurrence.timestamp() * 1000)
        self.row = TimerRow(
            id=row["id"],
            status=row["status"],
            created_at=row["created_at"].timestamp(),
            first_due=occurrence.timestamp(),  # jitter 0: due at its occurrence (due_at moves on retries)
            webhook_id="msg_" + row["delivery_id"].replace("-", ""),
            attempts=row["attempts"],
        )


def check_occurrences(
    expected: set[tuple[int, int]], runs: list[Run], records: list[Record], crash_window_dups: list[int]
) -> tuple[list[str], str]:
    """The violations (empty when every occurrence has exactly one run and was delivered), and the
    counts. Keys are (schedule id, occurrence in ms since the epoch)."""
    problems: list[str] = []
    rows = Counter((run.schedule_id, run.occurrence_ms) for run in runs)
    by_timer = {run.row.id: (run.schedule_id, run.occurrence_ms) for run in runs}
    missing = sorted(expected - rows.keys())
    doubled = sorted(key for key, n in rows.items() if n > 1)
    outside = sorted(rows.keys() - expected)
    delivered: Counter[tuple[int, int]] = Counter()
    mismatched = 0
    for record in records:
        key = by_timer.get(record.timer_id)
        said = _header_key(record)
        if key is None or said != key:
            mismatched += 1
        elif record.ok:
            delivered[key] += 1
    undelivered = sorted(expected - delivered.keys())
    twice = sorted(key for key, n in delivered.items() if n > 1)
    for what, keys in (
        ("occurrences without a run", missing),
        ("occurrences with more than one run", doubled),
        ("runs outside the covered range", outside),
        ("occurrences never delivered", undelivered),
    ):
        if keys:
            shown = ", ".join(f"{sid}@{rfc3339(ms / 1000)}" for sid, ms in keys[:5])
            problems.append(f"{len(keys)} {what} ({shown})")
    if mismatched:
        problems.append(f"{mismatched} requests whose schedule headers are not their run's")
    counts = (
        f"{len(expected)} occurrences expected; rows: {sum(1 for k in expected if rows[k] == 1)} with exactly "
        f"one run, {len(missing)} missing, {len(doubled)} doubled, {len(outside)} outside; receiver: "
        f"{len(expected) - len(undelivered)} delivered, {len(undelivered)} missing, {len(twice)} delivered "
        f"twice ({len(crash_window_dups)} of them inside a crash window, same webhook-id)"
    )
    return problems, counts


def _header_key(record: Record) -> tuple[int, int] | None:
    if record.schedule_id is None or record.occurrence is None:
        return None
    try:
        return int(record.schedule_id), round(datetime.fromisoformat(record.occurrence).timestamp() * 1000)
    except ValueError:
        return None


_RUNS = """
SELECT id, status, created_at, delivery_id::text AS delivery_id, attempts, schedule_id, occurrence_at
FROM timers WHERE schedule_id = ANY($1::bigint[]) AND occurrence_at IS NOT NULL
"""


async def _read_runs(database_url: str, ids: list[int]) -> list[Run]:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        return [Run(row) for row in await conn.fetch(_RUNS, ids)]
    finally:
        await conn.close()


async def _read_attempts(database_url: str, ids: list[int]) -> list[AttemptRow]:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        rows = await conn.fetch(
            "SELECT timer_id, attempt, started_at, status_code, error_class FROM timer_attempts"
            " WHERE timer_id IN (SELECT id FROM timers WHERE schedule_id = ANY($1::bigint[])"
            " AND status <> 'delivered')",
            ids,
        )
    finally:
        await conn.close()
    return [
        AttemptRow(
            r["timer_id"], r["attempt"], r["started_at"].timestamp(), r["status_code"], r["error_class"]
        )
        for r in rows
    ]


async def _wait_done(database_url: str, ids: list[int], *, until: float) -> int:
    """Wait until every schedule has ended and none of its runs is pending or firing (or the wall
    time `until`); returns how many runs or schedules are not done."""
    left = -1
    while True:
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            conn = await asyncpg.connect(asyncpg_dsn(database_url), timeout=10)
            try:
                left = await conn.fetchval(
                    "SELECT (SELECT count(*) FROM timers WHERE schedule_id = ANY($1::bigint[])"
                    " AND status IN ('pending', 'firing'))"
                    " + (SELECT count(*) FROM schedules WHERE id = ANY($1::bigint[]) AND status <> 'ended')",
                    ids,
                )
            finally:
                await conn.close()
        if left == 0 or time.time() > until:
            return max(left, 0)
        await asyncio.sleep(0.5)
