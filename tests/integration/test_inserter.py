"""Group commit of single creates: concurrent requests share transactions, each gets its own
timer, and nothing is lost or mixed up."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from task_scheduler.db import asyncpg_dsn, create_engine
from task_scheduler.timers.inserter import BatchInserter
from task_scheduler.timers.repository import NewTimer


async def test_concurrent_inserts_share_commits(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=4)
    inserter = BatchInserter(engine=engine, notify_within=1.0)
    await inserter.start()
    try:
        timers = [NewTimer(url=f"http://example.com/{i}", delay_seconds=3600 + i) for i in range(300)]
        rows = await asyncio.gather(*(inserter.insert(t) for t in timers))
    finally:
        await inserter.stop()
        await engine.dispose()
    assert len({r.id for r in rows}) == 300
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        urls = dict(await conn.fetch("SELECT id, url FROM timers"))
    finally:
        await conn.close()
    assert [urls[r.id] for r in rows] == [t.url for t in timers]  # each caller got its own row
    delays = [(r.due_at - r.db_now).total_seconds() for r in rows]
    assert all(3599 <= d - i <= 3601 for i, d in enumerate(delays))
    assert inserter.batches_written < 300  # coalesced
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        assert await conn.fetchval("SELECT count(*) FROM timers") == 300
    finally:
        await conn.close()


async def test_a_failed_batch_fails_every_caller(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=2)
    inserter = BatchInserter(engine=engine, notify_within=1.0)
    await inserter.start()
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await conn.execute("ALTER TABLE timers ADD CONSTRAINT no_inserts CHECK (false) NOT VALID")
        results = await asyncio.gather(
            *(inserter.insert(NewTimer(url="http://example.com/", delay_seconds=60)) for _ in range(5)),
            return_exceptions=True,
        )
        assert all(isinstance(r, Exception) for r in results)
        await conn.execute("ALTER TABLE timers DROP CONSTRAINT no_inserts")
        row = await inserter.insert(NewTimer(url="http://example.com/after", delay_seconds=60))
        assert (
            await conn.fetchval("SELECT url FROM timers WHERE id = $1", row.id) == "http://example.com/after"
        )
    finally:
        await conn.close()
        await inserter.stop()
        await engine.dispose()


async def test_without_the_background_task_it_inserts_directly(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=1)
    try:
        row = await BatchInserter(engine=engine, notify_within=1.0).insert(
            NewTimer(url="http://example.com/", delay_seconds=5)
        )
    finally:
        await engine.dispose()
    assert row.id >= 1


@pytest.mark.parametrize("count", [1, 50])
async def test_stop_writes_what_is_queued(database_url: str, count: int) -> None:
    engine = create_engine(database_url, pool_size=2)
    inserter = BatchInserter(engine=engine, notify_within=1.0)
    await inserter.start()
    pending = [
        asyncio.ensure_future(inserter.insert(NewTimer(url="http://example.com/", delay_seconds=60)))
        for _ in range(count)
    ]
    await asyncio.sleep(0)
    await inserter.stop()
    rows = await asyncio.gather(*pending)
    await engine.dispose()
    assert len({r.id for r in rows}) == count
