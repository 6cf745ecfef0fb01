"""The service rides out database trouble and starts on its own embedded PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import make_url, text

from task_scheduler.app import create_app
from task_scheduler.config import Settings
from task_scheduler.db import DatabaseUnusable, asyncpg_dsn, create_engine, wait_for_database
from task_scheduler.delivery.listener import LISTEN_APPLICATION_NAME
from tests.support.app import running_app
from tests.support.databases import set_database_default
from tests.support.polling import wait_for_status
from tests.support.receiver import Receiver

WAIT = 20.0


async def test_claims_fail_while_the_table_is_gone_then_resume(
    service: Callable[..., Any], receiver: Receiver, database_url: str
) -> None:
    admin = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        async with service() as client:
            created = await client.post("/timer", json={"seconds": 2, "url": receiver.url})
            timer_id = created.json()["timer_id"]
            await admin.execute("ALTER TABLE timers RENAME TO timers_away")
            await asyncio.sleep(1.0)  # every claim in this second fails
            unavailable = await client.get(f"/timer/{timer_id}")
            assert unavailable.status_code >= 500
            assert "error" in unavailable.json()
            await admin.execute("ALTER TABLE timers_away RENAME TO timers")
            view = await wait_for_status(client, timer_id, "delivered", WAIT)
    finally:
        await admin.close()
    assert view["status"] == "delivered"
    assert receiver.counts() == {timer_id: 1}


async def test_listen_connection_killed_by_the_server_reconnects(
    service: Callable[..., Any], receiver: Receiver, database_url: str
) -> None:
    admin = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        async with service(poll_interval_seconds=30.0) as client:
            killed = 0
            for _ in range(100):  # the LISTEN connection opens just after start
                killed = await admin.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND application_name = $1",
                    LISTEN_APPLICATION_NAME,
                )
                if killed:
                    break
                await asyncio.sleep(0.05)
            assert killed == 1
            await asyncio.sleep(1.5)  # reconnect backoff is 0.5 s
            # With a 30 s poll only a NOTIFY on the new LISTEN connection can fire this in time.
            created = await client.post("/timer", json={"seconds": 0, "url": receiver.url})
            timer_id = created.json()["timer_id"]
            assert await receiver.wait_for(lambda: receiver.counts()[timer_id] == 1, 10.0)
    finally:
        await admin.close()


async def test_readyz_reports_an_outdated_schema(api: httpx.AsyncClient, database_url: str) -> None:
    admin = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await admin.execute("UPDATE alembic_version SET version_num = 'old'")
        response = await api.get("/readyz")
    finally:
        await admin.close()
    assert response.status_code == 503
    assert "migration" in response.json()["error"]["message"]


async def test_wait_for_database_gives_up_on_an_unreachable_server() -> None:
    engine = create_engine("postgresql://nobody@127.0.0.1:1/none", pool_size=1)
    try:
        with pytest.raises(OSError, match=r"Connect call failed|refused"):
            await wait_for_database(engine, within_seconds=0.5)
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"database": "no_such_database_here"}, 'database "no_such_database_here" does not exist'),
        ({"username": "no_such_role_here"}, 'role "no_such_role_here" does not exist'),
    ],
)
async def test_wait_for_database_fails_at_once_on_a_wrong_database_or_user(
    pg_server_url: str, change: dict[str, str], problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression: a wrong name, user or password was retried for 60 s at start."""
    url = make_url(pg_server_url).set(**change).render_as_string(hide_password=False)
    engine = create_engine(url, pool_size=1)
    try:
        with pytest.raises(DatabaseUnusable, match=problem):
            await wait_for_database(engine, within_seconds=60)
    finally:
        await engine.dispose()
    assert not [r for r in caplog.records if getattr(r, "action", "") == "db.waiting"]


async def test_a_database_that_is_not_utf8_is_refused_at_start(
    pg_server_url: str, make_settings: Callable[..., Settings]
) -> None:
    """Regression: in a SQL_ASCII database, one timer row holding a byte that is not UTF-8
    (written past the service) made every claim fail, so nothing was delivered while /readyz said
    200, and GET /timers answered 500. The service now refuses such a database at start, naming
    its encoding."""
    name = f"ascii_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(asyncpg_dsn(pg_server_url))
    try:
        await admin.execute(
            f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C'"
        )
        url = make_url(pg_server_url).set(database=name).render_as_string(hide_password=False)
        with pytest.raises(DatabaseUnusable, match="uses the encoding SQL_ASCII; the service needs UTF8"):
            async with running_app(create_app(make_settings(database_url=url))):
                pass
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


async def test_a_database_whose_transactions_are_read_only_is_refused_at_start(
    database_url: str, make_settings: Callable[..., Settings]
) -> None:
    """A database set read-only by default (or a standby) failed the start deep in the
    migrations with PostgreSQL's own error; the start now says what is wrong."""
    await set_database_default(database_url, "default_transaction_read_only", "on")
    with pytest.raises(DatabaseUnusable, match="makes every transaction read-only"):
        async with running_app(create_app(make_settings())):
            pass


async def test_commits_are_durable_on_a_database_that_says_otherwise(database_url: str) -> None:
    """On a database whose synchronous_commit is off (an operator's setting for speed), a
    PostgreSQL crash could undo a claim or an outcome the service already acted on: its
    connections turn it on again."""
    await set_database_default(database_url, "synchronous_commit", "off")
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            assert (await conn.execute(text("SHOW synchronous_commit"))).scalar_one() == "on"
    finally:
        await engine.dispose()


async def test_embedded_postgres_when_database_url_is_unset(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(database_url=None, data_dir=tmp_path / "data")
    async with running_app(create_app(settings, run_dispatcher=False)) as client:
        created = await client.post("/timer", json={"minutes": 1, "url": "http://example.com/"})
        assert created.status_code == 201
        assert created.json()["time_left"] == 60
        assert (await client.get("/readyz")).status_code == 200
    assert (tmp_path / "data" / "pg" / "PG_VERSION").exists()
