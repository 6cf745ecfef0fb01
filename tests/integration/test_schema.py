"""The migrations produce exactly the schema the models describe, and instances may migrate at once."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from task_scheduler.db import SCHEMA_HEAD, _alembic_config, create_engine, migrate, schema_is_current
from task_scheduler.tables import metadata


def alembic_heads() -> set[str]:
    """The heads Alembic finds in the migration scripts (SCHEMA_HEAD must be the only one)."""
    return set(ScriptDirectory.from_config(_alembic_config()).get_heads())


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


def test_schema_head_is_alembics_only_head() -> None:
    assert alembic_heads() == {SCHEMA_HEAD}


def test_starting_on_a_current_schema_does_not_load_alembic(database_url: str) -> None:
    """Start-up time: a current schema is recognised with one SELECT; Alembic is not imported."""
    script = (
        "import asyncio, sys\n"
        "from task_scheduler.db import SCHEMA_HEAD, create_engine, migrate, schema_is_current\n"
        "async def main() -> None:\n"
        f"    engine = create_engine({database_url!r}, pool_size=1)\n"
        "    await migrate(engine)\n"
        "    assert await schema_is_current(engine)\n"
        "    await engine.dispose()\n"
        "asyncio.run(main())\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako')))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
