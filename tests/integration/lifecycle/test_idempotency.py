"""Idempotent creation (the Idempotency-Key header) on a real PostgreSQL (nothing fires)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support.api import URL, assert_envelope, in_seconds
from tests.support.app import SharedApp
from tests.support.databases import timer_count


async def test_same_key_and_request_returns_the_same_timer(
    api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    body = {"seconds": 600, "url": URL, "labels": {"k": "v"}}
    headers = {"Idempotency-Key": "order-42"}
    first = await api.post("/timer", json=body, headers=headers)
    assert first.status_code == 201, first.text
    again = await api.post("/timer", json=dict(reversed(body.items())), headers=headers)
    assert again.status_code == 200, again.text
    assert again.json()["timer_id"] == first.json()["timer_id"]
    assert set(again.json()) == {"timer_id", "time_left"}
    assert 590 <= again.json()["time_left"] <= 600
    assert again.headers["location"] == first.headers["location"]
    assert await timer_count(db) == 1


async def test_same_key_with_another_request_is_422(api: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    headers = {"Idempotency-Key": "order-42"}
    first = await api.post("/timer", json={"seconds": 600, "url": URL}, headers=headers)
    assert first.status_code == 201
    for other in ({"seconds": 601, "url": URL}, {"seconds": 600, "url": URL + "?x"}):
        response = await api.post("/timer", json=other, headers=headers)
        assert_envelope(response, 422, field="Idempotency-Key")
    assert await timer_count(db) == 1


async def test_different_keys_create_different_timers(api: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    body = {"seconds": 600, "url": URL}
    a = await api.post("/timer", json=body, headers={"Idempotency-Key": "a"})
    b = await api.post("/timer", json=body, headers={"Idempotency-Key": "b"})
    plain = await api.post("/timer", json=body)
    assert [r.status_code for r in (a, b, plain)] == [201, 201, 201]
    assert len({r.json()["timer_id"] for r in (a, b, plain)}) == 3
    assert await timer_count(db) == 3


async def test_concurrent_requests_with_one_key_create_one_timer(
    api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    body = {"seconds": 600, "url": URL}
    responses = await asyncio.gather(
        *(api.post("/timer", json=body, headers={"Idempotency-Key": "burst"}) for _ in range(10))
    )
    assert sorted(r.status_code for r in responses) == [200] * 9 + [201], [r.text for r in responses]
    assert len({r.json()["timer_id"] for r in responses}) == 1
    assert await timer_count(db) == 1


async def test_a_key_older_than_the_window_creates_a_new_timer(
    custom_api: Callable[..., Any], db: asyncpg.Connection
) -> None:
    body = {"seconds": 600, "url": URL}
    headers = {"Idempotency-Key": "short-lived"}
    async with custom_api(idempotency_window_seconds=60) as client:
        first = await client.post("/timer", json=body, headers=headers)
        assert (await client.post("/timer", json=body, headers=headers)).status_code == 200
        # The key grows older than the window (by the clock the service reads: the database's).
        aged = await db.execute(
            "UPDATE idempotency_keys SET created_at = created_at - interval '2 minutes' WHERE key = $1",
            headers["Idempotency-Key"],
        )
        assert aged == "UPDATE 1"
        fresh = await client.post("/timer", json=body, headers=headers)
        assert fresh.status_code == 201, fresh.text
        assert fresh.json()["timer_id"] != first.json()["timer_id"]
        # The key now names the new timer, for a new window.
        replay = await client.post("/timer", json=body, headers=headers)
        assert (replay.status_code, replay.json()["timer_id"]) == (200, fresh.json()["timer_id"])
    assert await timer_count(db) == 2


@pytest.mark.parametrize("key", ["", "k" * 256])
async def test_invalid_idempotency_key_is_422(
    rejecting: SharedApp, nothing_created: Callable[[], Awaitable[None]], key: str
) -> None:
    response = await rejecting.client.post("/timer", json={"url": URL}, headers={"Idempotency-Key": key})
    error = assert_envelope(response, 422)
    assert error["field"].lower() == "idempotency-key"
    await nothing_created()


async def test_a_replay_repeats_the_past_fire_at_note(own: httpx.AsyncClient) -> None:
    body = {"fire_at": in_seconds(-60), "url": URL}
    headers = {"Idempotency-Key": "past"}
    first = await own.post("/timer", json=body, headers=headers)
    again = await own.post("/timer", json=body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
