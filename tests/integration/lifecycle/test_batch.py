"""POST /timers/batch on a real PostgreSQL (nothing fires): all or nothing, in request order."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest

from task_scheduler.timers.service import PAST_FIRE_AT_NOTE
from tests.support.api import SHORT_HORIZON, URL, assert_envelope, in_seconds, view
from tests.support.app import SharedApp
from tests.support.databases import timer_count


async def test_batch_creates_in_request_order(own: httpx.AsyncClient) -> None:
    timers = [
        {"seconds": 30, "url": "http://example.com/a"},
        {"minutes": 5, "url": "http://example.com/b", "labels": {"batch": "7"}},
        {"hours": 1, "url": "http://example.com/c", "method": "PUT", "body": "hi"},
    ]
    response = await own.post("/timers/batch", json={"timers": timers})
    assert response.status_code == 201, response.text
    created = response.json()["timers"]
    assert [set(c) for c in created] == [{"timer_id", "time_left"}] * 3
    ids = [c["timer_id"] for c in created]
    assert ids == sorted(ids)
    assert len(set(ids)) == 3
    assert [c["time_left"] for c in created] == [30, 300, 3600]
    for timer_id, sent in zip(ids, timers, strict=True):
        shown = await view(own, timer_id)
        assert shown["url"] == sent["url"]
        assert shown["labels"] == sent.get("labels", {})
        assert shown["method"] == sent.get("method", "POST")
        assert shown["body"] == sent.get("body")


async def test_a_batch_of_1000(api: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    timers = [{"seconds": n % 60, "url": f"http://example.com/{n}"} for n in range(1000)]
    response = await api.post("/timers/batch", json={"timers": timers})
    assert response.status_code == 201, response.text
    created = response.json()["timers"]
    assert len(created) == 1000
    assert await timer_count(db) == 1000
    urls = {row["id"]: row["url"] for row in await db.fetch("SELECT id, url FROM timers")}
    assert [urls[c["timer_id"]] for c in created] == [t["url"] for t in timers]


@pytest.mark.parametrize(
    "body",
    [
        {"timers": [{"url": URL}] * 1001},
        {"timers": []},
        {"timers": {"url": URL}},
        {"timers": None},
        {},
        {"timers": [{"url": URL}], "extra": 1},
    ],
    ids=["1001", "empty", "object", "null", "missing", "extra-field"],
)
async def test_batch_shape_errors_are_422(
    rejecting: SharedApp, nothing_created: Callable[[], Awaitable[None]], body: dict[str, Any]
) -> None:
    response = await rejecting.client.post("/timers/batch", json=body)
    error = assert_envelope(response, 422)
    assert error["field"] in ("timers", "extra"), error
    await nothing_created()


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"url": "ftp://example.com/"}, "timers.2.url"),
        ({"url": URL, "seconds": -1}, "timers.2.seconds"),
        ({"url": URL, "headers": {"Host": "x"}}, "timers.2.headers"),
        ({"url": URL, "unknown": 1}, "timers.2.unknown"),
        ({"seconds": 5}, "timers.2.url"),
    ],
)
async def test_one_invalid_item_rejects_the_batch_naming_its_index(
    rejecting: SharedApp,
    nothing_created: Callable[[], Awaitable[None]],
    bad: dict[str, Any],
    field: str,
) -> None:
    timers = [{"url": URL}, {"url": URL, "seconds": 5}, bad, {"url": URL}]
    response = await rejecting.client.post("/timers/batch", json={"timers": timers})
    assert_envelope(response, 422, field=field)
    await nothing_created()


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"seconds": SHORT_HORIZON + 1}, "timers.1.seconds"),
        ({"hours": 2}, "timers.1.hours"),
        ({"body": "x" * 70_000}, "timers.1.body"),  # over the default 64 KiB webhook body
        ({"retry": {"timeout_seconds": 60}}, "timers.1.retry.timeout_seconds"),
    ],
)
async def test_a_settings_violation_in_one_item_rejects_the_batch_naming_its_index(
    short_horizon: SharedApp,
    nothing_created: Callable[[], Awaitable[None]],
    bad: dict[str, Any],
    field: str,
) -> None:
    timers = [{"url": URL, "seconds": SHORT_HORIZON}, {"url": URL, **bad}, {"url": URL}]
    response = await short_horizon.client.post("/timers/batch", json={"timers": timers})
    assert_envelope(response, 422, field=field)
    await nothing_created()


async def test_a_nul_in_one_batch_item_is_422_not_500(
    rejecting: SharedApp, nothing_created: Callable[[], Awaitable[None]]
) -> None:
    timers = [{"url": URL}, {"url": URL, "body": "\x00"}]
    response = await rejecting.client.post("/timers/batch", json={"timers": timers})
    assert_envelope(response, 422, field="timers.1.body")
    await nothing_created()


async def test_batch_notes_past_fire_at_per_item(own: httpx.AsyncClient) -> None:
    timers = [{"url": URL, "seconds": 60}, {"url": URL, "fire_at": in_seconds(-60)}]
    response = await own.post("/timers/batch", json={"timers": timers})
    assert response.status_code == 201, response.text
    first, second = response.json()["timers"]
    assert "note" not in first
    assert second["note"] == PAST_FIRE_AT_NOTE
    assert second["time_left"] == 0
