"""When a timer fires and how late it may be delivered, over HTTP on a real PostgreSQL (nothing
fires): `fire_at`, the horizon, `deliver_before` and `max_lateness_seconds`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta, timezone
from typing import Any

import httpx
import pytest

from task_scheduler.timers.service import PAST_FIRE_AT_NOTE
from tests.support.api import (
    SHORT_HORIZON,
    TEST_RETRY_DEFAULTS,
    URL,
    assert_envelope,
    create,
    in_seconds,
    view,
    when,
)
from tests.support.app import SharedApp

# -- fire_at ------------------------------------------------------------------------------------


async def test_fire_at_with_an_offset_sets_the_due_time(own: httpx.AsyncClient) -> None:
    for fire_at in (
        in_seconds(3600, timezone(timedelta(hours=2))),
        in_seconds(3600, timezone(-timedelta(hours=9, minutes=30))),
        in_seconds(3600).replace("+00:00", "Z"),
    ):
        response = await own.post("/timer", json={"fire_at": fire_at, "url": URL})
        assert response.status_code == 201, response.text
        created = response.json()
        assert set(created) == {"timer_id", "time_left"}
        assert 3590 <= created["time_left"] <= 3600
        shown = await view(own, created["timer_id"])
        assert when(shown["due_at"]) == when(fire_at)


async def test_fire_at_in_the_past_fires_now_with_a_note(own: httpx.AsyncClient) -> None:
    fire_at = in_seconds(-60)
    response = await own.post("/timer", json={"fire_at": fire_at, "url": URL})
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["time_left"] == 0
    assert created["note"] == PAST_FIRE_AT_NOTE
    assert "fires now" in created["note"]
    shown = await view(own, created["timer_id"])
    assert shown["time_left"] == 0
    assert shown["status"] == "pending"
    assert when(shown["due_at"]) == when(fire_at)


async def test_a_plain_timer_takes_every_default(own: httpx.AsyncClient) -> None:
    response = await own.post("/timer", json={"seconds": 30, "url": URL})
    assert response.status_code == 201
    assert "note" not in response.json()
    shown = await view(own, response.json()["timer_id"])
    assert (shown["method"], shown["headers"], shown["body"]) == ("POST", {}, None)
    assert shown["labels"] == {}
    assert shown["deliver_before"] is None
    assert shown["retry"] == TEST_RETRY_DEFAULTS


@pytest.mark.parametrize("fire_at", ["2030-01-01T00:00:00", "2030-01-01 00:00:00", "2030-01-01T00:00:00.5"])
async def test_naive_fire_at_is_422(
    rejecting: SharedApp, nothing_created: Callable[[], Awaitable[None]], fire_at: str
) -> None:
    response = await rejecting.client.post("/timer", json={"fire_at": fire_at, "url": URL})
    assert_envelope(response, 422, field="fire_at")
    await nothing_created()


@pytest.mark.parametrize(
    "fire_at",
    [1893456000, 1893456000.5, True, ["2030-01-01T00:00:00Z"], {"at": "2030-01-01T00:00:00Z"}, ""],
    ids=["int", "float", "bool", "list", "object", "empty"],
)
async def test_fire_at_that_is_not_a_string_is_422(
    rejecting: SharedApp, nothing_created: Callable[[], Awaitable[None]], fire_at: Any
) -> None:
    response = await rejecting.client.post("/timer", json={"fire_at": fire_at, "url": URL})
    assert_envelope(response, 422, field="fire_at")
    await nothing_created()


@pytest.mark.parametrize(
    ("field", "value"),
    [("fire_at", "0001-01-01T00:00:00+01:00"), ("deliver_before", "9999-12-31T23:59:59-01:00")],
    ids=["fire_at-before-year-1-in-utc", "deliver_before-after-year-9999-in-utc"],
)
async def test_times_outside_what_postgresql_holds_are_not_500(
    rejecting: SharedApp, field: str, value: str
) -> None:
    response = await rejecting.client.post("/timer", json={field: value, "url": URL})
    assert response.status_code in (201, 422), response.text


async def test_fire_at_epoch_seconds_as_text_is_422(
    rejecting: SharedApp, nothing_created: Callable[[], Awaitable[None]]
) -> None:
    response = await rejecting.client.post("/timer", json={"fire_at": "1893456000", "url": URL})
    assert_envelope(response, 422, field="fire_at")
    await nothing_created()


@pytest.mark.parametrize("unit", ["hours", "minutes", "seconds"])
async def test_fire_at_with_a_duration_is_422(
    rejecting: SharedApp, nothing_created: Callable[[], Awaitable[None]], unit: str
) -> None:
    response = await rejecting.client.post("/timer", json={"fire_at": in_seconds(600), unit: 0, "url": URL})
    error = assert_envelope(response, 422)
    assert "fire_at" in error["message"]
    assert unit in error["message"]
    assert "not both" in error["message"]
    await nothing_created()


async def test_fire_at_beyond_the_horizon_is_422(
    short_horizon: SharedApp, nothing_created: Callable[[], Awaitable[None]]
) -> None:
    response = await short_horizon.client.post(
        "/timer", json={"fire_at": in_seconds(SHORT_HORIZON + 60), "url": URL}
    )
    error = assert_envelope(response, 422, field="fire_at")
    assert str(SHORT_HORIZON) in error["message"]
    await nothing_created()


async def test_fire_at_inside_the_horizon_is_accepted(custom_api: Callable[..., Any]) -> None:
    async with custom_api(max_horizon_seconds=SHORT_HORIZON) as client:
        response = await client.post("/timer", json={"fire_at": in_seconds(SHORT_HORIZON - 60), "url": URL})
    assert response.status_code == 201, response.text


# -- deliver_before and max_lateness_seconds ----------------------------------------------------


async def test_max_lateness_sets_deliver_before_from_the_due_time(own: httpx.AsyncClient) -> None:
    for lateness in (300, 0, 0.5):
        shown = await view(own, await create(own, seconds=60, max_lateness_seconds=lateness))
        assert when(shown["deliver_before"]) == when(shown["due_at"]) + timedelta(seconds=lateness)


async def test_deliver_before_is_stored(api: httpx.AsyncClient) -> None:
    deliver_before = in_seconds(7200)
    shown = await view(api, await create(api, seconds=60, deliver_before=deliver_before))
    assert when(shown["deliver_before"]) == when(deliver_before)


async def test_deliver_before_and_max_lateness_together_are_422(
    rejecting: SharedApp, nothing_created: Callable[[], Awaitable[None]]
) -> None:
    response = await rejecting.client.post(
        "/timer",
        json={"deliver_before": in_seconds(7200), "max_lateness_seconds": 10, "url": URL},
    )
    error = assert_envelope(response, 422)
    assert "deliver_before" in error["message"]
    assert "max_lateness_seconds" in error["message"]
    await nothing_created()


async def test_deliver_before_earlier_than_the_due_time_is_422(
    rejecting: SharedApp, nothing_created: Callable[[], Awaitable[None]]
) -> None:
    response = await rejecting.client.post(
        "/timer", json={"seconds": 600, "deliver_before": in_seconds(60), "url": URL}
    )
    error = assert_envelope(response, 422, field="deliver_before")
    assert "earlier than the due time" in error["message"]
    await nothing_created()


@pytest.mark.parametrize(
    "lateness",
    [
        -1,
        -0.5,
        ("10"),
        (True),
        ([10]),
    ],
)
async def test_invalid_max_lateness_is_422(
    rejecting: SharedApp, nothing_created: Callable[[], Awaitable[None]], lateness: Any
) -> None:
    response = await rejecting.client.post("/timer", json={"max_lateness_seconds": lateness, "url": URL})
    assert_envelope(response, 422, field="max_lateness_seconds")
    await nothing_created()


@pytest.mark.parametrize("lateness", [10**30, 1e300, 3e11], ids=["1e30", "1e300", "9500-years"])
async def test_absurd_max_lateness_is_422_not_500(
    rejecting: SharedApp, nothing_created: Callable[[], Awaitable[None]], lateness: float
) -> None:
    response = await rejecting.client.post("/timer", json={"max_lateness_seconds": lateness, "url": URL})
    assert_envelope(response, 422, field="max_lateness_seconds")
    await nothing_created()
