"""Helpers over the HTTP API for in-process clients: create and read timers, wait for their
outcome, and the one error envelope every 4xx/5xx must use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx

from tests.support.polling import WAIT, wait_for_status

URL = "http://example.com/webhook"
# A one-hour horizon for the apps that test it, far below the default so a test can go beyond it.
SHORT_HORIZON = 3600
# What GET shows as the retry policy of a timer that sets none, under make_settings' values.
TEST_RETRY_DEFAULTS = {
    "max_attempts": 5,
    "backoff_base_seconds": 0.05,
    "backoff_cap_seconds": 0.2,
    "timeout_seconds": 2.0,
}


def assert_envelope(
    response: httpx.Response, status: int | tuple[int, ...], field: str | None = None
) -> dict[str, Any]:
    """The one error envelope; `field` is checked (and must be named in the message) if given."""
    allowed = status if isinstance(status, tuple) else (status,)
    assert response.status_code in allowed, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert {"code", "message", "field"} <= set(error)
    assert isinstance(error["code"], str)
    assert error["code"]
    assert isinstance(error["message"], str)
    assert error["message"]
    assert "Traceback" not in response.text
    if field is not None:
        assert error["field"] == field
        assert field in error["message"]
    return error


async def create(client: httpx.AsyncClient, url: str = URL, **fields: Any) -> int:
    """POST /timer with `fields` (JSON values), which must create it; the new timer's id."""
    response = await client.post("/timer", json={"url": url, **fields})
    assert response.status_code == 201, response.text
    timer_id: int = response.json()["timer_id"]
    return timer_id


async def view(client: httpx.AsyncClient, timer_id: int) -> dict[str, Any]:
    response = await client.get(f"/timer/{timer_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def settled(
    client: httpx.AsyncClient, timer_id: int, status: str, within: float = WAIT
) -> dict[str, Any]:
    """The timer's view once it reaches `status`, which it must within `within` seconds."""
    shown = await wait_for_status(client, timer_id, status, within)
    assert shown["status"] == status, shown
    return shown


def without_time_left(shown: dict[str, Any]) -> dict[str, Any]:
    """A timer's view minus what changes by itself as time passes."""
    return {k: v for k, v in shown.items() if k != "time_left"}


def when(value: str) -> datetime:
    return datetime.fromisoformat(value)


def in_seconds(seconds: float, tz: timezone = UTC) -> str:
    """An RFC 3339 time `seconds` from now, whole seconds, in `tz`."""
    moment = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=seconds)
    return moment.astimezone(tz).isoformat()
