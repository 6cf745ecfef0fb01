"""The scale benchmark's own parts on a real database: the fill, the query timings, the RSS
sampler (the whole scenario takes minutes: `python -m bench --full --only scale`)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import asyncpg
import pytest

from bench import scale
from task_scheduler.db import asyncpg_dsn


async def test_the_fill_writes_pending_timers_spread_over_tenants_and_a_month(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scale, "CHUNK", 500)  # three transactions for 1,200 rows
    fill = await scale._fill(database_url, 1200)
    assert fill["rows"] == 1200
    assert fill["table_with_indexes_mb"] >= 0
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        row = await conn.fetchrow(
            "SELECT count(*) AS n, count(DISTINCT id) AS ids, count(DISTINCT tenant) AS tenants,"
            " count(*) FILTER (WHERE tenant = 'default') AS own,"
            " bool_and(status = 'pending') AS pending,"
            " min(due_at) > now() + interval '23 hours' AS from_tomorrow,"
            " max(due_at) < now() + interval '32 days' AS within_a_month,"
            " bool_and(labels ? 'customer') AS labelled FROM timers"
        )
    finally:
        await conn.close()
    assert dict(row) == {
        "n": 1200,
        "ids": 1200,
        "tenants": 20,
        "own": 60,
        "pending": True,
        "from_tomorrow": True,
        "within_a_month": True,
        "labelled": True,
    }


async def test_the_service_queries_are_timed_on_the_table(database_url: str) -> None:
    timings = await scale._time_queries(database_url)
    assert set(timings) == {"pending_stats", "count_pending_default", "claim_due"}
    assert all(ms >= 0 for ms in timings.values())


async def test_the_rss_sampler_reads_a_live_process_and_stops_when_told() -> None:
    stop = asyncio.Event()
    sampler = asyncio.create_task(scale._peak_rss_mb(os.getpid(), stop))
    await asyncio.sleep(0.6)
    stop.set()
    peak = await asyncio.wait_for(sampler, timeout=5)
    assert peak > 10  # MB: this Python process
    assert scale._rss_kb(2**22 + 12345) == 0  # no such process


async def test_every_dashboard_page_is_timed_on_the_filled_table(database_url: str, tmp_path: Path) -> None:
    """A real service on a small filled table; every page answered 200 (else the run fails)."""
    await scale._fill(database_url, 300)
    timings = await scale._time_pages(database_url, tmp_path)
    assert set(timings) == set(scale.PAGES)
    assert all(ms > 0 for ms in timings.values())
