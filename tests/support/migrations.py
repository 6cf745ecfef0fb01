"""Migration tests: a database brought to an older revision, then up to the head and down again."""

from __future__ import annotations

import asyncpg
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from task_scheduler.db import _alembic_config


def _alembic(connection: Connection, direction: str, revision: str) -> None:
    from alembic import command

    move = command.upgrade if direction == "upgrade" else command.downgrade
    move(_alembic_config(connection), revision)


async def schema_at(engine: AsyncEngine, revision: str) -> None:
    """An empty public schema migrated up to `revision`, not further."""
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
        await conn.run_sync(_alembic, "upgrade", revision)


async def downgrade_to(engine: AsyncEngine, revision: str) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(_alembic, "downgrade", revision)


async def column_names(db: asyncpg.Connection, table: str) -> set[str]:
    rows = await db.fetch("SELECT column_name FROM information_schema.columns WHERE table_name = $1", table)
    return {r["column_name"] for r in rows}
