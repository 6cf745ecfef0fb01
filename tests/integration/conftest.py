from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import httpx
import pytest

from task_scheduler.app import create_app
from task_scheduler.config import Settings
from task_scheduler.db import asyncpg_dsn
from tests.support.app import ServiceFactory, running_app
from tests.support.hostile_receiver import HostileReceiver
from tests.support.receiver import running
from tests.support.receiver_extras import HeaderReceiver


@pytest.fixture
def custom_api(make_settings: Callable[..., Settings]) -> ServiceFactory:
    """`async with custom_api(**settings) as client:` the API (no dispatcher) with overrides."""

    def start(**overrides: Any) -> Any:
        return running_app(create_app(make_settings(**overrides), run_dispatcher=False))

    return start


@pytest.fixture
async def api(custom_api: ServiceFactory) -> AsyncIterator[httpx.AsyncClient]:
    """The API without the dispatcher: nothing fires."""
    async with custom_api() as client:
        yield client


@pytest.fixture
def service(make_settings: Callable[..., Settings]) -> ServiceFactory:
    """`async with service(**settings) as client:` runs the whole service, dispatcher included."""

    def start(**overrides: Any) -> Any:
        return running_app(create_app(make_settings(**overrides)))

    return start


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection to this test's database (the `api` fixture's), for setup and checks."""
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    yield connection
    await connection.close()


@pytest.fixture
async def header_receiver() -> AsyncIterator[HeaderReceiver]:
    async with running(HeaderReceiver()) as r:
        yield r


@pytest.fixture
async def hostile() -> AsyncIterator[HostileReceiver]:
    async with running(HostileReceiver()) as r:
        yield r
