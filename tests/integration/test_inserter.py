"""Group commit of single creates: concurrent requests share transactions, each gets its own
timer, and nothing is lost or mixed up."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from task_scheduler.db import asyncpg_dsn, create_engine
from task_scheduler.schedules.repository import ScheduleRow, ScheduleSpec
from task_scheduler.schedules.service import NewSchedule, ScheduleCreator
from task_scheduler.timers.inserter import BatchInserter
from task_scheduler.timers.repository import NOTIFY_CHANNEL, CreatedTimer, NewTimer


class CountingInserter(BatchInserter):
    """Counts the transactions it writes."""

    batches_written = 0

    async def _flush(self, batch: list[Any]) -> None:
        self.batches_written += 1
        await super()._flush(batch)


async def test_concurrent_inserts_share_commits(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=4)
    inserter = CountingInserter(engine=engine, notify_within=1.0)
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


async def _insert_blocked_by_a_table_lock(
    database_url: str, inserter: BatchInserter
) -> tuple[asyncpg.Connection, list[asyncio.Task[CreatedTimer]]]:
    """One create in a flush that waits on a table lock, one taken by the batching task and waiting
    for the only flush slot; the caller releases the lock by closing the returned connection."""
    locker = await asyncpg.connect(asyncpg_dsn(database_url))
    await locker.execute("BEGIN; LOCK TABLE timers IN ACCESS EXCLUSIVE MODE")
    first = asyncio.create_task(inserter.insert(NewTimer(url="http://example.com/a", delay_seconds=60)))
    await asyncio.sleep(0.2)  # the flush holds the only slot, blocked on the lock
    second = asyncio.create_task(inserter.insert(NewTimer(url="http://example.com/b", delay_seconds=60)))
    await asyncio.sleep(0.1)  # taken from the queue, waiting for the slot
    return locker, [first, second]


async def test_a_create_taken_by_the_inserter_is_answered_at_shutdown(database_url: str) -> None:
    """Issue 11: stop() cancelled the batching task while it held a create waiting for a flush
    slot; that create was never written nor answered (its request hung)."""
    engine = create_engine(database_url, pool_size=3)
    inserter = BatchInserter(engine=engine, notify_within=1.0, concurrent_batches=1)
    await inserter.start()
    locker, creates = await _insert_blocked_by_a_table_lock(database_url, inserter)
    stopping = asyncio.create_task(inserter.stop())
    await asyncio.sleep(0.2)
    await locker.close()  # releases the lock
    try:
        async with asyncio.timeout(10):
            rows = await asyncio.gather(*creates)
            await stopping
    finally:
        await engine.dispose()
    assert len({row.id for row in rows}) == 2


async def test_a_create_that_cannot_be_written_at_shutdown_gets_an_error_not_silence(
    database_url: str,
) -> None:
    engine = create_engine(database_url, pool_size=3)
    inserter = BatchInserter(engine=engine, notify_within=1.0, concurrent_batches=1)
    await inserter.start()
    locker, creates = await _insert_blocked_by_a_table_lock(database_url, inserter)
    await locker.execute("ALTER TABLE timers ADD CONSTRAINT no_inserts CHECK (false) NOT VALID")
    stopping = asyncio.create_task(inserter.stop())
    await asyncio.sleep(0.2)
    await locker.execute("COMMIT")
    try:
        async with asyncio.timeout(10):
            results = await asyncio.gather(*creates, return_exceptions=True)
            await stopping
    finally:
        await locker.close()
        await engine.dispose()
    assert all(isinstance(r, Exception) for r in results), results


class CountingCreator(ScheduleCreator):
    """Counts the transactions it writes."""

    batches_written = 0

    async def _flush(self, batch: list[Any]) -> None:
        self.batches_written += 1
        await super()._flush(batch)


def new_schedule(url: str, now: datetime) -> NewSchedule:
    spec = ScheduleSpec(expression="@hourly", cron="0 0 * * * *", url=url)
    return NewSchedule(spec, "default", now + timedelta(hours=1), now)


async def test_concurrent_schedule_creates_share_commits_and_one_refused_fails_alone(
    database_url: str,
) -> None:
    """Schedules are created with their first run by group commit: one the database refuses (a
    trigger raises for it, inside the shared transaction) fails its caller alone (the batch is
    written again, each create in a transaction of its own); every other caller gets its own
    schedule and run."""
    engine = create_engine(database_url, pool_size=4)
    creator = CountingCreator(engine=engine, notify_within=1.0)
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    await conn.execute("""
        CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN IF NEW.url LIKE '%/poison' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$;
        CREATE TRIGGER refuse_poison BEFORE INSERT ON schedules FOR EACH ROW EXECUTE FUNCTION refuse_poison();
    """)
    await creator.start()
    now = datetime.now(UTC)
    urls = [f"http://example.com/{i}" for i in range(200)]
    urls[77] = "http://example.com/poison"
    try:
        results = await asyncio.gather(
            *(creator.submit(new_schedule(url, now)) for url in urls), return_exceptions=True
        )
        refused = [i for i, r in enumerate(results) if isinstance(r, BaseException)]
        assert refused == [77]
        rows = [r for r in results if isinstance(r, ScheduleRow)]
        assert [r.url for r in rows] == urls[:77] + urls[78:]  # each caller got its own schedule
        runs = dict(await conn.fetch("SELECT schedule_id, url FROM timers"))
        assert {r.id: r.url for r in rows} == runs  # and its first run, nothing for the refused one
        assert await conn.fetchval("SELECT count(*) FROM schedules") == 199
        assert creator.batches_written < 199  # coalesced
    finally:
        await creator.stop()
        await conn.close()
        await engine.dispose()


async def test_a_schedule_whose_first_run_is_due_soon_wakes_the_dispatchers(database_url: str) -> None:
    """Schedules and their first runs are inserted by one statement; a run due within the
    look-ahead sends the dispatchers' notification on commit, one that is not sends none."""
    engine = create_engine(database_url, pool_size=2)
    creator = ScheduleCreator(engine=engine, notify_within=5400.0)  # 1.5 h
    listener = await asyncpg.connect(asyncpg_dsn(database_url))
    heard: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener(NOTIFY_CHANNEL, lambda *args: heard.put_nowait(args[2]))
    now = datetime.now(UTC)
    try:
        later = ScheduleSpec(expression="@daily", cron="0 0 0 * * *", url="http://example.com/later")
        await creator.submit(NewSchedule(later, "default", now + timedelta(hours=2), now))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(heard.get(), timeout=0.5)
        row = await creator.submit(new_schedule("http://example.com/soon", now))
        await asyncio.wait_for(heard.get(), timeout=10)
        runs = await listener.fetch("SELECT schedule_id, url, occurrence_at FROM timers ORDER BY id")
        assert [(r["url"], r["occurrence_at"]) for r in runs if r["schedule_id"] == row.id] == [
            ("http://example.com/soon", now + timedelta(hours=1))
        ]
    finally:
        await listener.close()
        await engine.dispose()
