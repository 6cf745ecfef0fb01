"""The migrations produce exactly the schema the models describe, and instances may migrate at once."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, text

from task_scheduler.db import create_engine, migrate, schema_is_current
from task_scheduler.tables import metadata


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "compare_server_default": True}
    )
    return list(compare_metadata(context, metadata))


async def test_migrated_schema_matches_models(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(_diff)
        assert diff == []
        assert await schema_is_current(engine)
    finally:
        await engine.dispose()


async def test_concurrent_migrations_from_an_empty_database(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=1)
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    assert not await schema_is_current(engine)
    engines = [create_engine(database_url, pool_size=1) for _ in range(3)]
    try:
        await asyncio.gather(*(migrate(e) for e in engines))
        assert await schema_is_current(engine)
        async with engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
    finally:
        for e in [engine, *engines]:
            await e.dispose()
