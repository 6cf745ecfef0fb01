"""GET /timers on a real PostgreSQL (nothing fires): order, filters and cursor pagination."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support.api import URL, assert_envelope, create, view, without_time_left
from tests.support.app import SharedApp
from tests.support.databases import set_status


def cursor_of(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


async def list_ids(client: httpx.AsyncClient, **params: Any) -> list[int]:
    response = await client.get("/timers", params=params)
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["next_cursor"] is None, "use walk() for more than one page"
    return [t["timer_id"] for t in page["timers"]]


async def walk(client: httpx.AsyncClient, **params: Any) -> list[list[int]]:
    """Every page of a listing, following next_cursor."""
    pages: list[list[int]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/timers", params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append([t["timer_id"] for t in page["timers"]])
        cursor = page["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 100, "the cursor does not advance"


async def test_list_is_ordered_by_due_time_then_id(api: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    ids = [await create(api, seconds=60) for _ in range(6)]
    base = datetime(2027, 1, 1, tzinfo=UTC)
    offsets = [3, 1, 2, 1, 1, 0]  # several share a due time; ids break the tie
    for timer_id, offset in zip(ids, offsets, strict=True):
        await db.execute(
            "UPDATE timers SET due_at = $2 WHERE id = $1", timer_id, base + timedelta(hours=offset)
        )
    expected = [i for _, i in sorted(zip(offsets, ids, strict=True))]
    assert await list_ids(api) == expected
    assert expected == [ids[5], ids[1], ids[3], ids[4], ids[2], ids[0]]
    shown = (await api.get("/timers")).json()["timers"][0]
    assert without_time_left(shown) == without_time_left(await view(api, ids[5]))


async def test_a_batch_shares_one_due_time_and_lists_by_id(api: httpx.AsyncClient) -> None:
    later = await create(api, seconds=120)
    batch = await api.post("/timers/batch", json={"timers": [{"url": URL, "seconds": 60}] * 4})
    batch_ids = [t["timer_id"] for t in batch.json()["timers"]]
    listed = (await api.get("/timers")).json()["timers"]
    assert [t["timer_id"] for t in listed] == [*batch_ids, later]
    assert len({t["due_at"] for t in listed[:4]}) == 1


async def test_list_filters_by_status(api: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    pending, cancelled, failed, delivered = [await create(api, seconds=60) for _ in range(4)]
    await api.delete(f"/timer/{cancelled}")
    await set_status(db, failed, "failed")
    await set_status(db, delivered, "delivered")
    assert await list_ids(api, status="pending") == [pending]
    assert await list_ids(api, status="cancelled") == [cancelled]
    assert await list_ids(api, status="failed") == [failed]
    assert await list_ids(api, status="delivered") == [delivered]
    assert await list_ids(api, status="expired") == []
    assert await list_ids(api) == [pending, cancelled, failed, delivered]


async def test_list_filters_by_labels_all_of_them(api: httpx.AsyncClient) -> None:
    prod_a = await create(api, seconds=60, labels={"env": "prod", "team": "a"})
    prod_b = await create(api, seconds=61, labels={"env": "prod", "team": "b"})
    dev_a = await create(api, seconds=62, labels={"env": "dev", "team": "a", "x": "1"})
    with_colon = await create(api, seconds=63, labels={"link": "http://x:8080/"})
    await create(api, seconds=64)
    assert await list_ids(api, label="env:prod") == [prod_a, prod_b]
    assert await list_ids(api, label=["env:prod", "team:a"]) == [prod_a]
    assert await list_ids(api, label=["team:a"]) == [prod_a, dev_a]
    assert await list_ids(api, label=["env:prod", "team:c"]) == []
    assert await list_ids(api, label="env:staging") == []
    assert await list_ids(api, label="env:") == []
    assert await list_ids(api, label="link:http://x:8080/") == [with_colon]
    assert await list_ids(api, label="env:prod", status="cancelled") == []


async def test_list_filters_by_due_range(api: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    ids = [await create(api, seconds=60) for _ in range(3)]
    t0 = datetime(2027, 1, 1, tzinfo=UTC)
    for n, timer_id in enumerate(ids):
        await db.execute(
            "UPDATE timers SET due_at = $2 WHERE id = $1", timer_id, t0 + timedelta(seconds=10 * n)
        )
    t10 = (t0 + timedelta(seconds=10)).isoformat()
    t20 = (t0 + timedelta(seconds=20)).isoformat()
    assert await list_ids(api, due_after=t10) == ids[1:]  # inclusive
    assert await list_ids(api, due_before=t20) == ids[:2]  # exclusive
    assert await list_ids(api, due_after=t10, due_before=t20) == [ids[1]]
    # The same instant in another offset.
    assert await list_ids(api, due_after="2027-01-01T01:00:10+01:00") == ids[1:]
    assert await list_ids(api, due_after=t20, due_before=t10) == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"label": "nocolon"}, "label"),
        ({"label": ":value"}, "label"),
        ({"label": ["env:prod", "bad"]}, "label"),
        ({"status": "bogus"}, "status"),
        ({"status": "Pending"}, "status"),
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"due_after": "2027-01-01T00:00:00"}, "due_after"),
        ({"due_before": "tomorrow"}, "due_before"),
        ({"cursor": "!!!"}, "cursor"),
        ({"cursor": "bm90IGEgY3Vyc29y"}, "cursor"),  # "not a cursor"
        ({"cursor": cursor_of(["2027-01-01T00:00:00", 1])}, "cursor"),  # naive
        ({"cursor": cursor_of(["2027-01-01T00:00:00+00:00", "1"])}, "cursor"),
        ({"cursor": cursor_of(["2027-01-01T00:00:00+00:00"])}, "cursor"),
        ({"cursor": cursor_of({"due": "2027-01-01T00:00:00+00:00", "id": 1})}, "cursor"),
        ({"cursor": "a" * 201}, "cursor"),
    ],
)
async def test_invalid_list_parameters_are_422(
    rejecting: SharedApp, params: dict[str, Any], field: str
) -> None:
    response = await rejecting.client.get("/timers", params=params)
    assert_envelope(response, 422, field=field)


@pytest.mark.parametrize(
    "cursor",
    [
        cursor_of(["2027-01-01T00:00:00+00:00", 10**30]),
        cursor_of(["0001-01-01T00:00:00+01:00", 1]),
    ],
    ids=["id-beyond-bigint", "before-year-1-utc"],
)
async def test_out_of_range_cursor_is_422_not_500(rejecting: SharedApp, cursor: str) -> None:
    response = await rejecting.client.get("/timers", params={"cursor": cursor})
    assert_envelope(response, 422, field="cursor")


async def test_due_filter_before_year_one_is_not_500(rejecting: SharedApp) -> None:
    response = await rejecting.client.get("/timers", params={"due_after": "0001-01-01T00:00:00+01:00"})
    assert response.status_code in (200, 422), response.text


async def test_label_filter_with_nul_is_not_500(rejecting: SharedApp) -> None:
    response = await rejecting.client.get("/timers", params={"label": "k:\x00"})
    assert response.status_code in (200, 422), response.text


async def test_pagination_walks_every_timer_once_in_order(
    api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    # 25 timers: singles and batches, where each batch shares one due time.
    for seconds in (30, 90, 10, 50, 70):
        await create(api, seconds=seconds, labels={"group": "single"})
    for seconds in (40, 60, 20, 80):
        batch = [{"url": URL, "seconds": seconds, "labels": {"group": "batch"}}] * 5
        assert (await api.post("/timers/batch", json={"timers": batch})).status_code == 201
    expected = [r["id"] for r in await db.fetch("SELECT id FROM timers ORDER BY due_at, id")]
    assert len(expected) == 25

    pages = await walk(api, limit=7)
    assert [len(p) for p in pages] == [7, 7, 7, 4]
    assert [i for p in pages for i in p] == expected

    batch_only = await walk(api, limit=6, label="group:batch")
    assert [len(p) for p in batch_only] == [6, 6, 6, 2]
    flat = [i for p in batch_only for i in p]
    assert flat == [i for i in expected if i not in await list_ids(api, label="group:single")]

    assert await walk(api, limit=25) == [expected]  # an exactly full page has no next page
    assert await walk(api, limit=1000) == [expected]
    assert await walk(api) == [expected]  # default limit 100


async def test_pagination_skips_nothing_when_timers_are_added_behind_the_cursor(
    api: httpx.AsyncClient,
) -> None:
    first = [await create(api, seconds=100 + n) for n in range(4)]
    page = (await api.get("/timers", params={"limit": 2})).json()
    assert [t["timer_id"] for t in page["timers"]] == first[:2]
    earlier = await create(api, seconds=1)  # sorts before the cursor: not on later pages
    later = await create(api, seconds=1000)
    rest = await walk(api, limit=2, cursor=page["next_cursor"])
    assert [i for p in rest for i in p] == [*first[2:], later]
    assert earlier not in [i for p in rest for i in p]
