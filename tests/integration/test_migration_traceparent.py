"""Migration 0012: timers get a nullable `traceparent`; existing rows keep every value and get NULL,
and the downgrade drops only that column."""

from __future__ import annotations

import asyncpg

from task_scheduler.db import asyncpg_dsn, create_engine, migrate, schema_is_current
from tests.support.migrations import column_names, downgrade_to, schema_at


async def test_upgrade_adds_a_null_traceparent_and_downgrade_removes_it(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=1)
    db = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await schema_at(engine, "0011")
        assert "traceparent" not in await column_names(db, "timers")
        timer_id = await db.fetchval(
            "INSERT INTO timers (url, due_at, labels) VALUES ('http://a/', now(), '{\"k\": \"v\"}') RETURNING id"
        )
        before = dict(await db.fetchrow("SELECT * FROM timers WHERE id = $1", timer_id))

        await migrate(engine)

        assert await schema_is_current(engine)
        after = dict(await db.fetchrow("SELECT * FROM timers WHERE id = $1", timer_id))
        assert after.pop("traceparent") is None
        after.pop("destination")  # migration 0014's column (test_migration_destinations.py)
        after.pop("flow_claimed")  # migration 0015's column (test_migration_destination_limits.py)
        assert after == before

        await downgrade_to(engine, "0011")
        assert "traceparent" not in await column_names(db, "timers")
        assert dict(await db.fetchrow("SELECT * FROM timers WHERE id = $1", timer_id)) == before
    finally:
        await db.close()
        await engine.dispose()
