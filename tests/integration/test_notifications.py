"""Outcome notifications end to end: the whole service on a real PostgreSQL, real receivers on
127.0.0.1. A timer's on_success_url / on_failure_url is called once, by a timer of its own, when
the timer ends delivered / failed or expired."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from task_scheduler.app import create_app
from tests.support.app import ServiceFactory, running_app
from tests.support.keys import ADMIN_KEY, bearer, make_key
from tests.support.polling import WAIT, wait_for_status
from tests.support.receiver import Delivery, Receiver, always, headers_of, running


def outcome_url(receiver: Receiver) -> str:
    return f"http://127.0.0.1:{receiver.port}/outcome"


def notifications(receiver: Receiver) -> list[Delivery]:
    return [d for d in receiver.deliveries if d.path == "/outcome"]


async def create(client: httpx.AsyncClient, **fields: Any) -> int:
    created = await client.post("/timer", json=fields)
    assert created.status_code == 201, created.text
    timer_id: int = created.json()["timer_id"]
    return timer_id


async def test_a_delivered_timer_calls_its_success_url_once(
    service: ServiceFactory, receiver: Receiver
) -> None:
    async with service() as client:
        timer_id = await create(
            client,
            seconds=0,
            url=receiver.url,
            labels={"order": "7"},
            on_success_url=outcome_url(receiver),
            on_failure_url=f"http://127.0.0.1:{receiver.port}/never",
        )
        assert await receiver.wait_for(lambda: len(notifications(receiver)) == 1, WAIT)
        (note,) = notifications(receiver)
        view = (await client.get(f"/timer/{timer_id}")).json()
        assert view["on_success_url"] == outcome_url(receiver)
        notifier = (await client.get(f"/timer/{note.timer_id}")).json()
        listed = (await client.get("/timers", params={"label": f"notification_of:{timer_id}"})).json()
    assert note.method == "POST"
    assert note.body == {
        "type": "timer.delivered",
        "timer_id": timer_id,
        "status": "delivered",
        "attempts": 1,
        "url": receiver.url,
        "labels": {"order": "7"},
        "delivery_id": view["delivery_id"],
        "last_status_code": 200,
        "last_error": None,
        "response_excerpt": "ok",
    }
    # A timer of its own: its own id and webhook-id, and no notification of its own.
    assert note.timer_id != timer_id
    assert headers_of(note)["webhook-id"] != view["delivery_id"]
    assert notifier["on_success_url"] is None
    assert notifier["on_failure_url"] is None
    assert [t["timer_id"] for t in listed["timers"]] == [note.timer_id]
    assert [d.path for d in receiver.deliveries].count("/never") == 0
    assert receiver.counts()[timer_id] == 1


async def test_a_failed_timer_calls_its_failure_url_with_the_last_reply(
    service: ServiceFactory, receiver: Receiver
) -> None:
    async with running(Receiver(respond=always(500))) as failing, service() as client:
        timer_id = await create(
            client,
            seconds=0,
            url=failing.url,
            retry={"max_attempts": 2, "backoff_base_seconds": 0.05, "backoff_cap_seconds": 0.1},
            on_success_url=f"http://127.0.0.1:{receiver.port}/never",
            on_failure_url=outcome_url(receiver),
        )
        await wait_for_status(client, timer_id, "failed", WAIT)
        assert await receiver.wait_for(lambda: len(notifications(receiver)) == 1, WAIT)
    (note,) = notifications(receiver)
    assert note.body["type"] == "timer.failed"
    assert note.body["timer_id"] == timer_id
    assert note.body["attempts"] == 2
    assert note.body["last_status_code"] == 500
    assert note.body["response_excerpt"] == "nope"
    assert note.body["last_error"].startswith("attempt 2:")
    assert len(failing.deliveries) == 2
    assert [d.path for d in receiver.deliveries] == ["/outcome"]


async def test_an_expired_timer_calls_its_failure_url(service: ServiceFactory, receiver: Receiver) -> None:
    async with service() as client:
        timer_id = await create(
            client,
            fire_at=(datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
            max_lateness_seconds=1,
            url=receiver.url,
            on_failure_url=outcome_url(receiver),
        )
        await wait_for_status(client, timer_id, "expired", WAIT)
        assert await receiver.wait_for(lambda: len(notifications(receiver)) == 1, WAIT)
    (note,) = notifications(receiver)
    assert note.body["type"] == "timer.expired"
    assert note.body["status"] == "expired"
    assert note.body["last_status_code"] is None
    assert note.body["last_error"].startswith("expired:")
    assert receiver.counts()[timer_id] == 0  # the timer itself was never sent


@pytest.mark.parametrize(
    ("field", "url", "says"),
    [
        ("on_success_url", "ftp://example.com/x", "on_success_url"),
        ("on_failure_url", "not a url", "on_failure_url"),
        ("on_failure_url", "http://169.254.169.254/latest", "SCHEDULER_WEBHOOK_ALLOWED_NETWORKS"),
    ],
)
async def test_a_bad_notification_url_is_422_naming_the_field(
    api: httpx.AsyncClient, field: str, url: str, says: str
) -> None:
    answer = await api.post("/timer", json={"seconds": 5, "url": "http://example.com/a", field: url})
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert field in error["message"]
    assert says in error["message"]
    assert (await api.get("/timers")).json()["timers"] == []


# -- operational webhooks of a tenant ----------------------------------------------------------


async def test_tenant_webhooks_hear_the_events_they_subscribed_to(
    service: ServiceFactory, receiver: Receiver
) -> None:
    def at(path: str) -> str:
        return f"http://127.0.0.1:{receiver.port}/{path}"

    async with running(Receiver(respond=always(500))) as failing, service() as client:
        registered = {}
        for path, events in (("failures", ["timer.failed"]), ("expiries", ["timer.expired"])):
            answer = await client.post("/tenant/webhooks", json={"url": at(path), "events": events})
            assert answer.status_code == 201, answer.text
            registered[path] = answer.json()
        failed = await create(client, seconds=0, url=failing.url, retry={"max_attempts": 1})
        expired = await create(
            client,
            fire_at=(datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
            max_lateness_seconds=1,
            url=receiver.url,
            on_failure_url=at("expiries"),  # the same URL twice: called once
        )
        delivered = await create(client, seconds=0, url=receiver.url)
        assert await receiver.wait_for(lambda: len(receiver.deliveries) >= 3, WAIT)
        listed = (await client.get("/tenant/webhooks")).json()["webhooks"]
        removed = await client.delete(f"/tenant/webhooks/{registered['failures']['webhook_id']}")
        again = await client.delete(f"/tenant/webhooks/{registered['failures']['webhook_id']}")
        after = (await client.get("/tenant/webhooks")).json()["webhooks"]
    by_path = {d.path: d for d in receiver.deliveries}
    assert sorted(by_path) == ["/expiries", "/failures", "/hook"]
    assert by_path["/failures"].body["type"] == "timer.failed"
    assert by_path["/failures"].body["timer_id"] == failed
    assert by_path["/expiries"].body["type"] == "timer.expired"
    assert by_path["/expiries"].body["timer_id"] == expired
    assert by_path["/hook"].timer_id == delivered
    assert [w["events"] for w in listed] == [["timer.failed"], ["timer.expired"]]
    assert removed.status_code == 204
    assert again.status_code == 404
    assert [w["url"] for w in after] == [at("expiries")]


async def test_tenant_webhooks_belong_to_their_tenant(make_settings: Any, receiver: Receiver) -> None:
    app = create_app(make_settings(admin_api_key=ADMIN_KEY, api_key_cache_seconds=0), run_dispatcher=False)
    async with running_app(app) as client:
        acme, globex = await make_key(client, "acme", "writer"), await make_key(client, "globex", "writer")
        reader = await make_key(client, "acme", "reader")
        body = {"url": receiver.url, "events": ["timer.failed"]}
        made = await client.post("/tenant/webhooks", json=body, headers=bearer(acme))
        webhook_id = made.json()["webhook_id"]
        theirs = (await client.get("/tenant/webhooks", headers=bearer(globex))).json()["webhooks"]
        stolen = await client.delete(f"/tenant/webhooks/{webhook_id}", headers=bearer(globex))
        by_reader = await client.post("/tenant/webhooks", json=body, headers=bearer(reader))
        anonymous = await client.get("/tenant/webhooks", headers={"Authorization": "Bearer nope"})
        mine = (await client.get("/tenant/webhooks", headers=bearer(acme))).json()["webhooks"]
    assert made.status_code == 201
    assert theirs == []
    assert stolen.status_code == 404
    assert by_reader.status_code == 403
    assert anonymous.status_code == 401
    assert [w["webhook_id"] for w in mine] == [webhook_id]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"url": "http://example.com/x", "events": ["timer.delivered"]}, "events"),
        ({"url": "http://example.com/x", "events": []}, "events"),
        ({"url": "http://example.com/x", "events": ["timer.failed", "timer.failed"]}, "events"),
        ({"url": "gopher://example.com/x", "events": ["timer.failed"]}, "url"),
        (
            {"url": "http://169.254.169.254/x", "events": ["timer.failed"]},
            "SCHEDULER_WEBHOOK_ALLOWED_NETWORKS",
        ),
        ({"url": "http://example.com/x", "events": ["timer.failed"], "extra": 1}, "extra"),
    ],
)
async def test_a_bad_tenant_webhook_is_422_naming_the_problem(
    api: httpx.AsyncClient, body: dict[str, Any], says: str
) -> None:
    answer = await api.post("/tenant/webhooks", json=body)
    assert answer.status_code == 422, answer.text
    assert says in answer.json()["error"]["message"]
    assert (await api.get("/tenant/webhooks")).json()["webhooks"] == []
