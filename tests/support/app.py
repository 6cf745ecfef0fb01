"""The app in process: with its lifespan and an ASGI client, and one per module on a database of
its own (for tests that may share it)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import uvicorn
from fastapi import FastAPI

from task_scheduler.app import create_app
from task_scheduler.config import Settings
from task_scheduler.db import asyncpg_dsn
from tests.support.databases import database_from_template, timer_count
from tests.support.processes import free_port

# The `service` fixture: `async with service(**settings) as client:` runs the whole service.
ServiceFactory = Callable[..., Any]


@asynccontextmanager
async def running_app(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan (database, migrations, dispatcher) and an in-process client."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


@dataclass
class SharedApp:
    client: httpx.AsyncClient
    database: asyncpg.Connection

    async def timer_count(self) -> int:
        return await timer_count(self.database)


@asynccontextmanager
async def app_on_own_database(pg_server_url: str, **overrides: Any) -> AsyncIterator[SharedApp]:
    """Like the `api` fixture, for a whole module: its own database cloned from the template."""
    async with database_from_template(pg_server_url) as url:
        settings = Settings.model_validate(
            {"database_url": url, "db_pool_size": 2, "log_format": "console", **overrides}
        )
        database = await asyncpg.connect(asyncpg_dsn(url))
        try:
            async with running_app(create_app(settings, run_dispatcher=False)) as client:
                yield SharedApp(client, database)
        finally:
            await database.close()


@asynccontextmanager
async def served(app: FastAPI) -> AsyncIterator[str]:
    """The app on a free port of 127.0.0.1, lifespan included; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, ws="none")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not serving.done(), "the server did not start"
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving
