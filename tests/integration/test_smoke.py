from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from tests.support.polling import wait_for_status
from tests.support.receiver import Receiver


async def test_create_then_get(api: httpx.AsyncClient) -> None:
    body = {"hours": 1, "minutes": 30, "seconds": 45, "url": "http://example.com/webhook"}
    created = await api.post("/timer", json=body)
    assert created.status_code == 201
    assert created.json() == {"timer_id": created.json()["timer_id"], "time_left": 5445}
    got = await api.get(f"/timer/{created.json()['timer_id']}")
    assert got.status_code == 200
    assert got.json()["status"] == "pending"


async def test_fires_once(service: Callable[..., Any], receiver: Receiver) -> None:
    async with service() as client:
        created = await client.post("/timer", json={"seconds": 1, "url": receiver.url})
        timer_id = created.json()["timer_id"]
        assert await receiver.wait_for(lambda: receiver.counts()[timer_id] == 1, within=10)
        view = await wait_for_status(client, timer_id, "delivered")
    assert receiver.counts() == {timer_id: 1}
    assert view["status"] == "delivered"
    assert view["time_left"] == 0
