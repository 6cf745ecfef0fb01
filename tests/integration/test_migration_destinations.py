"""Migration 0014: timers get a nullable `destination` and the `destinations` table appears;
existing rows keep every value and get NULL, and the downgrade drops only what it added."""

from __future__ import annotations

import asyncpg

from task_scheduler.db import asyncpg_dsn, create_engine, migrate, schema_is_current
from tests.support.migrations import column_names, downgrade_to, schema_at


async def test_upgrade_adds_a_null_destination_and_downgrade_removes_it(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=1)
    db = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await schema_at(engine, "0013")
        assert "destination" not in await column_names(db, "timers")
        timer_id = await db.fetchval(
            "INSERT INTO timers (url, due_at, labels) VALUES ('http://a/', now(), '{\"k\": \"v\"}') RETURNING id"
        )
        before = dict(await db.fetchrow("SELECT * FROM timers WHERE id = $1", timer_id))

        await migrate(engine)

        assert await schema_is_current(engine)
        after = dict(await db.fetchrow("SELECT * FROM timers WHERE id = $1", timer_id))
        assert after.pop("destination") is None
        after.pop("flow_claimed")  # migration 0015's column (test_migration_destination_limits.py)
        assert after == before

        await downgrade_to(engine, "0013")
        assert "destination" not in await column_names(db, "timers")
        assert await db.fetchval("SELECT to_regclass('destinations')") is None
        assert dict(await db.fetchrow("SELECT * FROM timers WHERE id = $1", timer_id)) == before
    finally:
        await db.close()
        await engine.dispose()
