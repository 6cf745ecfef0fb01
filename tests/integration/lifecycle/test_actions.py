"""Acting on one timer over HTTP on a real PostgreSQL (nothing fires; the states the dispatcher
would reach are set with SQL): cancel, redrive and its attempt history."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from tests.support.api import assert_envelope, create, view, without_time_left
from tests.support.app import SharedApp
from tests.support.databases import set_status

# -- DELETE /timer/{id} -------------------------------------------------------------------------


async def test_cancel_a_pending_timer(api: httpx.AsyncClient) -> None:
    timer_id = await create(api, seconds=600)
    response = await api.delete(f"/timer/{timer_id}")
    assert response.status_code == 200, response.text
    cancelled = response.json()
    assert cancelled["timer_id"] == timer_id
    assert cancelled["status"] == "cancelled"
    shown = await view(api, timer_id)
    assert shown["status"] == "cancelled"
    assert shown["updated_at"] == cancelled["updated_at"]
    assert shown["due_at"] == cancelled["due_at"]


async def test_cancel_twice_is_409(api: httpx.AsyncClient) -> None:
    timer_id = await create(api, seconds=600)
    assert (await api.delete(f"/timer/{timer_id}")).status_code == 200
    error = assert_envelope(await api.delete(f"/timer/{timer_id}"), 409)
    assert error["code"] == "conflict"
    assert error["field"] == "status"
    assert "cancelled" in error["message"]


async def test_unknown_timer_is_404_for_every_action(api: httpx.AsyncClient) -> None:
    timer_id = await create(api, seconds=600)
    unknown = f"/timer/{timer_id + 1}"
    responses = [
        await api.delete(unknown),
        await api.patch(unknown, json={"minutes": 1}),
        await api.patch(unknown, json={"minutes": 1}, headers={"If-Match": '"1"'}),
        await api.post(f"{unknown}/retry"),
        await api.get(f"{unknown}/attempts"),
    ]
    for response in responses:
        error = assert_envelope(response, 404)
        assert error["code"] == "not_found"
        assert error["field"] == "timer_id"
        assert str(timer_id + 1) in error["message"]
    shown = await view(api, timer_id)
    assert (shown["status"], shown["time_left"] > 590) == ("pending", True)


async def test_cancel_is_409_unless_pending(api: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    for status in ("firing", "delivered", "failed", "expired"):
        timer_id = await create(api, seconds=600)
        await set_status(db, timer_id, status)
        error = assert_envelope(await api.delete(f"/timer/{timer_id}"), 409)
        assert error["field"] == "status"
        assert status in error["message"]
        assert (await view(api, timer_id))["status"] == status


@pytest.mark.parametrize("timer_id", ["0", "-1", "abc", str(2**63)])
async def test_cancel_invalid_id_is_422(
    rejecting: SharedApp, nothing_created: Callable[[], Awaitable[None]], timer_id: str
) -> None:
    assert_envelope(await rejecting.client.delete(f"/timer/{timer_id}"), 422, field="timer_id")
    await nothing_created()


# -- POST /timer/{id}/retry ---------------------------------------------------------------------


async def test_redrive_a_failed_or_expired_timer(api: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    for status in ("failed", "expired"):
        timer_id = await create(api, seconds=600, max_lateness_seconds=5)
        await set_status(db, timer_id, status)
        await db.execute("UPDATE timers SET attempts = 3, last_error = 'HTTP 503' WHERE id = $1", timer_id)
        response = await api.post(f"/timer/{timer_id}/retry")
        assert response.status_code == 200, response.text
        redriven = response.json()
        assert redriven["status"] == "pending"
        assert redriven["time_left"] == 0
        assert redriven["deliver_before"] is None
        assert redriven["attempts"] == 3  # the history stays; the budget restarts from here
        budget_from = "SELECT attempts_before_redrive FROM timers WHERE id = $1"
        assert await db.fetchval(budget_from, timer_id) == 3
        shown = await view(api, timer_id)
        assert (shown["status"], shown["time_left"]) == ("pending", 0)


async def test_redrive_is_409_unless_failed_or_expired(
    api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    for status in ("pending", "firing", "delivered", "cancelled"):
        timer_id = await create(api, seconds=600)
        await set_status(db, timer_id, status)
        before = await view(api, timer_id)
        error = assert_envelope(await api.post(f"/timer/{timer_id}/retry"), 409)
        assert error["field"] == "status"
        assert status in error["message"]
        assert without_time_left(await view(api, timer_id)) == without_time_left(before)


# -- GET /timer/{id}/attempts -------------------------------------------------------------------


async def test_a_new_timer_has_no_attempts(own: httpx.AsyncClient) -> None:
    timer_id = await create(own, seconds=600)
    response = await own.get(f"/timer/{timer_id}/attempts")
    assert response.status_code == 200
    assert response.json() == {"attempts": [], "next_cursor": None}


async def test_attempts_are_listed_in_order(api: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    timer_id = await create(api, seconds=600)
    other = await create(api, seconds=600)
    started = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
    rows = [
        (timer_id, 2, started + timedelta(seconds=5), 7.5, 200, None, None, "ok"),
        (timer_id, 1, started, 12.25, 503, "http_status", "HTTP 503", "busy"),
        (other, 1, started, 1.0, None, "timeout", "timed out", None),
    ]
    await db.executemany(
        "INSERT INTO timer_attempts (timer_id, attempt, started_at, duration_ms, status_code,"
        " error_class, error_message, response_body) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        rows,
    )
    attempts = (await api.get(f"/timer/{timer_id}/attempts")).json()["attempts"]
    assert [a["attempt"] for a in attempts] == [1, 2]
    assert attempts[0] == {
        "attempt": 1,
        "started_at": "2026-11-29T10:00:00Z",
        "duration_ms": 12.25,
        "status_code": 503,
        "error_class": "http_status",
        "error_message": "HTTP 503",
        "response_body": "busy",
    }
    assert (attempts[1]["status_code"], attempts[1]["error_class"]) == (200, None)
