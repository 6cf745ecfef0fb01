"""PATCH /timer/{id} on a real PostgreSQL (nothing fires): rescheduling, editing what is sent,
ETag and If-Match, and what may not be edited."""

from __future__ import annotations

import re
from datetime import timedelta, timezone
from typing import Any

import asyncpg
import httpx

from task_scheduler.timers.service import etag_of
from tests.support.api import (
    TEST_RETRY_DEFAULTS,
    assert_envelope,
    create,
    in_seconds,
    view,
    when,
    without_time_left,
)
from tests.support.databases import set_status


async def test_patch_minutes_reschedules_from_now(own: httpx.AsyncClient) -> None:
    timer_id = await create(own, hours=1)
    before = await view(own, timer_id)
    response = await own.patch(f"/timer/{timer_id}", json={"minutes": 10})
    assert response.status_code == 200, response.text
    after = response.json()
    assert 590 <= after["time_left"] <= 600
    assert when(after["due_at"]) < when(before["due_at"])
    assert when(after["updated_at"]) > when(before["updated_at"])
    assert (await view(own, timer_id))["due_at"] == after["due_at"]
    # Rescheduling from now: due_at - updated_at is the new duration, to the microsecond.
    assert when(after["due_at"]) - when(after["updated_at"]) == timedelta(minutes=10)

    now = (await own.patch(f"/timer/{timer_id}", json={"seconds": 0})).json()
    assert (now["time_left"], now["status"]) == (0, "pending")


async def test_patch_fire_at_reschedules(api: httpx.AsyncClient) -> None:
    timer_id = await create(api, hours=1)
    fire_at = in_seconds(7200, timezone(timedelta(hours=-5)))
    response = await api.patch(f"/timer/{timer_id}", json={"fire_at": fire_at})
    assert response.status_code == 200, response.text
    assert when(response.json()["due_at"]) == when(fire_at)


async def test_patch_edits_what_is_sent_and_keeps_the_due_time(own: httpx.AsyncClient) -> None:
    timer_id = await create(own, hours=1, labels={"a": "1", "b": "2"}, body={"v": 1})
    before = await view(own, timer_id)
    changes = {
        "url": "https://example.org/other",
        "method": "PUT",
        "labels": {"c": "3"},
        "body": "text now",
        "headers": {"X-Tenant": "acme"},
        "retry": {"max_attempts": 2},
    }
    response = await own.patch(f"/timer/{timer_id}", json=changes)
    assert response.status_code == 200, response.text
    shown = await view(own, timer_id)
    assert without_time_left(shown) == without_time_left(response.json())
    assert shown["url"] == changes["url"]
    assert shown["method"] == "PUT"
    assert shown["labels"] == {"c": "3"}  # replaced, not merged
    assert shown["body"] == "text now"
    assert shown["headers"] == {"X-Tenant": "acme"}
    assert shown["retry"] == {**TEST_RETRY_DEFAULTS, "max_attempts": 2}
    assert shown["due_at"] == before["due_at"]
    assert shown["delivery_id"] == before["delivery_id"]


async def test_patch_body_null_restores_the_default_body(own: httpx.AsyncClient) -> None:
    timer_id = await create(own, seconds=600, body={"custom": True})
    unrelated = await own.patch(f"/timer/{timer_id}", json={"labels": {"x": "y"}})
    assert unrelated.json()["body"] == {"custom": True}  # omitted: kept
    response = await own.patch(f"/timer/{timer_id}", json={"body": None})
    assert response.status_code == 200
    assert response.json()["body"] is None
    assert (await view(own, timer_id))["body"] is None


async def test_patch_null_clears_headers_labels_and_retry(own: httpx.AsyncClient) -> None:
    timer_id = await create(
        own, seconds=600, headers={"X-A": "1"}, labels={"k": "v"}, retry={"max_attempts": 9}
    )
    response = await own.patch(f"/timer/{timer_id}", json={"headers": None, "labels": None, "retry": None})
    assert response.status_code == 200
    shown = await view(own, timer_id)
    assert (shown["headers"], shown["labels"]) == ({}, {})
    assert shown["retry"] == TEST_RETRY_DEFAULTS


async def test_patch_max_lateness_counts_from_the_due_time(own: httpx.AsyncClient) -> None:
    timer_id = await create(own, seconds=600)
    kept = (await own.patch(f"/timer/{timer_id}", json={"max_lateness_seconds": 60})).json()
    assert when(kept["deliver_before"]) == when(kept["due_at"]) + timedelta(seconds=60)
    moved = (await own.patch(f"/timer/{timer_id}", json={"minutes": 20, "max_lateness_seconds": 30})).json()
    assert when(moved["due_at"]) > when(kept["due_at"])
    assert when(moved["deliver_before"]) == when(moved["due_at"]) + timedelta(seconds=30)


async def test_reschedule_never_leaves_deliver_before_earlier_than_due(
    own: httpx.AsyncClient,
) -> None:
    timer_id = await create(own, seconds=60, max_lateness_seconds=10)
    response = await own.patch(f"/timer/{timer_id}", json={"minutes": 10})
    if response.status_code == 200:
        shown = response.json()
        assert when(shown["deliver_before"]) >= when(shown["due_at"]), shown
    else:
        assert_envelope(response, 422)


async def test_patch_deliver_before_earlier_than_the_due_time_is_422(
    own: httpx.AsyncClient,
) -> None:
    timer_id = await create(own, hours=1)
    response = await own.patch(f"/timer/{timer_id}", json={"deliver_before": in_seconds(60)})
    assert_envelope(response, 422, field="deliver_before")


async def test_etag_on_get_and_patch_names_the_version(own: httpx.AsyncClient) -> None:
    timer_id = await create(own, seconds=600)
    fetched = await own.get(f"/timer/{timer_id}")
    etag = fetched.headers["etag"]
    assert re.fullmatch(r'"\d+"', etag)
    assert etag == etag_of(when(fetched.json()["updated_at"]))
    assert (await own.get(f"/timer/{timer_id}")).headers["etag"] == etag  # stable while unchanged
    patched = await own.patch(f"/timer/{timer_id}", json={"labels": {"v": "2"}})
    assert patched.headers["etag"] == etag_of(when(patched.json()["updated_at"]))
    assert patched.headers["etag"] != etag
    assert (await own.get(f"/timer/{timer_id}")).headers["etag"] == patched.headers["etag"]


async def test_if_match_with_the_current_etag_applies(own: httpx.AsyncClient) -> None:
    timer_id = await create(own, seconds=600)
    etag = (await own.get(f"/timer/{timer_id}")).headers["etag"]
    response = await own.patch(f"/timer/{timer_id}", json={"labels": {"v": "2"}}, headers={"If-Match": etag})
    assert response.status_code == 200, response.text
    assert response.headers["etag"] != etag
    assert response.json()["labels"] == {"v": "2"}


async def test_if_match_with_a_stale_etag_is_412_and_changes_nothing(
    own: httpx.AsyncClient,
) -> None:
    timer_id = await create(own, seconds=600)
    stale = (await own.get(f"/timer/{timer_id}")).headers["etag"]
    current = await own.patch(f"/timer/{timer_id}", json={"labels": {"v": "2"}})
    response = await own.patch(f"/timer/{timer_id}", json={"labels": {"v": "3"}}, headers={"If-Match": stale})
    error = assert_envelope(response, 412)
    assert error["code"] == "precondition_failed"
    assert error["field"] == "If-Match"
    shown = await own.get(f"/timer/{timer_id}")
    assert shown.json()["labels"] == {"v": "2"}
    assert shown.headers["etag"] == current.headers["etag"]


async def test_garbage_if_match_is_412(own: httpx.AsyncClient) -> None:
    timer_id = await create(own, seconds=600, labels={"v": "1"})
    for if_match in ("abc", '"abc"', '""', "W/", '"-1"', '"1.5"', '"1e6"', '"' + "9" * 19 + '"'):
        response = await own.patch(
            f"/timer/{timer_id}", json={"labels": {"v": "2"}}, headers={"If-Match": if_match}
        )
        error = assert_envelope(response, 412)
        assert error["field"] == "If-Match"
    assert (await view(own, timer_id))["labels"] == {"v": "1"}


async def test_if_match_with_a_superscript_digit_is_412_not_500(own: httpx.AsyncClient) -> None:
    timer_id = await create(own, seconds=600)
    response = await own.patch(
        f"/timer/{timer_id}", json={"labels": {"v": "2"}}, headers={b"If-Match": b'"\xb2"'}
    )
    assert_envelope(response, 412, field="If-Match")


async def test_if_match_with_a_list_including_the_current_etag_applies(
    own: httpx.AsyncClient,
) -> None:
    timer_id = await create(own, seconds=600)
    etag = (await own.get(f"/timer/{timer_id}")).headers["etag"]
    response = await own.patch(
        f"/timer/{timer_id}", json={"labels": {"v": "2"}}, headers={"If-Match": f'"1", {etag}'}
    )
    assert response.status_code == 200, response.text


async def test_if_match_star_applies(own: httpx.AsyncClient) -> None:
    timer_id = await create(own, seconds=600)
    response = await own.patch(f"/timer/{timer_id}", json={"labels": {"v": "2"}}, headers={"If-Match": "*"})
    assert response.status_code == 200, response.text
    assert response.json()["labels"] == {"v": "2"}


async def test_patch_is_409_unless_pending(api: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    for status in ("cancelled", "firing", "delivered", "failed", "expired"):
        timer_id = await create(api, seconds=600, labels={"v": "1"})
        etag = (await api.get(f"/timer/{timer_id}")).headers["etag"]
        await set_status(db, timer_id, status)
        for headers in ({}, {"If-Match": etag}, {"If-Match": "*"}):
            response = await api.patch(f"/timer/{timer_id}", json={"minutes": 1}, headers=headers)
            error = assert_envelope(response, 409)
            assert error["field"] == "status"
            assert status in error["message"]
        shown = await view(api, timer_id)
        assert (shown["status"], shown["labels"]) == (status, {"v": "1"})


async def test_invalid_patches_are_422_and_change_nothing(own: httpx.AsyncClient) -> None:
    timer_id = await create(own, seconds=600, labels={"v": "1"})
    before = await view(own, timer_id)
    cases: list[tuple[Any, str | None]] = [
        ({"url": "ftp://example.com/"}, "url"),
        ({"url": ""}, "url"),
        ({"hours": -1}, "hours"),
        ({"minutes": "5"}, "minutes"),
        ({"seconds": 10**12 * 2}, "seconds"),
        ({"hours": 100_000}, "hours"),  # beyond the ten-year horizon
        ({"status": "delivered"}, "status"),
        ({"timer_id": 5}, "timer_id"),
        ({"headers": {"Host": "evil"}}, "headers"),
        ({"labels": {"": "x"}}, "labels"),
        ({"method": "TRACE"}, "method"),
        ({"retry": {"max_attempts": 0}}, "retry.max_attempts"),
        ({"retry": {"timeout_seconds": 5}}, "retry.timeout_seconds"),
        ({"max_lateness_seconds": -1}, "max_lateness_seconds"),
        ({"fire_at": "2030-01-01T00:00:00"}, "fire_at"),
        ([], None),
        ("minutes", None),
    ]
    for body, field in cases:
        response = await own.patch(f"/timer/{timer_id}", json=body)
        error = assert_envelope(response, 422, field=field)
        if field is None:
            assert error["field"] is None
    assert without_time_left(await view(own, timer_id)) == without_time_left(before)


async def test_patch_with_an_empty_object_changes_no_field(own: httpx.AsyncClient) -> None:
    timer_id = await create(
        own, seconds=600, labels={"k": "v"}, headers={"X-A": "1"}, body=[1], max_lateness_seconds=5
    )
    before = await view(own, timer_id)
    response = await own.patch(f"/timer/{timer_id}", json={})
    assert response.status_code == 200, response.text
    after = response.json()
    ignored = {"time_left", "updated_at"}  # an empty PATCH still counts as an edit (new ETag)
    assert {k: v for k, v in after.items() if k not in ignored} == {
        k: v for k, v in before.items() if k not in ignored
    }
    assert response.headers["etag"] == etag_of(when(after["updated_at"]))
