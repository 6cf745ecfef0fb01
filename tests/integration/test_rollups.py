"""The dashboard's rollups (ui/rollups.py) on a real PostgreSQL: what the fold writes, that it
is idempotent and safe against late commits, its lock and retention, and the whole service
folding the deliveries it made."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from task_scheduler.db import asyncpg_dsn, create_engine
from task_scheduler.ui.repository import DURATION_EDGES_MS
from task_scheduler.ui.rollups import ROLLUP_LOCK_KEY, SETTLE, fold, fold_chunk
from tests.support.api import create
from tests.support.app import ServiceFactory
from tests.support.polling import WAIT, wait_for_status
from tests.support.receiver import Receiver
from tests.support.rollups import fold_now

BUCKETS = len(DURATION_EDGES_MS) + 1


def one_hot(index: int | None, n: int = 1) -> list[int]:
    counts = [0] * BUCKETS
    if index is not None:
        counts[index] = n
    return counts


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    made = create_engine(database_url, pool_size=2)
    yield made
    await made.dispose()


async def rollups(db: asyncpg.Connection) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(tenant, destination, outcome): the columns, over every minute."""
    rows = await db.fetch(
        "SELECT tenant, destination, outcome, minute, deliveries, duration_ms_sum, duration_buckets,"
        " lateness_buckets FROM delivery_rollups ORDER BY minute"
    )
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in rows:
        key = (r["tenant"], r["destination"], r["outcome"])
        assert key not in found, f"{key} in two minutes"  # the tests record within one minute
        found[key] = dict(r)
    return found


async def start_folding_from(db: asyncpg.Connection, ago: timedelta) -> None:
    await db.execute(
        "UPDATE rollup_watermarks SET folded_before = date_trunc('minute', now() - $1::interval)", ago
    )


async def insert_timers(db: asyncpg.Connection) -> None:
    await start_folding_from(db, timedelta(minutes=5))  # one chunk, however long the session ran
    await db.execute(
        "INSERT INTO timers (id, url, due_at, status, attempts, tenant) OVERRIDING SYSTEM VALUE VALUES"
        " (1, 'http://user:secret@Example.COM:8080/x?y', now() - interval '30 milliseconds', 'delivered', 1, 'acme'),"
        " (2, 'https://other.example/hook', now(), 'failed', 2, 'globex'),"
        " (3, 'https://other.example/2', now() - interval '300 milliseconds', 'delivered', 1, 'globex')"
    )


async def test_the_fold_counts_attempts_per_tenant_minute_destination_and_outcome(
    engine: AsyncEngine, db: asyncpg.Connection
) -> None:
    # now() is that of the transaction: every attempt here is recorded in one minute, and each
    # lateness (started_at - due_at) is exactly what insert_timers set, however slow the machine.
    async with db.transaction():
        await insert_timers(db)
        await db.execute(
            "INSERT INTO timer_attempts (timer_id, attempt, started_at, duration_ms, status_code, error_class)"
            " VALUES (1, 1, now(), 30, 200, NULL), (2, 1, now(), 5, 503, 'http_status'),"
            " (2, 2, now(), 7, 503, 'http_status'), (3, 1, now(), 700, 200, NULL)"
        )
    (chunk,) = await fold_now(engine)
    assert chunk.caught_up
    assert chunk.rollups == chunk.written == 3
    found = await rollups(db)
    assert set(found) == {
        ("acme", "example.com:8080", "ok"),
        ("globex", "other.example", "http_status"),
        ("globex", "other.example", "ok"),
    }
    acme = found["acme", "example.com:8080", "ok"]
    assert (acme["deliveries"], acme["duration_ms_sum"]) == (1, 30.0)
    assert acme["duration_buckets"] == one_hot(1)  # 30 ms: 10-50
    assert acme["lateness_buckets"] == one_hot(1)  # started 30 ms after due
    failing = found["globex", "other.example", "http_status"]
    assert (failing["deliveries"], failing["duration_ms_sum"]) == (2, 12.0)
    assert failing["duration_buckets"] == one_hot(0, 2)
    assert failing["lateness_buckets"] == one_hot(None)  # retried: its due time moved, left out
    slow = found["globex", "other.example", "ok"]
    assert slow["duration_buckets"] == one_hot(5)  # 700 ms: 500-1000
    assert slow["lateness_buckets"] == one_hot(4)  # 300 ms late: 250-500

    hourly = await db.fetch(
        "SELECT tenant, destination, outcome, deliveries, duration_ms_sum, duration_buckets, lateness_buckets"
        " FROM delivery_rollups_hourly"
    )
    assert {(r["tenant"], r["destination"], r["outcome"]): dict(r) for r in hourly} == {
        key: {k: v for k, v in row.items() if k != "minute"} for key, row in found.items()
    }

    again = await fold_now(engine)
    assert [(f.rollups, f.written, f.dropped) for f in again] == [(3, 0, 0)]  # idempotent
    assert await rollups(db) == found


async def test_a_late_commit_inside_the_settling_time_is_counted(
    engine: AsyncEngine, db: asyncpg.Connection, database_url: str
) -> None:
    """An outcome transaction that began (its recorded_at) before a fold and commits after it:
    the watermark stays `SETTLE` behind, so the next fold recomputes that minute and counts it.
    A transaction that took longer than `SETTLE` is the documented limit: its minute is final."""
    await insert_timers(db)
    await start_folding_from(db, timedelta(minutes=10))
    late = await asyncpg.connect(asyncpg_dsn(database_url))
    too_late = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        for conn, begun, timer_id in ((late, SETTLE / 2, 1), (too_late, SETTLE * 2, 3)):
            transaction = conn.transaction()
            await transaction.start()
            await conn.execute(
                "INSERT INTO timer_attempts (timer_id, attempt, started_at, duration_ms, recorded_at)"
                " VALUES ($1, 1, now(), 30, now() - $2::interval)",
                timer_id,
                begun,
            )
        await fold_now(engine)
        assert await rollups(db) == {}
        # late's minute (begun SETTLE / 2 ago) is not final yet; too_late's (2 * SETTLE) is
        assert await db.fetchval(
            "SELECT date_trunc('minute', now() - $1::interval) >= folded_before"
            " AND folded_before > now() - $2::interval FROM rollup_watermarks",
            SETTLE / 2,
            SETTLE * 2,
        )
        await late.execute("COMMIT")
        await too_late.execute("COMMIT")
    finally:
        await late.close()
        await too_late.close()
    await fold_now(engine)
    found = await rollups(db)
    assert set(found) == {("acme", "example.com:8080", "ok")}  # not globex's, begun 4 minutes ago
    assert found["acme", "example.com:8080", "ok"]["deliveries"] == 1


async def test_a_fold_drops_what_the_attempt_log_no_longer_holds(
    engine: AsyncEngine, db: asyncpg.Connection
) -> None:
    await insert_timers(db)
    await db.execute(
        "INSERT INTO timer_attempts (timer_id, attempt, started_at, duration_ms) VALUES (3, 1, now(), 1)"
    )
    await fold_now(engine)
    assert set(await rollups(db)) == {("globex", "other.example", "ok")}
    await db.execute("DELETE FROM timers WHERE id = 3")  # its attempts go with it
    (chunk,) = await fold_now(engine)
    assert (chunk.rollups, chunk.dropped) == (0, 1)
    assert await rollups(db) == {}


async def test_one_instance_folds_at_a_time(engine: AsyncEngine, db: asyncpg.Connection) -> None:
    await db.execute("SELECT pg_advisory_lock($1)", ROLLUP_LOCK_KEY)
    try:
        assert await fold(engine) == []
        async with engine.begin() as conn:
            assert await fold_chunk(conn) is None
    finally:
        await db.execute("SELECT pg_advisory_unlock($1)", ROLLUP_LOCK_KEY)
    assert await fold(engine) != []


async def test_a_pause_is_caught_up_in_chunks_and_old_rollups_are_dropped(
    engine: AsyncEngine, db: asyncpg.Connection
) -> None:
    await insert_timers(db)
    await start_folding_from(db, timedelta(hours=3))
    await db.execute(
        "INSERT INTO timer_attempts (timer_id, attempt, started_at, duration_ms, recorded_at)"
        " VALUES (1, 1, now(), 1, now() - interval '150 minutes'), (3, 1, now(), 1, now())"
    )
    empty = one_hot(None)
    await db.execute(
        "INSERT INTO delivery_rollups VALUES ('acme', date_trunc('minute', now() - $1::interval), 'old.example',"
        " 'ok', 1, 1, $2, $2)",
        timedelta(days=9),
        empty,
    )
    await db.execute(
        "INSERT INTO delivery_rollups VALUES ('acme', date_trunc('minute', now() - $1::interval), 'kept.example',"
        " 'ok', 1, 1, $2, $2)",
        timedelta(days=7),
        empty,
    )
    await db.execute(
        "INSERT INTO delivery_rollups_hourly VALUES ('acme', now() - $1::interval, 'old.example', 'ok', 1, 1, $2, $2)",
        timedelta(days=9),
        empty,
    )
    folds = await fold_now(engine)
    assert len(folds) >= 3  # an hour per chunk
    assert folds[-1].caught_up
    assert [f.watermark for f in folds[:-1]] == [f.start for f in folds[1:]]
    destinations = {r["destination"] for r in await db.fetch("SELECT destination FROM delivery_rollups")}
    assert destinations == {"example.com:8080", "other.example", "kept.example"}
    hourly = await db.fetch(
        "SELECT destination, sum(deliveries) AS n FROM delivery_rollups_hourly GROUP BY 1"
    )
    assert {r["destination"]: r["n"] for r in hourly} == {"example.com:8080": 1, "other.example": 1}


async def test_the_running_service_folds_its_deliveries(
    service: ServiceFactory, receiver: Receiver, db: asyncpg.Connection
) -> None:
    receiver.respond = lambda timer_id, seen: 500 if timer_id % 2 else 200
    async with service(rollup_interval_seconds=0.2, max_attempts=1) as client:
        created = [await create(client, receiver.url, seconds=1) for _ in range(6)]
        for timer_id in created:
            view = await wait_for_status(client, timer_id, ("delivered", "failed"), WAIT)
            assert view["status"] == ("failed" if timer_id % 2 else "delivered"), view
        wanted = {
            "ok": sum(1 for t in created if t % 2 == 0),
            "http_status": sum(1 for t in created if t % 2),
        }
        deadline = time.monotonic() + WAIT
        found: dict[str, int] = {}
        while found != wanted and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            rows = await db.fetch(
                "SELECT outcome, sum(deliveries) AS n FROM delivery_rollups GROUP BY outcome"
            )
            found = {r["outcome"]: int(r["n"]) for r in rows}
    assert found == wanted
    assert {r["destination"] for r in await db.fetch("SELECT destination FROM delivery_rollups")} == {
        f"127.0.0.1:{receiver.port}"
    }


async def test_a_fold_that_keeps_failing_is_reported_degraded_not_unready(
    service: ServiceFactory, db: asyncpg.Connection
) -> None:
    """The fold fails on every turn (its table gone): /readyz stays 200, since delivery does not
    depend on it, but says so in `degraded`, and a counter counts the failed turns; once the fold
    succeeds again, the line goes."""
    async with service(rollup_interval_seconds=0.1, readiness_stall_seconds=0.5) as client:
        await db.execute("ALTER TABLE delivery_rollups RENAME TO delivery_rollups_away")

        async def readyz() -> tuple[int, dict[str, Any]]:
            response = await client.get("/readyz")
            body: dict[str, Any] = response.json()
            return response.status_code, body

        deadline = time.monotonic() + WAIT
        status, body = await readyz()
        while "degraded" not in body and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            status, body = await readyz()
        failures = re.search(
            r"^scheduler_rollup_fold_failures_total (\S+)$", (await client.get("/metrics")).text, re.MULTILINE
        )
        await db.execute("ALTER TABLE delivery_rollups_away RENAME TO delivery_rollups")
        deadline = time.monotonic() + WAIT
        status_after, after = await readyz()
        while after != {"status": "ready"} and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            status_after, after = await readyz()
    assert status == 200, body
    assert body["status"] == "ready"
    assert len(body["degraded"]) == 1
    assert body["degraded"][0].startswith("rollups: every fold has failed for ")
    assert "delivery_rollups" in body["degraded"][0]
    assert failures is not None
    assert float(failures.group(1)) >= 1
    assert (status_after, after) == (200, {"status": "ready"})
