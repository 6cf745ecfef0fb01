"""ApiClient, the typed client of the timer API, against the real app served over HTTP on 127.0.0.1
(uvicorn in this process, so that the client's own transport, aiohttp, is what is tested)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest

from task_scheduler.app import create_app
from task_scheduler.client import (
    ApiClient,
    ApiError,
    ClientError,
    TimerCreateBody,
    TimerFilter,
    UnexpectedAnswer,
    Unreachable,
)
from task_scheduler.config import Settings
from task_scheduler_client import TimerView
from tests.support.app import served
from tests.support.processes import free_port
from tests.support.receiver import Receiver, always


@pytest.fixture
async def api(make_settings: Callable[..., Settings]) -> AsyncIterator[ApiClient]:
    """A client of the API without the dispatcher: nothing fires."""
    async with (
        served(create_app(make_settings(), run_dispatcher=False)) as base_url,
        ApiClient(base_url=base_url + "/") as client,
    ):
        yield client


async def test_create_get_and_an_idempotent_replay(api: ApiClient) -> None:
    timer: TimerCreateBody = {"hours": 2, "url": "http://example.com/a", "labels": {"kind": "reminder"}}
    response = await api.create_timer(timer=timer, idempotency_key="order-7")
    assert response.status == 201
    created = response.parse()
    assert 7190 <= created.time_left <= 7200
    assert json.loads(response.text)["timer_id"] == created.timer_id  # the text as it came

    view = (await api.get_timer(timer_id=created.timer_id)).parse()
    assert isinstance(view, TimerView)
    assert (view.status, view.url, view.labels) == ("pending", "http://example.com/a", {"kind": "reminder"})

    replay = await api.create_timer(timer=timer, idempotency_key="order-7")
    assert (replay.status, replay.parse().timer_id) == (200, created.timer_id)


async def test_fire_at_and_due_after_take_datetimes(api: ApiClient) -> None:
    due = datetime.now(UTC) + timedelta(hours=3)
    created = (await api.create_timer(timer={"fire_at": due, "url": "http://example.com/at"})).parse()
    await api.create_timer(timer={"minutes": 5, "url": "http://example.com/soon"})
    view = (await api.get_timer(timer_id=created.timer_id)).parse()
    assert abs(view.due_at - due) < timedelta(milliseconds=1)

    later = TimerFilter(due_after=due - timedelta(minutes=1))
    page = (await api.list_timers(where=later)).parse()
    assert [t.timer_id for t in page.timers] == [created.timer_id]


async def test_a_batch_takes_mappings_and_encoded_objects(api: ApiClient) -> None:
    response = await api.create_timers(
        timers=[
            {"minutes": 5, "url": "http://example.com/mapping"},
            b'{"minutes": 6, "url": "http://example.com/encoded"}',
        ]
    )
    assert response.status == 201
    ids = [created.timer_id for created in response.parse().timers]
    urls = [(await api.get_timer(timer_id=timer_id)).parse().url for timer_id in ids]
    assert urls == ["http://example.com/mapping", "http://example.com/encoded"]


async def test_errors_carry_the_envelope(api: ApiClient) -> None:
    with pytest.raises(ApiError) as missing:
        await api.get_timer(timer_id=999999)
    assert (missing.value.status, missing.value.code) == (404, "not_found")
    assert missing.value.message == "timer 999999 does not exist"
    assert str(missing.value) == "404 not_found: timer 999999 does not exist"

    with pytest.raises(ApiError) as invalid:
        await api.create_timer(timer={"hours": 1, "url": "ftp://example.com/x"})
    error = invalid.value
    assert (error.status, error.code, error.field) == (422, "validation_error", "url")
    assert error.message == "url: must be an absolute http:// or https:// URL"

    with pytest.raises(ApiError) as batch:
        await api.create_timers(
            timers=[{"minutes": 1, "url": "http://example.com/"}, {"minutes": 1, "url": "ftp://x"}]
        )
    assert batch.value.field == "timers.1.url"
    assert batch.value.problems[0] == (batch.value.field, batch.value.message)
    assert isinstance(batch.value, ClientError)


async def test_cancel_and_retry_answer_with_the_view_or_a_conflict(api: ApiClient) -> None:
    timer_id = (await api.create_timer(timer={"hours": 2, "url": "http://example.com/c"})).parse().timer_id
    with pytest.raises(ApiError) as pending:
        await api.retry_timer(timer_id=timer_id)
    assert (pending.value.status, pending.value.code, pending.value.field) == (409, "conflict", "status")

    assert (await api.cancel_timer(timer_id=timer_id)).parse().status == "cancelled"
    with pytest.raises(ApiError) as again:
        await api.cancel_timer(timer_id=timer_id)
    assert again.value.message == f"timer {timer_id} is cancelled and cannot be cancelled"


async def test_retry_sends_a_failed_timer_again(
    make_settings: Callable[..., Settings], receiver: Receiver
) -> None:
    receiver.respond = always(410)  # Gone: the timer fails at the first attempt
    async with served(create_app(make_settings())) as base_url, ApiClient(base_url=base_url) as api:
        timer_id = (await api.create_timer(timer={"seconds": 0, "url": receiver.url})).parse().timer_id
        for _ in range(100):
            view = (await api.get_timer(timer_id=timer_id)).parse()
            if view.status == "failed":
                break
            await asyncio.sleep(0.1)
        assert (view.status, view.attempts) == ("failed", 1)
        receiver.respond = always(200)
        assert (await api.retry_timer(timer_id=timer_id)).parse().status == "pending"


async def test_list_a_page_follow_the_cursor_and_stop_at_a_maximum(api: ApiClient) -> None:
    batch_a: list[TimerCreateBody] = [
        {"hours": 2, "minutes": i, "url": f"http://example.com/{i}", "labels": {"batch": "a"}}
        for i in range(25)
    ]
    batch_b: list[TimerCreateBody] = [
        {"hours": 5, "url": "http://example.com/b", "labels": {"batch": "b"}}
    ] * 3
    await api.create_timers(timers=[*batch_a, *batch_b])
    where = TimerFilter(labels={"batch": "a"})

    first = (await api.list_timers(where=where, limit=10)).parse()
    assert len(first.timers) == 10
    assert first.next_cursor is not None

    every = [view.timer_id async for view in api.iter_timers(where=where, page_size=10)]
    assert len(every) == len(set(every)) == 25
    assert every[:10] == [view.timer_id for view in first.timers]  # by due time

    # no page goes past max_timers, so the last next_cursor is where to resume
    pages = [
        response.parse() async for response in api.iter_timer_pages(where=where, page_size=10, max_timers=12)
    ]
    assert [len(page.timers) for page in pages] == [10, 2]
    assert pages[-1].next_cursor is not None
    rest = (await api.list_timers(where=where, limit=100, cursor=pages[-1].next_cursor)).parse()
    assert [view.timer_id for view in rest.timers] == every[12:]
    assert rest.next_cursor is None

    await api.cancel_timer(timer_id=every[3])
    cancelled = (await api.list_timers(where=TimerFilter(status="cancelled"))).parse()
    assert [view.timer_id for view in cancelled.timers] == [every[3]]
    assert not (await api.list_timers(where=TimerFilter(labels={"batch": "a", "other": "x"}))).parse().timers


async def test_no_service_and_something_else(receiver: Receiver) -> None:
    async with ApiClient(base_url=f"http://127.0.0.1:{free_port()}") as nothing:
        with pytest.raises(Unreachable) as refused:
            await nothing.get_timer(timer_id=1)
    assert not refused.value.maybe_sent
    assert "connection refused" in str(refused.value)

    async with ApiClient(base_url=f"http://127.0.0.1:{receiver.port}") as other:
        response = await other.get_timer(timer_id=1)
        assert response.status == 200
        with pytest.raises(UnexpectedAnswer):
            response.parse()
        receiver.respond = always(502)
        with pytest.raises(ApiError) as gateway:
            await other.cancel_timer(timer_id=1)
    assert (gateway.value.status, gateway.value.code) == (502, "bad_gateway")


async def test_the_client_is_used_inside_async_with() -> None:
    with pytest.raises(RuntimeError, match="async with"):
        await ApiClient().get_timer(timer_id=1)
