"""The hot statements keep good plans when the table grows faster than its statistics.

A new deployment's first burst: the statements are prepared (and, after five runs, PostgreSQL
may cache a generic plan) while `timers` is empty and analysed as empty; then thousands of rows
arrive before autovacuum analyses the table again. A claim written `id IN (SELECT ... LIMIT n
FOR UPDATE SKIP LOCKED)` then ran as a nested-loop semi join that re-ran the subquery for every
row: 4 s per lease-expiry call, and one claim of 500 took all 10,000 due timers. These tests
cache the plans on an empty table, load it without ANALYZE, and check each hot statement's
plan by the buffers it touches (a count, not a time: the machines are noisy).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from task_scheduler.db import create_engine, sqlalchemy_url
from task_scheduler.timers import repository
from task_scheduler.timers.repository import NewTimer, Outcome

LOADED = 20_000
LIMIT = 500
OWNER = "plans"


async def _warm_up_on_empty_table(conn: AsyncConnection) -> None:
    """Run every hot statement more than five times while the table is empty and analysed."""
    for _ in range(8):
        await repository.claim_due(conn, owner=OWNER, lookahead_seconds=2, lease_seconds=60, limit=LIMIT)
        await repository.expire_leases(conn, limit=LIMIT, max_lapses=5)
        await repository.extend_leases(conn, owner=OWNER, timer_ids=[1, 2], lease_seconds=60)
        await repository.mark_delivered(conn, owner=OWNER, outcomes=[Outcome(1, 1)])
        await repository.schedule_retry(conn, owner=OWNER, outcomes=[Outcome(1, 1, "e", 1.0)])
        await repository.release_leases(conn, owner=OWNER, outcomes=[Outcome(1, 1)])
        await repository.delete_finished(conn, older_than_seconds=0, limit=LIMIT)
        await repository.get_timer(conn, timer_id=1, tenant=None)
        await conn.commit()


async def _load_without_analyze(conn: AsyncConnection) -> None:
    timers = [NewTimer(url="http://example.com/hook", delay_seconds=0)] * 1000
    for _ in range(LOADED // 1000):
        await repository.insert_timers(conn, timers=timers, notify_within=2)
    await conn.commit()


@pytest.fixture
async def young_table(database_url: str) -> str:
    engine = create_engine(database_url, pool_size=1)
    async with engine.begin() as conn:
        await conn.execute(text("ALTER TABLE timers SET (autovacuum_enabled = off)"))
        await conn.execute(text("ANALYZE timers"))
    await engine.dispose()
    return database_url


async def _buffers(conn: AsyncConnection, statement: TextClause, params: dict[str, Any]) -> int:
    """Shared buffers the statement touches, run for real under EXPLAIN ANALYZE (then undone)."""
    async with conn.begin_nested():
        explained = await conn.execute(
            text(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {statement.text}"), params
        )
        plan = explained.scalar_one()
        await conn.rollback()
    root = (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]
    return int(root["Shared Hit Blocks"]) + int(root["Shared Read Blocks"])


def _claim_params() -> dict[str, Any]:
    return {"owner": OWNER, "lookahead_seconds": 2.0, "lease_seconds": 60.0, "limit": LIMIT}


async def test_the_service_never_runs_a_generic_plan(young_table: str) -> None:
    engine = create_engine(young_table, pool_size=1)
    try:
        async with engine.connect() as conn:
            await _warm_up_on_empty_table(conn)
            await _load_without_analyze(conn)
            claimed = (
                await repository.claim_due(
                    conn, owner=OWNER, lookahead_seconds=2, lease_seconds=60, limit=LIMIT
                )
            ).timers
            assert len(claimed) == LIMIT
            expired = await repository.expire_leases(conn, limit=LIMIT, max_lapses=5)
            assert expired.returned == expired.failed == 0  # the leases just taken run for a minute
            await conn.commit()
            plans = (
                await conn.execute(
                    text(
                        "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements"
                        " WHERE statement LIKE '%timers%'"
                    )
                )
            ).all()
            hot = [p for p in plans if "firing" in p.statement or "FROM timers WHERE id" in p.statement]
            assert len(hot) >= 6
            assert all(p.generic_plans == 0 and p.custom_plans >= 8 for p in hot), hot
            # A claim touches the rows it takes and the index entries before them, not the table
            # once per row: a few buffers per claimed timer.
            claim = await _buffers(conn, repository._CLAIM_DUE, _claim_params())
            assert claim < 20 * LIMIT, claim
            expire = await _buffers(conn, repository._EXPIRE_LEASES, {"limit": LIMIT})
            assert expire < 200, expire
            lapsed = await _buffers(conn, repository._FAIL_LAPSED_LEASES, {"limit": LIMIT, "max_lapses": 5})
            assert lapsed < 200, lapsed
            ids = [t.id for t in claimed]
            finish = await _buffers(
                conn,
                repository._MARK_DELIVERED,
                {"owner": OWNER, "ids": ids, "attempts": [1] * len(ids)},
            )
            assert finish < 20 * LIMIT, finish
    finally:
        await engine.dispose()


async def test_a_cached_generic_plan_still_claims_exactly_the_limit(young_table: str) -> None:
    """The statements' shape alone is safe: even forced to plan generically on the empty table,
    a claim takes `limit` timers with one run of its subquery (not one per row)."""
    engine = create_async_engine(
        sqlalchemy_url(young_table),
        pool_size=1,
        connect_args={"server_settings": {"plan_cache_mode": "force_generic_plan"}},
    )
    try:
        async with engine.connect() as conn:
            await _warm_up_on_empty_table(conn)
            await _load_without_analyze(conn)
            claimed = (
                await repository.claim_due(
                    conn, owner=OWNER, lookahead_seconds=2, lease_seconds=60, limit=LIMIT
                )
            ).timers
            await conn.commit()
            assert len(claimed) == LIMIT
            firing = (
                await conn.execute(text("SELECT count(*) FROM timers WHERE status = 'firing'"))
            ).scalar()
            assert firing == LIMIT
            await conn.execute(text("UPDATE timers SET lease_expires_at = now() - interval '1 s'"))
            lapsed = await repository.expire_leases(conn, limit=LIMIT, max_lapses=5)
            assert lapsed.returned == LIMIT
            await conn.commit()
    finally:
        await engine.dispose()
