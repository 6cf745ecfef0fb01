"""The scale scenario: with 10,000,000 pending timers in the table, create p99 and firing
lateness p99 stay within 10 % of the empty table's, and an instance's RSS within 250 MB.
BENCH_SCALE_ROWS sets the row count (1000000 for a development run)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import BODY, Row, correctness
from bench.harness import (
    ONE_PROCESS,
    Delivered,
    Receiver,
    closed_loop,
    connect,
    fresh_database,
    insert_due,
    open_loop,
    start_service,
)
from task_scheduler.config import Settings
from task_scheduler.db import create_engine
from task_scheduler.timers import repository

RATE = 1000  # creates/s, then fires/s, as in create_latency and lateness_steady
SECONDS = 10
CHUNK = 500_000  # rows per fill transaction

# Due from tomorrow over 30 days, over 20 tenants with a label each. The benchmark creates as
# tenant 'default', which gets 1/20 of the rows: under its 1,000,000 pending cap up to 20M rows.
_FILL = """
INSERT INTO timers (url, due_at, tenant, labels)
SELECT 'https://hooks.example.com/reminder/' || i,
       now() + interval '1 day' + random() * interval '30 days',
       CASE WHEN i % 20 = 0 THEN 'default' ELSE 'tenant-' || (i % 20) END,
       jsonb_build_object('customer', (i % 1000)::text)
FROM generate_series($1::bigint, $2::bigint - 1) AS i
"""


async def scale(server_url: str, workdir: Path, rows: int | None = None) -> Row:
    rows = rows or int(os.environ.get("BENCH_SCALE_ROWS", "10000000"))
    database_url = await fresh_database(server_url)
    empty, _ = await _measure(database_url, workdir, "scale-empty")
    fill = await _fill(database_url, rows)
    queries_ms = await _time_queries(database_url)
    pages_ms = await _time_pages(database_url, workdir)
    full, delivered = await _measure(database_url, workdir, "scale-full")
    # The empty table again, after: one empty run before the fill cannot tell a slowdown from a
    # noisy minute on a shared machine; the figure is the mean of the two empty runs.
    empty_after, _ = await _measure(await fresh_database(server_url), workdir, "scale-empty-after")

    def empty_mean(*keys: str) -> float:
        a, b = (run[keys[0]][keys[1]] for run in (empty, empty_after))
        return float(a + b) / 2

    create = (full["create"]["p99_ms"], empty_mean("create", "p99_ms"))
    lateness = (full["lateness"]["lateness_p99_ms"], empty_mean("lateness", "lateness_p99_ms"))
    create_x, lateness_x = (f / max(e, 0.001) for f, e in (create, lateness))
    return Row(
        f"scale: {rows:,} pending timers in the table",
        f"create p99 {create[0]:.1f} vs {create[1]:.1f} ms empty, mean of before and after (x{create_x:.2f});"
        f" lateness p99 {lateness[0]:.1f} vs {lateness[1]:.1f} ms (x{lateness_x:.2f});"
        f" RSS max {full['rss_max_mb']:.0f} MB",
        "create p99 and lateness p99 within 10 % of empty; RSS <= 250 MB",
        create_x <= 1.1 and lateness_x <= 1.1 and full["rss_max_mb"] <= 250,
        correctness(delivered),
        {
            "fill": fill,
            "queries_ms": queries_ms,
            "pages_ms": pages_ms,
            "empty": empty,
            "full": full,
            "empty_after": empty_after,
        },
    )


async def _measure(database_url: str, workdir: Path, name: str) -> tuple[dict[str, Any], Delivered]:
    """A fresh service: time to ready, create latency (open loop), then lateness at RATE fires/s;
    its peak RSS all along."""
    started = time.monotonic()
    proc = start_service(database_url, workdir, name, **ONE_PROCESS)  # its RSS is one process's
    assert proc.process is not None
    receiver = Receiver(workdir)
    receiver.start()
    stop = asyncio.Event()
    sampler = asyncio.create_task(_peak_rss_mb(proc.process.pid, stop))
    try:
        conn = await connect(database_url)
        try:
            await proc.wait_ready()
            ready_s = round(time.monotonic() - started, 2)
            await closed_loop(f"{proc.base_url}/timer", 16, 1.0, BODY)  # warm up
            create = await open_loop(f"{proc.base_url}/timer", RATE, SECONDS, BODY)
            after_id = await conn.fetchval("SELECT coalesce(max(id), 0) FROM timers")
            await insert_due(conn, receiver.url, RATE * SECONDS, 3.0, SECONDS)
            await receiver.wait_for(RATE * SECONDS, within=SECONDS + 120)
            await asyncio.sleep(1.0)  # late duplicates would arrive by now
            due = await conn.fetch(
                "SELECT id, extract(epoch FROM due_at)::float8 AS due FROM timers WHERE id > $1 AND url = $2",
                after_id,
                receiver.url,
            )
        finally:
            await conn.close()
    finally:
        stop.set()
        rss_max_mb = await sampler
        proc.terminate()
        records = receiver.stop()
    delivered = Delivered.check(records, {r["id"]: r["due"] for r in due})
    summary = {
        "ready_s": ready_s,
        "create": create,
        "lateness": delivered.summary(),
        "rss_max_mb": rss_max_mb,
    }
    return summary, delivered


async def _peak_rss_mb(pid: int, stop: asyncio.Event, most_seconds: float = 3600.0) -> float:
    """The highest VmRSS of `pid`, read every 0.5 s until `stop` is set (at most `most_seconds`)."""
    peak_kb = 0
    for _ in range(int(most_seconds / 0.5)):
        peak_kb = max(peak_kb, _rss_kb(pid))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)
        if stop.is_set():
            break
    return round(peak_kb / 1024, 1)


def _rss_kb(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0  # the process has exited
    return next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)


async def _fill(database_url: str, rows: int) -> dict[str, Any]:
    """`rows` pending timers straight through SQL, CHUNK rows per transaction, with every index in
    place as if they had come through the API (dropping and rebuilding the indexes fills about
    twice as fast, but packs them tighter than real use would), then VACUUM ANALYZE."""
    conn = await connect(database_url)
    try:
        started = time.monotonic()
        for start in range(0, rows, CHUNK):
            end = min(start + CHUNK, rows)
            await conn.execute(_FILL, start, end)
            rate = end / (time.monotonic() - started)
            print(f"[scale] filled {end:,} of {rows:,} rows, {rate:,.0f} rows/s", flush=True)
        insert_s = time.monotonic() - started
        await conn.execute("VACUUM ANALYZE timers")
        vacuum_s = time.monotonic() - insert_s - started
        table_mb = await conn.fetchval("SELECT pg_total_relation_size('timers') / 1048576")
    finally:
        await conn.close()
    return {
        "rows": rows,
        "insert_s": round(insert_s, 1),
        "rows_per_s": round(rows / insert_s),
        "vacuum_analyze_s": round(vacuum_s, 1),
        "table_with_indexes_mb": table_mb,
    }


async def _time_queries(database_url: str) -> dict[str, float]:
    """The service's own queries over pending timers, timed once each on the filled table: the
    pending gauges, the pending-cap count of the benchmark's tenant, and a claim with none due."""
    cap = Settings.model_fields["max_pending_per_tenant"].default
    engine = create_engine(database_url, pool_size=1)
    timings: dict[str, float] = {}
    try:
        async with engine.connect() as conn:  # rolled back on the way out
            queries: dict[str, Callable[[], Awaitable[object]]] = {
                "pending_stats": lambda: repository.pending_stats(conn),
                "count_pending_default": lambda: repository.count_pending(
                    conn, tenant="default", upto=cap + 1
                ),
                "claim_due": lambda: repository.claim_due(
                    conn, owner="bench", lookahead_seconds=1.0, lease_seconds=30.0, limit=500
                ),
            }
            for name, query in queries.items():
                started = time.monotonic()
                await query()
                timings[name] = round((time.monotonic() - started) * 1000, 1)
    finally:
        await engine.dispose()
    return timings


# The dashboard's pages (issue 15: each within 200 ms of server time on the full table), as the
# local admin (a loopback browser in protected mode); {id} is a timer of the table.
PAGES = (
    "/ui",
    "/ui/timers",
    "/ui/timers?status=pending",
    "/ui/timers?label=customer:7",
    "/ui/timers?host=hooks.example.com",
    "/ui/timers?status=failed&error_class=timeout",
    "/ui/timers/{id}",
    "/ui/destinations",
    "/ui/schedules",
)
PAGE_RUNS = 5


async def _time_pages(database_url: str, workdir: Path) -> dict[str, float]:
    """Each dashboard page fetched PAGE_RUNS times over loopback from a fresh service on the
    filled table, after one warm-up fetch: the median in ms (server time plus a loopback round
    trip). A page that does not answer 200 is a failure of the run, not a figure."""
    conn = await connect(database_url)
    try:
        some_id = await conn.fetchval("SELECT id FROM timers ORDER BY id DESC LIMIT 1")
    finally:
        await conn.close()
    proc = start_service(database_url, workdir, "scale-pages")
    medians: dict[str, float] = {}
    try:
        await proc.wait_ready()
        async with aiohttp.ClientSession() as session:
            for page in PAGES:
                path = page.format(id=some_id)
                timings = []
                for _ in range(PAGE_RUNS + 1):
                    started = time.monotonic()
                    async with session.get(f"{proc.base_url}{path}") as answer:
                        await answer.read()
                        if answer.status != 200:
                            raise RuntimeError(f"{path} answered {answer.status}")
                    timings.append((time.monotonic() - started) * 1000)
                medians[page] = round(statistics.median(timings[1:]), 1)
                print(f"[scale] {page}: median {medians[page]} ms", flush=True)
    finally:
        proc.terminate()
    return medians
