"""The hot statements keep good plans when the table grows faster than its statistics.

A new deployment's first burst: the statements are prepared (and, after five runs, PostgreSQL
may cache a generic plan) while `timers` is empty and analysed as empty; then thousands of rows
arrive before autovacuum analyses the table again. A claim written `id IN (SELECT ... LIMIT n
FOR UPDATE SKIP LOCKED)` then ran as a nested-loop semi join over sequential scans that re-ran
the subquery for every row: 4 s per lease-expiry call, and one claim of 500 took all 10,000 due
timers. These tests cache the plans on an empty table, load it without ANALYZE, and check each
hot statement's plan (no sequential scan of `timers`) and what a claim takes, both with the
service's own connections and with generic plans forced.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import TextClause, event, text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from task_scheduler.db import create_engine, sqlalchemy_url
from task_scheduler.destinations import repository as destination_repository
from task_scheduler.timers import repository
from task_scheduler.timers.models import TimerStatus
from task_scheduler.timers.repository import NewTimer, Outcome

LOADED = 20_000
LIMIT = 500
OWNER = "plans"


async def _warm_up_on_empty_table(conn: AsyncConnection) -> None:
    """Run every hot statement more than five times while the table is empty and analysed."""
    for _ in range(8):
        await repository.claim_due(conn, owner=OWNER, lookahead_seconds=2, lease_seconds=60, limit=LIMIT)
        await repository.claim_due(
            conn,
            owner=OWNER,
            lookahead_seconds=2,
            lease_seconds=60,
            limit=LIMIT,
            sparing=["http://b.example:80"],
        )
        await repository.expire_leases(conn, limit=LIMIT, max_lapses=5)
        await repository.extend_leases(conn, owner=OWNER, timer_ids=[1, 2], lease_seconds=60)
        await repository.mark_delivered(conn, owner=OWNER, outcomes=[Outcome(1, 1)])
        await repository.schedule_retry(conn, owner=OWNER, outcomes=[Outcome(1, 1, "e", 1.0)])
        await repository.return_leases(conn, owner=OWNER, outcomes=[Outcome(1, 1)])
        await repository.delete_finished(conn, older_than_seconds=0, limit=LIMIT)
        await repository.get_timer(conn, timer_id=1, tenant=None)
        await conn.commit()


async def _load_without_analyze(conn: AsyncConnection) -> None:
    timers = [NewTimer(url="http://example.com/hook", delay_seconds=0)] * 1000
    for _ in range(LOADED // 1000):
        await repository.insert_timers(conn, timers=timers, notify_within=2)
    await conn.commit()


def _nodes(plan: dict[str, Any]) -> list[str]:
    own = plan["Node Type"] + (f" on {plan['Relation Name']}" if "Relation Name" in plan else "")
    return [own, *(node for child in plan.get("Plans", []) for node in _nodes(child))]


async def _plan(conn: AsyncConnection, statement: TextClause, params: dict[str, Any]) -> list[str]:
    """The plan's nodes as run for real under EXPLAIN ANALYZE (then undone)."""
    async with conn.begin_nested():
        explained = await conn.execute(text(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement.text}"), params)
        plan = explained.scalar_one()
        await conn.rollback()
    return _nodes((json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"])


@pytest.mark.parametrize("plan_cache_mode", ["auto", "force_generic_plan"])
async def test_hot_statements_stay_index_scans_on_a_young_table(
    database_url: str, plan_cache_mode: str
) -> None:
    setup = create_engine(database_url, pool_size=1)
    async with setup.begin() as conn:
        await conn.execute(text("ALTER TABLE timers SET (autovacuum_enabled = off)"))
        await conn.execute(text("ANALYZE timers"))
    await setup.dispose()
    # "auto" is what the service's own connections do; forced generic plans are the worst case.
    engine = (
        create_engine(database_url, pool_size=1)
        if plan_cache_mode == "auto"
        else create_async_engine(
            sqlalchemy_url(database_url),
            pool_size=1,
            connect_args={"server_settings": {"plan_cache_mode": plan_cache_mode}},
        )
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
            assert len(claimed) == LIMIT  # one run of the subquery, not one per row
            firing = (
                await conn.execute(text("SELECT count(*) FROM timers WHERE status = 'firing'"))
            ).scalar()
            assert firing == LIMIT
            ids = [t.id for t in claimed]
            finishing = {"owner": OWNER, "ids": ids, "attempts": [1] * len(ids)}
            plans = {
                "claim": await _plan(
                    conn,
                    repository._CLAIM_DUE,
                    {"owner": OWNER, "lookahead_seconds": 2.0, "lease_seconds": 60.0, "limit": LIMIT},
                ),
                "claim sparing a destination": await _plan(
                    conn,
                    repository._CLAIM_DUE_SPARING,
                    {
                        "owner": OWNER,
                        "lookahead_seconds": 2.0,
                        "lease_seconds": 60.0,
                        "limit": LIMIT,
                        "sparing": ["http://b.example:80"],
                    },
                ),
                "probe": await _plan(
                    conn,
                    repository._CLAIM_PROBE,
                    {
                        "owner": OWNER,
                        "tenant": "default",
                        "destination": "http://example.com:80",
                        "lookahead_seconds": 2.0,
                        "lease_seconds": 60.0,
                        "limit": 1,
                    },
                ),
                "expire": await _plan(conn, repository._EXPIRE_LEASES, {"limit": LIMIT}),
                "lapsed": await _plan(
                    conn, repository._FAIL_LAPSED_LEASES, {"limit": LIMIT, "max_lapses": 5}
                ),
                "delivered": await _plan(conn, repository._MARK_DELIVERED, finishing),
                "retry": await _plan(
                    conn,
                    repository._SCHEDULE_RETRY,
                    {**finishing, "delays": [1.0] * len(ids), "errors": ["e"] * len(ids)},
                ),
                "extend": await _plan(
                    conn, repository._EXTEND_LEASES, {"owner": OWNER, "ids": ids, "lease_seconds": 60.0}
                ),
                "get": await _plan(conn, repository._GET, {"id": ids[0], "tenant": None}),
            }
            scanning = {name: nodes for name, nodes in plans.items() if "Seq Scan on timers" in nodes}
            assert scanning == {}, scanning
            await conn.execute(text("UPDATE timers SET lease_expires_at = now() - interval '1 s'"))
            lapsed = await repository.expire_leases(conn, limit=LIMIT, max_lapses=5)
            await conn.commit()
            assert lapsed.returned == LIMIT
    finally:
        await engine.dispose()


def _index_names(plan: dict[str, Any]) -> set[str]:
    own = {plan["Index Name"]} if "Index Name" in plan else set()
    return own.union(*(_index_names(child) for child in plan.get("Plans", [])))


async def test_a_tenants_pending_list_reads_only_its_pending_timers(database_url: str) -> None:
    """Regression: listing one tenant's pending timers walked all of its timers in due order,
    finished ones included (453 ms at 1,000,000 rows for a tenant with none pending); the partial
    index (tenant, due_at, id) WHERE pending answers it from pending entries alone."""
    engine = create_engine(database_url, pool_size=1)
    seen: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        seen.append((statement, parameters))

    try:
        async with engine.begin() as conn:
            await conn.execute(
                text("""
                INSERT INTO timers (url, due_at, tenant, status)
                SELECT 'http://example.com/hook', now() + i * interval '1 s',
                       CASE WHEN i % 10 = 0 THEN 'acme' ELSE 'tenant-' || i % 10 END,
                       CASE WHEN i % 10 = 0 OR i % 3 = 0 THEN 'delivered' ELSE 'pending' END
                FROM generate_series(1, 50000) AS i
                """)
            )
            await conn.execute(text("ANALYZE timers"))
        event.listen(engine.sync_engine, "before_cursor_execute", record)
        async with engine.connect() as conn:
            for tenant in ("acme", "tenant-1"):  # none pending, and two thirds pending
                found = await repository.list_slice(conn, tenant=tenant, status=TimerStatus.PENDING, limit=51)
                rows = found.rows
                assert len(rows) == (0 if tenant == "acme" else 51)
                statement, parameters = seen[-1]
                explained = await conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", parameters)
                plan = explained.scalar_one()
                tree = (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]
                used = _index_names(tree)
                if tenant == "acme":  # not a walk through every pending timer to find none
                    assert used == {"ix_timers_pending_tenant_due"}, used
                else:  # pending entries only, whichever order is cheaper
                    assert used <= {"ix_timers_pending_tenant_due", "ix_timers_pending_due"}, used
    finally:
        await engine.dispose()


async def test_every_tenants_finished_list_reads_the_status_in_list_order(database_url: str) -> None:
    """Regression: an admin's list of one finished status over every tenant sorted all timers of
    that status (136-289 ms at 1,000,000 rows); ix_timers_finished_status_due serves it in order."""
    engine = create_engine(database_url, pool_size=1)
    seen: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        seen.append((statement, parameters))

    finished = ("delivered", "failed", "expired", "cancelled")
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text("""
                INSERT INTO timers (url, due_at, tenant, status)
                SELECT 'http://example.com/hook', now() + (i % 997) * interval '1 s', 'tenant-' || i % 7,
                       (ARRAY['delivered', 'failed', 'expired', 'cancelled', 'pending'])[1 + i % 5]
                FROM generate_series(1, 50000) AS i
                """)
            )
            await conn.execute(text("ANALYZE timers"))
        event.listen(engine.sync_engine, "before_cursor_execute", record)
        async with engine.connect() as conn:
            for status in finished:
                found = await repository.list_slice(conn, tenant=None, status=TimerStatus(status), limit=51)
                rows = found.rows
                assert len(rows) == 51
                assert [(r.due_at, r.id) for r in rows] == sorted((r.due_at, r.id) for r in rows)
                statement, parameters = seen[-1]
                explained = await conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", parameters)
                plan = explained.scalar_one()
                tree = (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]
                assert _index_names(tree) == {"ix_timers_finished_status_due"}, tree
                assert "Sort" not in _nodes(tree), _nodes(tree)
    finally:
        await engine.dispose()


LIMITED_KEY = "http://limited.example:80"


@pytest.mark.parametrize("plan_cache_mode", ["auto", "force_generic_plan"])
async def test_flow_control_statements_stay_index_scans_on_a_young_table(
    database_url: str, plan_cache_mode: str
) -> None:
    """The flow-control claim (destinations/flow.py) on the same young table: half the due timers
    are a limited destination's. It takes exactly its allowance (one run of the subquery), the
    regular claim passes them by, and no statement scans `timers`."""
    setup = create_engine(database_url, pool_size=1)
    async with setup.begin() as conn:
        await conn.execute(text("ALTER TABLE timers SET (autovacuum_enabled = off)"))
        await conn.execute(
            text(
                "INSERT INTO destinations (tenant, key, rate_per_second, burst, parallelism) "
                "VALUES ('default', :key, 1000, 100, 60)"
            ),
            {"key": LIMITED_KEY},
        )
        await conn.execute(text("ANALYZE timers"))
        await conn.execute(text("ANALYZE destinations"))
    await setup.dispose()
    engine = create_async_engine(
        sqlalchemy_url(database_url),
        pool_size=1,
        connect_args={"server_settings": {"plan_cache_mode": plan_cache_mode}},
    )
    allowance = [("default", LIMITED_KEY, 50)]
    try:
        async with engine.connect() as conn:
            for _ in range(8):
                assert await destination_repository.lock_limited(conn) == []
                assert not await destination_repository.limited_due(conn)
                await repository.claim_limited(conn, owner=OWNER, allowances=allowance, lease_seconds=60)
                await repository.claim_due(
                    conn, owner=OWNER, lookahead_seconds=2, lease_seconds=60, limit=LIMIT
                )
                await destination_repository.count_in_flight(conn, tenant="default", keys=[LIMITED_KEY])
                await conn.commit()
            mixed = [
                NewTimer(
                    url="http://limited.example/hook" if i % 2 else "http://other.example/hook",
                    delay_seconds=0,
                )
                for i in range(1000)
            ]
            for _ in range(LOADED // 1000):
                await repository.insert_timers(conn, timers=mixed, notify_within=2)
            await conn.commit()

            [bucket] = await destination_repository.lock_limited(conn)
            assert (bucket.tokens, bucket.parallelism, bucket.in_flight) == (100.0, 60, 0)
            limited = await repository.claim_limited(
                conn, owner=OWNER, allowances=allowance, lease_seconds=60
            )
            regular = await repository.claim_due(
                conn, owner=OWNER, lookahead_seconds=2, lease_seconds=60, limit=LIMIT
            )
            await conn.commit()
            assert len(limited.timers) == 50  # one run of the subquery, not one per row
            assert {t.destination for t in limited.timers} == {LIMITED_KEY}
            assert len(regular.timers) == LIMIT
            assert LIMITED_KEY not in {t.destination for t in regular.timers}
            [bucket] = await destination_repository.lock_limited(conn)
            assert bucket.in_flight == 50
            await conn.commit()
            plans = {
                "lock": await _plan(conn, destination_repository._LOCK_LIMITED, {}),
                "limited_due": await _plan(conn, destination_repository._LIMITED_DUE, {}),
                "flow_in_flight": await _plan(
                    conn,
                    destination_repository._FLOW_IN_FLIGHT,
                    {"tenants": ["default"], "keys": [LIMITED_KEY]},
                ),
                "claim_limited": await _plan(
                    conn,
                    repository._CLAIM_LIMITED,
                    {
                        "owner": OWNER,
                        "tenants": ["default"],
                        "keys": [LIMITED_KEY],
                        "counts": [50],
                        "lease_seconds": 60.0,
                    },
                ),
                "claim": await _plan(
                    conn,
                    repository._CLAIM_DUE,
                    {"owner": OWNER, "lookahead_seconds": 2.0, "lease_seconds": 60.0, "limit": LIMIT},
                ),
                "in_flight": await _plan(
                    conn, destination_repository._IN_FLIGHT, {"tenant": "default", "keys": [LIMITED_KEY]}
                ),
                "held_reason": await _plan(
                    conn, destination_repository._HELD_REASON, {"tenant": "default", "key": LIMITED_KEY}
                ),
            }
            scanning = {name: nodes for name, nodes in plans.items() if "Seq Scan on timers" in nodes}
            assert scanning == {}, scanning
    finally:
        await engine.dispose()
