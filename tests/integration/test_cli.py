"""The console commands, run in-process on a real database."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import make_url

from task_scheduler.cli import main
from task_scheduler.db import asyncpg_dsn


def test_invalid_configuration_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SCHEDULER_LEASE_SECONDS", "1")
    monkeypatch.setenv("SCHEDULER_REQUEST_TIMEOUT_SECONDS", "5")
    assert main(["migrate"]) == 2
    assert "SCHEDULER_LEASE_SECONDS" in capsys.readouterr().err


def test_bad_port_flag_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PORT", raising=False)
    assert main(["serve", "--host", "127.0.0.1", "--port", "70000"]) == 2


async def test_migrate_creates_the_schema(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await conn.execute("DROP SCHEMA public CASCADE")
        await conn.execute("CREATE SCHEMA public")
        monkeypatch.setenv("DATABASE_URL", database_url)
        monkeypatch.setenv("SCHEDULER_LOG_FORMAT", "json")
        assert await asyncio.to_thread(main, ["migrate"]) == 0
        assert await conn.fetchval("SELECT version_num FROM alembic_version") is not None
        assert await conn.fetchval("SELECT count(*) FROM timers") == 0
    finally:
        await conn.close()


def test_migrate_against_a_database_that_does_not_exist_exits_2_at_once(
    pg_server_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = make_url(pg_server_url).set(database="no_such_database_here").render_as_string(hide_password=False)
    monkeypatch.setenv("DATABASE_URL", url)
    assert main(["migrate"]) == 2
    assert 'database "no_such_database_here" does not exist' in capsys.readouterr().err
