"""The timer lifecycle over HTTP on a real PostgreSQL, without the dispatcher (nothing fires).

States the dispatcher would reach (firing, delivered, failed, expired) are set with plain SQL,
on a fresh database per test (`api` and `db`), as are tests that count or list timers.
Requests that must be rejected share one app per module (`rejecting`, `short_horizon`) and check
that they created nothing; tests that only create timers and read back their own share another
(`own`), so ~200 cases do not each pay for a database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

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
async def own_timers_app(pg_server_url: str, template_url: str) -> AsyncIterator[SharedApp]:
    """An app for tests that create timers and read back only their own (no counts, no lists)."""
    async with app_on_own_database(pg_server_url, **FAST_RETRY_SETTINGS) as shared:
        yield shared


@pytest.fixture
def own(own_timers_app: SharedApp) -> httpx.AsyncClient:
    return own_timers_app.client
