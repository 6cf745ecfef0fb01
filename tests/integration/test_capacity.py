"""The per-tenant pending cap: counted once per tenant, recounted in the background, and never
holding a request up while PostgreSQL counts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from task_scheduler.db import asyncpg_dsn, create_engine
from task_scheduler.errors import TooManyRequests
from task_scheduler.timers import repository
from task_scheduler.timers.capacity import PendingCap


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=4)
    yield engine
    await engine.dispose()


async def _add_pending(db: asyncpg.Connection, tenant: str, count: int) -> None:
    await db.execute(
        "INSERT INTO timers (url, due_at, tenant) SELECT 'http://example.com/', now() + interval '1 day', $1"
        " FROM generate_series(1, $2)",
        tenant,
        count,
    )


async def _recounted(cap: PendingCap, tenant: str) -> None:
    """Wait for the background recount the last reserve() started (bounded)."""
    for _ in range(500):
        if tenant not in cap._refreshing:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the recount did not finish")


async def test_concurrent_first_requests_share_one_count(
    engine: AsyncEngine, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _add_pending(db, "acme", 5)
    calls = 0
    real_count = repository.count_pending

    async def counting(c: AsyncConnection, **kwargs: Any) -> int:
        nonlocal calls
        calls += 1
        return await real_count(c, **kwargs)

    monkeypatch.setattr(repository, "count_pending", counting)
    cap = PendingCap(engine=engine, cap=15, ttl_seconds=60)
    results = await asyncio.gather(*(cap.reserve("acme", 1) for _ in range(20)), return_exceptions=True)
    assert calls == 1
    refused = [r for r in results if isinstance(r, TooManyRequests)]
    assert len(refused) == 10  # 5 in the table + 10 accepted = the cap of 15
    assert "limit is 15" in str(refused[0])


async def test_a_recount_never_holds_a_request_up(engine: AsyncEngine, database_url: str) -> None:
    cap = PendingCap(engine=engine, cap=100, ttl_seconds=0)  # every count is stale at once
    await cap.reserve("acme", 1)
    locker = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        async with locker.transaction():
            await locker.execute("LOCK TABLE timers IN ACCESS EXCLUSIVE MODE")  # any count now blocks
            # Without the background recount this would wait for the lock (forever): the bound
            # is generous, the point is that it returns while the lock is held.
            await asyncio.wait_for(cap.reserve("acme", 1), timeout=10)
            assert "acme" in cap._refreshing  # the recount is waiting in the background
        await _recounted(cap, "acme")
    finally:
        await locker.close()


async def test_the_recount_sees_what_other_instances_added(
    engine: AsyncEngine, db: asyncpg.Connection
) -> None:
    cap = PendingCap(engine=engine, cap=10, ttl_seconds=0)
    await cap.reserve("acme", 1)  # counted 0, now 1
    await _add_pending(db, "acme", 10)  # another instance filled the tenant up
    await cap.reserve("acme", 1)  # still judged on the last count; starts a recount
    await _recounted(cap, "acme")
    with pytest.raises(TooManyRequests, match="has 10 pending"):
        await cap.reserve("acme", 1)
    await cap.reserve("globex", 10)  # other tenants are counted on their own


async def test_a_failed_first_count_fails_the_request_and_a_failed_recount_keeps_the_last(
    engine: AsyncEngine, db: asyncpg.Connection
) -> None:
    cap = PendingCap(engine=engine, cap=10, ttl_seconds=0)
    await cap.reserve("acme", 3)
    await db.execute("ALTER TABLE timers RENAME TO timers_away")
    try:
        with pytest.raises(Exception, match="timers"):
            await cap.reserve("globex", 1)  # never counted: the error reaches the caller
        await cap.reserve("acme", 3)  # counted before: goes on with the last count
        await _recounted(cap, "acme")
        with pytest.raises(TooManyRequests, match="has 6 pending"):
            await cap.reserve("acme", 5)
    finally:
        await db.execute("ALTER TABLE timers_away RENAME TO timers")
    await cap.close()
