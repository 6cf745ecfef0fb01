"""Where the API key is read from: `Authorization: Bearer` (any case), else `X-API-Key`."""

from __future__ import annotations

import pytest

from task_scheduler.auth.dependencies import presented_key


@pytest.mark.parametrize(
    ("headers", "key"),
    [
        ({"authorization": "Bearer tsk_a_b"}, "tsk_a_b"),
        ({"authorization": "bearer  tsk_a_b "}, "tsk_a_b"),
        ({"authorization": "BEARER tsk_a_b", "x-api-key": "other"}, "tsk_a_b"),
        ({"authorization": "Basic dXNlcjpwdw==", "x-api-key": "tsk_c_d"}, "tsk_c_d"),
        ({"authorization": "Bearer ", "x-api-key": "tsk_c_d"}, "tsk_c_d"),
        ({"authorization": "Bearer"}, None),
        ({"x-api-key": "tsk_c_d"}, "tsk_c_d"),
        ({"x-api-key": ""}, None),
        ({}, None),
    ],
)
def test_presented_key(headers: dict[str, str], key: str | None) -> None:
    assert presented_key(headers) == key


def test_the_default_settings_never_rate_limit_the_owner() -> None:
    """As installed, one busy backend (or every loopback client, which share one principal) is
    not throttled: 20,000 requests at once pass; with a limit on, a burst is refused."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from task_scheduler.auth.service import AuthService
    from task_scheduler.config import Settings
    from task_scheduler.errors import TooManyRequests

    engine = create_async_engine("postgresql+asyncpg://unused@127.0.0.1:1/none")  # never connected
    defaults = AuthService(engine=engine, settings=Settings(database_url="postgresql://x@127.0.0.1/x"))
    for _ in range(20_000):
        defaults._rate_limit("loopback")
    limited = AuthService(
        engine=engine,
        settings=Settings(database_url="postgresql://x@127.0.0.1/x", rate_limit_per_second=10),
    )
    for _ in range(20):  # the burst: twice the per-second rate
        limited._rate_limit("loopback")
    with pytest.raises(TooManyRequests, match="SCHEDULER_RATE_LIMIT_PER_SECOND"):
        limited._rate_limit("loopback")
