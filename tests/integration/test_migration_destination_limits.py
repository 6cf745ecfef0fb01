"""Migration 0015: `destinations` gets nullable limit and token-bucket columns, the partial index
of held destinations covers the limited ones too, and timers get a nullable `flow_claimed` and two
partial indexes for the flow-control claim; existing rows keep every value, and the downgrade
drops only what it added."""

from __future__ import annotations

import asyncpg

from task_scheduler.db import asyncpg_dsn, create_engine, migrate, schema_is_current
from tests.support.migrations import column_names, downgrade_to, schema_at

LIMIT_COLUMNS = {"rate_per_second", "burst", "parallelism", "tokens", "tokens_at"}
FLOW_INDEXES = {"ix_timers_pending_destination", "ix_timers_firing_destination"}


async def _indexes(db: asyncpg.Connection) -> dict[str, str]:
    rows = await db.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN ('timers', 'destinations')"
    )
    return {r["indexname"]: r["indexdef"] for r in rows}


async def test_upgrade_adds_null_limits_and_downgrade_removes_them(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=1)
    db = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await schema_at(engine, "0014")
        assert not LIMIT_COLUMNS & await column_names(db, "destinations")
        before_indexes = await _indexes(db)
        await db.execute(
            "INSERT INTO destinations (tenant, key, paused, consecutive_failures) VALUES ('t', 'k', true, 2)"
        )
        before = dict(await db.fetchrow("SELECT * FROM destinations"))
        timer_id = await db.fetchval(
            "INSERT INTO timers (url, due_at, destination) VALUES ('http://a/', now(), 'k') RETURNING id"
        )
        timer = dict(await db.fetchrow("SELECT * FROM timers WHERE id = $1", timer_id))

        await migrate(engine)

        assert await schema_is_current(engine)
        after = dict(await db.fetchrow("SELECT * FROM destinations"))
        assert {column: after.pop(column) for column in LIMIT_COLUMNS} == dict.fromkeys(LIMIT_COLUMNS)
        # migration 0016's columns (test_migration_destination_disabled.py)
        for column in ("failing_since", "disabled_at", "history"):
            after.pop(column)
        assert after == before
        migrated = dict(await db.fetchrow("SELECT * FROM timers WHERE id = $1", timer_id))
        assert migrated.pop("flow_claimed") is None
        assert migrated == timer
        indexes = await _indexes(db)
        assert set(indexes) >= FLOW_INDEXES
        assert "rate_per_second IS NOT NULL" in indexes["ix_destinations_holding"]

        await downgrade_to(engine, "0014")
        assert not LIMIT_COLUMNS & await column_names(db, "destinations")
        assert await _indexes(db) == before_indexes
        assert dict(await db.fetchrow("SELECT * FROM destinations")) == before
        assert dict(await db.fetchrow("SELECT * FROM timers WHERE id = $1", timer_id)) == timer
    finally:
        await db.close()
        await engine.dispose()
