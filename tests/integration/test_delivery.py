"""Webhook delivery end to end: the whole service (dispatcher included) on a real PostgreSQL,
POSTing to a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from tests.support.api import create, settled
from tests.support.app import ServiceFactory
from tests.support.databases import set_database_default
from tests.support.polling import WAIT
from tests.support.processes import free_port
from tests.support.receiver import Delivery, Receiver, always, headers_of
from tests.support.receiver_extras import HeaderReceiver


def deliveries_for(receiver: Receiver, timer_id: int) -> list[Delivery]:
    return [d for d in receiver.deliveries if d.timer_id == timer_id]


async def test_webhook_request_shape(service: ServiceFactory, receiver: Receiver) -> None:
    async with service() as client:
        timer_id = await create(client, receiver.url, seconds=1)
        assert await receiver.wait_for(lambda: receiver.counts()[timer_id] == 1, WAIT)
        view = await settled(client, timer_id, "delivered")
        assert (await client.get("/readyz")).json() == {"status": "ready"}

    (delivery,) = receiver.deliveries
    headers = headers_of(delivery)
    assert delivery.method == "POST"
    assert delivery.path == "/hook"
    assert headers["content-type"].split(";")[0] == "application/json"
    assert headers["user-agent"].startswith("task-scheduler/")
    assert headers["webhook-id"] == view["delivery_id"]
    assert headers["x-timer-id"] == str(timer_id)
    assert headers["x-timer-attempt"] == "1"
    assert abs(int(headers["webhook-timestamp"]) - delivery.arrived_at) < 3600
    assert set(delivery.body) == {"timer_id", "due_at", "attempt", "labels"}
    assert delivery.body["timer_id"] == timer_id
    assert delivery.body["attempt"] == 1
    due_at = datetime.fromisoformat(delivery.body["due_at"])
    assert due_at == datetime.fromisoformat(view["due_at"])
    # Never early (same host clock; 1 ms for float rounding of the timestamps).
    assert delivery.arrived_at >= due_at.timestamp() - 0.001

    assert view["attempts"] == 1
    assert view["last_error"] is None
    assert view["time_left"] == 0
    assert view["delivered_at"] is not None
    assert datetime.fromisoformat(view["delivered_at"]) >= due_at


async def test_retries_until_delivered(service: ServiceFactory, receiver: Receiver) -> None:
    receiver.respond = lambda _timer_id, seen: 500 if seen < 3 else 200
    async with service(max_attempts=5) as client:
        timer_id = await create(client, receiver.url, seconds=1)
        view = await settled(client, timer_id, "delivered")

    assert view["attempts"] == 4
    assert receiver.counts() == {timer_id: 1}
    attempts = deliveries_for(receiver, timer_id)
    assert [d.status for d in attempts] == [500, 500, 500, 200]
    assert {headers_of(d)["webhook-id"] for d in attempts} == {view["delivery_id"]}
    assert [headers_of(d)["x-timer-attempt"] for d in attempts] == ["1", "2", "3", "4"]
    assert [d.body["attempt"] for d in attempts] == [1, 2, 3, 4]
    assert {d.body["timer_id"] for d in attempts} == {timer_id}


async def test_always_failing_receiver_fails_the_timer(service: ServiceFactory, receiver: Receiver) -> None:
    receiver.respond = always(500)
    async with service(max_attempts=3) as client:
        timer_id = await create(client, receiver.url, seconds=1)
        view = await settled(client, timer_id, "failed")
        # No fourth attempt follows the failure.
        assert not await receiver.wait_for(lambda: len(receiver.deliveries) > 3, 0.5)

    assert view["attempts"] == 3
    assert "HTTP 500" in view["last_error"]
    assert view["last_error"].startswith("attempt 3:")
    assert view["delivered_at"] is None
    assert len(deliveries_for(receiver, timer_id)) == 3
    assert receiver.counts() == {}


async def test_redirect_is_a_failure_and_not_followed(
    service: ServiceFactory, header_receiver: HeaderReceiver
) -> None:
    receiver = header_receiver
    redirected = f"http://127.0.0.1:{receiver.port}/redirected"
    receiver.respond = always(302)
    receiver.respond_headers = lambda _timer_id, _seen: {"Location": redirected}
    async with service(max_attempts=2) as client:
        timer_id = await create(client, receiver.url, seconds=1)
        view = await settled(client, timer_id, "failed")

    assert view["attempts"] == 2
    assert "redirect" in view["last_error"]
    assert "302" in view["last_error"]
    assert [d.path for d in receiver.deliveries] == ["/hook", "/hook"]
    assert receiver.counts() == {}


async def test_slow_receiver_times_out_and_fails(service: ServiceFactory, receiver: Receiver) -> None:
    receiver.delay_seconds = 2.0
    async with service(
        max_attempts=2,
        request_timeout_seconds=0.5,
        connect_timeout_seconds=0.5,
        lease_seconds=3.0,
    ) as client:
        timer_id = await create(client, receiver.url, seconds=1)
        view = await settled(client, timer_id, "failed")

    assert view["attempts"] == 2
    assert "timeout" in view["last_error"]
    assert view["last_error"].startswith("attempt 2:")
    # The receiver answered 200 each time, but too late: the attempts count as failed.
    assert len(deliveries_for(receiver, timer_id)) == 2


async def test_connection_refused_is_retried_then_fails(service: ServiceFactory) -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"
    async with service(max_attempts=2) as client:
        timer_id = await create(client, url, seconds=1)
        view = await settled(client, timer_id, "failed")

    assert view["attempts"] == 2
    assert view["last_error"].startswith("attempt 2:")
    assert "connect" in view["last_error"].lower()


async def test_zero_second_timer_fires_right_away(service: ServiceFactory, receiver: Receiver) -> None:
    async with service() as client:
        response = await client.post("/timer", json={"seconds": 0, "url": receiver.url})
        assert response.status_code == 201
        assert response.json()["time_left"] == 0
        timer_id = response.json()["timer_id"]
        view = await settled(client, timer_id, "delivered")

    assert view["due_at"] == view["created_at"]
    assert view["attempts"] == 1
    assert receiver.counts() == {timer_id: 1}


async def test_many_timers_are_each_delivered_exactly_once(
    service: ServiceFactory, receiver: Receiver
) -> None:
    async with service() as client:
        ids = [await create(client, receiver.url, seconds=1) for _ in range(200)]
        assert await receiver.wait_for(lambda: len(receiver.counts()) == 200, WAIT * 2)
        views = [await settled(client, timer_id, "delivered") for timer_id in ids]

    assert set(receiver.counts()) == set(ids)
    assert set(receiver.counts().values()) == {1}
    assert len(receiver.deliveries) == 200
    assert {v["attempts"] for v in views} == {1}


@pytest.mark.parametrize("isolation", ["server-default", "serializable-default"])
async def test_two_instances_deliver_each_timer_exactly_once(
    service: ServiceFactory, receiver: Receiver, database_url: str, isolation: str
) -> None:
    """Also on a database whose default_transaction_isolation is serializable (an operator's
    choice, for the database, a role or the server): claims once failed there on serialization
    errors; the service's transactions now say READ COMMITTED themselves."""
    if isolation == "serializable-default":
        await set_database_default(database_url, "default_transaction_isolation", "serializable")
    async with service() as first, service() as second:
        clients = (first, second)
        ids = [await create(clients[i % 2], receiver.url, seconds=1) for i in range(100)]
        assert await receiver.wait_for(lambda: len(receiver.counts()) == 100, WAIT * 2)
        for timer_id in ids:
            await settled(first, timer_id, "delivered")
        # Give a wrongly duplicated delivery a moment to show up.
        await asyncio.sleep(0.5)

    assert set(receiver.counts()) == set(ids)
    assert set(receiver.counts().values()) == {1}
    assert len(receiver.deliveries) == 100
