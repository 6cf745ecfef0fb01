"""Migration 0014: timers get a nullable `destination` and the `destinations` table appears;
existing rows keep every value and get NULL, and the downgrade drops only what it added."""

from __future__ import annotations

import asyncpg
from sqlalchemy import Connection, text

from task_scheduler.db import _alembic_config, asyncpg_dsn, create_engine, migrate, schema_is_current


def _upgrade_to_0013(connection: Connection) -> None:
    from alembic import command

    command.upgrade(_alembic_config(connection), "0013")


def _downgrade_to_0013(connection: Connection) -> None:
    from alembic import command

    command.downgrade(_alembic_config(connection), "0013")


async def _columns(db: asyncpg.Connection) -> set[str]:
    rows = await db.fetch("SELECT column_name FROM information_schema.columns WHERE table_name = 'timers'")
    return {r["column_name"] for r in rows}


async def test_upgrade_adds_a_null_destination_and_downgrade_removes_it(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=1)
    db = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        async with engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
            await conn.run_sync(_upgrade_to_0013)
        assert "destination" not in await _columns(db)
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

        async with engine.begin() as conn:
            await conn.run_sync(_downgrade_to_0013)
        assert "destination" not in await _columns(db)
        assert await db.fetchval("SELECT to_regclass('destinations')") is None
        assert dict(await db.fetchrow("SELECT * FROM timers WHERE id = $1", timer_id)) == before
    finally:
        await db.close()
        await engine.dispose()
