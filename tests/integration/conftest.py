from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest

from task_scheduler.app import create_app
from task_scheduler.config import Settings
from task_scheduler.db import asyncpg_dsn
from tests.support.api import SHORT_HORIZON
from tests.support.app import ServiceFactory, SharedApp, app_on_own_database, running_app
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


# Requests that must be rejected share one app per module: a rejected request changes nothing,
# and such tests end by checking that nothing was created (`nothing_created`).


@pytest.fixture(scope="module")
async def rejecting(pg_server_url: str, template_url: str) -> AsyncIterator[SharedApp]:
    """An app (default settings) that only receives requests that must not create a timer."""
    async with app_on_own_database(pg_server_url) as shared:
        yield shared


@pytest.fixture(scope="module")
async def short_horizon(pg_server_url: str, template_url: str) -> AsyncIterator[SharedApp]:
    """Like `rejecting`, with a one-hour horizon."""
    async with app_on_own_database(pg_server_url, max_horizon_seconds=SHORT_HORIZON) as shared:
        yield shared


@pytest.fixture
async def nothing_created(rejecting: SharedApp, short_horizon: SharedApp) -> Callable[[], Awaitable[None]]:
    """Call at the end of a test: asserts that no shared app gained a timer."""
    before = (await rejecting.timer_count(), await short_horizon.timer_count())

    async def check() -> None:
        assert (await rejecting.timer_count(), await short_horizon.timer_count()) == before

    return check
