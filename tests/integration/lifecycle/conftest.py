"""The timer lifecycle over HTTP on a real PostgreSQL, without the dispatcher (nothing fires).

States the dispatcher would reach (firing, delivered, failed, expired) are set with plain SQL,
on a fresh database per test (`api` and `db`), as are tests that count or list timers.
Requests that must be rejected share one app per module (`rejecting`, `short_horizon`) and check
that they created nothing; tests that only create timers and read back their own share another
(`own`), so ~200 cases do not each pay for a database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from tests.support.api import SHORT_HORIZON
from tests.support.app import SharedApp, app_on_own_database

# make_settings' retry and lease values, also given to the module-scoped `own` app.
FAST_RETRY_SETTINGS = {
    "backoff_base_seconds": 0.05,
    "backoff_cap_seconds": 0.2,
    "connect_timeout_seconds": 1.0,
    "request_timeout_seconds": 2.0,
    "lease_seconds": 5.0,
}


@pytest.fixture(scope="module")
async def rejecting(pg_server_url: str, template_url: str) -> AsyncIterator[SharedApp]:
    """An app (default settings) that only receives requests that must not create a timer."""
    async with app_on_own_database(pg_server_url) as shared:
        yield shared


@pytest.fixture(scope="module")
async def own_timers_app(pg_server_url: str, template_url: str) -> AsyncIterator[SharedApp]:
    """An app for tests that create timers and read back only their own (no counts, no lists)."""
    async with app_on_own_database(pg_server_url, **FAST_RETRY_SETTINGS) as shared:
        yield shared


@pytest.fixture
def own(own_timers_app: SharedApp) -> httpx.AsyncClient:
    return own_timers_app.client


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
