"""The schedule benchmark's own parts (bench.schedules) on a real database: the expression that
fires at one given second, and the copies of a schedule with its pending run (the whole scenario:
`python -m bench --only schedule_burst`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest

from bench import schedules as bench_schedules
from task_scheduler.db import asyncpg_dsn
from task_scheduler.schedules import cron


def test_daily_at_fires_next_at_that_whole_second() -> None:
    now = datetime.now(UTC)
    for ahead in (1.5, 20.0, 3600.0, 86_000.0):
        moment = (now + timedelta(seconds=ahead)).replace(microsecond=0)
        expression = cron.parse(bench_schedules.daily_at(moment))
        assert cron.next_after(expression, now, ZoneInfo("UTC")) == moment


async def test_copies_have_their_own_pending_run_at_the_same_occurrence(
    api: httpx.AsyncClient, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bench_schedules, "COPY_BATCH", 10)  # three statements for 25 copies
    response = await api.post("/schedules", json={**bench_schedules.IDLE_SCHEDULE, "labels": {"k": "v"}})
    assert response.status_code == 201, response.text
    original = response.json()["schedule_id"]
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        copies = await bench_schedules._copy(conn, original, 25)
        assert len(copies) == len(set(copies)) == 25
        assert original not in copies
        row = await conn.fetchrow(
            "SELECT count(*) AS schedules, count(DISTINCT (cron, url, labels::text, next_occurrence_at)) AS kinds,"
            " bool_and(status = 'active') AS active FROM schedules"
        )
        assert dict(row) == {"schedules": 26, "kinds": 1, "active": True}
        runs = await conn.fetchrow(
            "SELECT count(*) AS runs, count(DISTINCT schedule_id) AS schedules,"
            " count(DISTINCT delivery_id) AS delivery_ids, count(DISTINCT (occurrence_at, due_at)) AS times,"
            " bool_and(status = 'pending') AS pending,"
            " bool_and(occurrence_at = (SELECT next_occurrence_at FROM schedules s WHERE s.id = schedule_id))"
            " AS at_cursor FROM timers"
        )
        assert dict(runs) == {
            "runs": 26,
            "schedules": 26,
            "delivery_ids": 26,
            "times": 1,
            "pending": True,
            "at_cursor": True,
        }
    finally:
        await conn.close()
