"""Test databases: the migrated template every test database is cloned from, a fresh clone, and
plain SQL for what the API alone cannot set up or check."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from sqlalchemy import make_url

from task_scheduler.db import asyncpg_dsn

# One template per test process, so concurrent test runs on one server do not share it.
TEMPLATE_DB = f"ts_template_{os.getpid()}"


def with_database(url: str, name: str) -> str:
    """`url` with its database replaced by `name`."""
    return make_url(url).set(database=name).render_as_string(hide_password=False)


@asynccontextmanager
async def database_from_template(server_url: str) -> AsyncIterator[str]:
    """The URL of a fresh database cloned from the template, dropped afterwards."""
    name = f"ts_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(asyncpg_dsn(server_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}"')
        yield with_database(server_url, name)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def timer_count(db: asyncpg.Connection) -> int:
    count: int = await db.fetchval("SELECT count(*) FROM timers")
    return count


async def set_status(db: asyncpg.Connection, timer_id: int, status: str) -> None:
    """What the dispatcher would do, done by hand (for tests in which nothing fires)."""
    await db.execute(
        "UPDATE timers SET status = $2, updated_at = now(),"
        " lease_owner = CASE WHEN $2 = 'firing' THEN 'test-instance' END WHERE id = $1",
        timer_id,
        status,
    )


async def statuses(database_url: str) -> dict[str, int]:
    """How many timers are in each status, read on a connection of its own."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        rows = await conn.fetch("SELECT status, count(*) AS n FROM timers GROUP BY status")
    finally:
        await conn.close()
    return {r["status"]: r["n"] for r in rows}


async def set_database_default(url: str, setting: str, value: str) -> None:
    """`ALTER DATABASE ... SET setting = value` on the database of `url`, as an operator could: in
    force for every connection made after (checked on a new one)."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        name = await conn.fetchval("SELECT current_database()")
        await conn.execute(f"ALTER DATABASE \"{name}\" SET {setting} = '{value}'")
    finally:
        await conn.close()
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        assert await conn.fetchval(f"SHOW {setting}") == value
    finally:
        await conn.close()
