"""POST /timer/{id}/replay on a real PostgreSQL: a finished timer's request sent again as a new
timer linked to the original (delivered to a real receiver), the original left as it was."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support.api import assert_envelope, create, in_seconds, settled, view, when, without_time_left
from tests.support.app import ServiceFactory
from tests.support.databases import set_status
from tests.support.keys import ADMIN_KEY, SECURED_SETTINGS, bearer, make_key
from tests.support.receiver import Receiver


async def test_a_replay_is_delivered_and_the_original_stays_as_it_was(
    service: ServiceFactory, receiver: Receiver
) -> None:
    receiver.respond = lambda timer_id, seen: 200 if timer_id != first_id else 500
    async with service(max_attempts=1) as client:
        first_id = await create(
            client,
            url=receiver.url,
            method="PUT",
            headers={"X-Kind": "invoice"},
            body={"invoice": 7},
            labels={"customer": "42"},
            retry={"max_attempts": 1, "timeout_seconds": 1.5},
        )
        original = await settled(client, first_id, "failed")
        attempts_before = (await client.get(f"/timer/{first_id}/attempts")).json()

        response = await client.post(f"/timer/{first_id}/replay")
        assert response.status_code == 201, response.text
        replay = response.json()
        assert response.headers["location"] == f"/timer/{replay['timer_id']}"
        assert replay["timer_id"] != first_id
        assert replay["replay_of"] == first_id
        assert replay["status"] in ("pending", "firing", "delivered")
        for field in ("url", "method", "headers", "body", "labels", "retry"):
            assert replay[field] == original[field], field
        assert replay["delivery_id"] != original["delivery_id"]

        delivered = await settled(client, replay["timer_id"], "delivered")
        assert delivered["replay_of"] == first_id
        assert without_time_left(await view(client, first_id)) == without_time_left(original)
        assert (await client.get(f"/timer/{first_id}/attempts")).json() == attempts_before
        assert original["replay_of"] is None

    (sent,) = [d for d in receiver.deliveries if d.timer_id == replay["timer_id"]]
    assert (sent.method, sent.body) == ("PUT", {"invoice": 7})
    assert sent.headers["X-Kind"] == "invoice"


async def test_a_delivered_timer_can_be_replayed_later(
    api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    timer_id = await create(api, seconds=600, max_lateness_seconds=30)
    await set_status(db, timer_id, "delivered")
    replays = []
    for body in ({"delay_seconds": 120}, {"fire_at": in_seconds(3600)}):
        response = await api.post(f"/timer/{timer_id}/replay", json=body)
        assert response.status_code == 201, response.text
        replays.append(response.json())
    delayed, at_time = replays
    assert 110 <= delayed["time_left"] <= 120
    assert 3590 <= at_time["time_left"] <= 3600
    # the lateness cutoff keeps its distance from the due time
    for replay in replays:
        assert when(replay["deliver_before"]) - when(replay["due_at"]) == timedelta(seconds=30)
    # a replay of a replay links to the one it copies
    await set_status(db, delayed["timer_id"], "cancelled")
    again = (await api.post(f"/timer/{delayed['timer_id']}/replay")).json()
    assert again["replay_of"] == delayed["timer_id"]
    assert (await view(api, timer_id))["status"] == "delivered"


@pytest.mark.parametrize("status", ["failed", "expired", "cancelled"])
async def test_every_finished_state_can_be_replayed(
    api: httpx.AsyncClient, db: asyncpg.Connection, status: str
) -> None:
    timer_id = await create(api, seconds=600)
    await set_status(db, timer_id, status)
    response = await api.post(f"/timer/{timer_id}/replay")
    assert response.status_code == 201, response.text
    assert response.json()["time_left"] == 0
    assert (await view(api, timer_id))["status"] == status


@pytest.mark.parametrize("status", ["pending", "firing"])
async def test_a_timer_not_finished_is_409(
    api: httpx.AsyncClient, db: asyncpg.Connection, status: str
) -> None:
    timer_id = await create(api, seconds=600)
    await set_status(db, timer_id, status)
    error = assert_envelope(await api.post(f"/timer/{timer_id}/replay"), 409)
    assert error["field"] == "status"
    assert f"is {status} and cannot be replayed" in error["message"]
    assert await db.fetchval("SELECT count(*) FROM timers") == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"delay_seconds": -1}, "delay_seconds"),
        ({"delay_seconds": 1.5}, "delay_seconds"),
        ({"fire_at": "tomorrow"}, "fire_at"),
        ({"delay_seconds": 10**11}, "delay_seconds"),
        ({"url": "http://example.com/other"}, "url"),
    ],
)
async def test_bad_input_is_422_naming_the_field(
    api: httpx.AsyncClient, db: asyncpg.Connection, body: dict[str, Any], field: str
) -> None:
    timer_id = await create(api, seconds=600)
    await set_status(db, timer_id, "delivered")
    assert_envelope(await api.post(f"/timer/{timer_id}/replay", json=body), 422, field=field)
    assert assert_envelope(await api.post("/timer/999999/replay"), 404)["field"] == "timer_id"
    assert await db.fetchval("SELECT count(*) FROM timers") == 1


async def test_replay_roles_and_tenants(custom_api: ServiceFactory, db: asyncpg.Connection) -> None:
    async with custom_api(**SECURED_SETTINGS) as client:
        acme_writer = await make_key(client, "acme", "writer")
        acme_reader = await make_key(client, "acme", "reader")
        globex_writer = await make_key(client, "globex", "writer")
        created = await client.post(
            "/timer", json={"hours": 1, "url": "http://example.com/a"}, headers=bearer(acme_writer)
        )
        timer_id = created.json()["timer_id"]
        await set_status(db, timer_id, "failed")
        path = f"/timer/{timer_id}/replay"
        assert_envelope(await client.post(path, headers=bearer(acme_reader)), 403)
        assert_envelope(await client.post(path, headers=bearer(globex_writer)), 404)
        # an admin replays it for the original's tenant, whose writer then sees it
        by_admin = await client.post(path, headers=bearer(ADMIN_KEY))
        assert by_admin.status_code == 201, by_admin.text
        replay_id = by_admin.json()["timer_id"]
        assert (await client.get(f"/timer/{replay_id}", headers=bearer(acme_reader))).status_code == 200
        assert (await client.get(f"/timer/{replay_id}", headers=bearer(globex_writer))).status_code == 404
        by_writer = await client.post(path, headers=bearer(acme_writer))
        assert by_writer.status_code == 201
    tenants = await db.fetch("SELECT tenant FROM timers WHERE replay_of = $1", timer_id)
    assert [r["tenant"] for r in tenants] == ["acme", "acme"]
