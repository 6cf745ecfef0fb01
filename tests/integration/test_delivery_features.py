"""What is sent and how attempts end, end to end: the whole service on a real PostgreSQL firing
at a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from task_scheduler.db import asyncpg_dsn
from task_scheduler.delivery.signing import generate_secret
from tests.support.api import create, settled
from tests.support.app import ServiceFactory
from tests.support.receiver import Receiver, always, headers_of
from tests.support.receiver_extras import HeaderReceiver


async def test_custom_method_headers_and_json_body(service: ServiceFactory, receiver: Receiver) -> None:
    async with service() as client:
        timer_id = await create(
            client,
            seconds=0,
            url=receiver.url + "?q=1",
            method="PUT",
            headers={"X-Tenant": "acme", "Authorization": "Bearer s3cret"},
            body={"reminder": "dinner", "n": [1, 2]},
        )
        view = await settled(client, timer_id, "delivered")
    (delivery,) = receiver.deliveries
    headers = headers_of(delivery)
    assert delivery.method == "PUT"
    assert json.loads(delivery.raw) == {"reminder": "dinner", "n": [1, 2]}
    assert headers["content-type"] == "application/json"
    assert headers["x-tenant"] == "acme"
    assert headers["authorization"] == "Bearer s3cret"
    assert headers["x-timer-id"] == str(timer_id)
    assert view["headers"]["Authorization"] == "[redacted]"


async def test_string_body_and_custom_content_type(service: ServiceFactory, receiver: Receiver) -> None:
    async with service() as client:
        plain = await create(client, url=receiver.url, body="hello, world")
        xml = await create(
            client, url=receiver.url, body="<a>1</a>", headers={"Content-Type": "application/xml"}
        )
        for timer_id in (plain, xml):
            await settled(client, timer_id, "delivered")
    by_id = {d.timer_id: d for d in receiver.deliveries}
    assert by_id[plain].raw == b"hello, world"
    assert headers_of(by_id[plain])["content-type"] == "text/plain; charset=utf-8"
    assert by_id[xml].raw == b"<a>1</a>"
    assert headers_of(by_id[xml])["content-type"] == "application/xml"


async def test_default_body_carries_labels(service: ServiceFactory, receiver: Receiver) -> None:
    async with service() as client:
        timer_id = await create(client, url=receiver.url, labels={"customer": "42"})
        await settled(client, timer_id, "delivered")
    (delivery,) = receiver.deliveries
    assert delivery.body["labels"] == {"customer": "42"}
    assert delivery.body["timer_id"] == timer_id
    assert delivery.body["attempt"] == 1


@pytest.mark.parametrize("method", ["GET", "DELETE", "PATCH"])
async def test_other_methods(service: ServiceFactory, receiver: Receiver, method: str) -> None:
    async with service() as client:
        timer_id = await create(client, url=receiver.url, method=method)
        await settled(client, timer_id, "delivered")
    assert [d.method for d in receiver.deliveries] == [method]


async def test_signatures_verify_with_every_rotated_secret(
    service: ServiceFactory, receiver: Receiver
) -> None:
    old, new = generate_secret(), generate_secret()
    receiver.respond = lambda _timer_id, seen: 500 if seen == 0 else 200
    async with service(webhook_secrets=f"{new}, {old}") as client:
        timer_id = await create(client, url=receiver.url, body={"x": 1})
        await settled(client, timer_id, "delivered")
    first, second = receiver.deliveries
    for delivery in (first, second):
        headers = headers_of(delivery)
        assert len(headers["webhook-signature"].split(" ")) == 2
        for secret in (old, new):  # a receiver holding either secret accepts the request
            assert Webhook(secret).verify(delivery.raw, headers) == {"x": 1}
    assert headers_of(first)["webhook-id"] == headers_of(second)["webhook-id"]
    with pytest.raises(Exception, match="signature"):
        Webhook(generate_secret()).verify(first.raw, headers_of(first))


async def test_unsigned_without_secrets(service: ServiceFactory, receiver: Receiver) -> None:
    async with service() as client:
        timer_id = await create(client, url=receiver.url)
        await settled(client, timer_id, "delivered")
    headers = headers_of(receiver.deliveries[0])
    assert "webhook-signature" not in headers
    assert headers["webhook-id"].startswith("msg_")


async def test_retry_after_is_honoured(service: ServiceFactory, header_receiver: HeaderReceiver) -> None:
    header_receiver.respond = lambda _timer_id, seen: 503 if seen == 0 else 200
    header_receiver.respond_headers = lambda _timer_id, seen: {"Retry-After": "1"} if seen == 0 else {}
    async with service() as client:
        # The test settings' backoff is 0.05-0.2 s; the receiver asks for 1 s, within this cap.
        timer_id = await create(client, url=header_receiver.url, retry={"backoff_cap_seconds": 5})
        await settled(client, timer_id, "delivered")
    first, second = header_receiver.deliveries
    assert second.arrived_at - first.arrived_at >= 0.9  # never sooner than asked (a lower bound)


async def test_retry_after_is_clamped_to_the_policy(
    service: ServiceFactory, header_receiver: HeaderReceiver
) -> None:
    header_receiver.respond = lambda _timer_id, seen: 429 if seen == 0 else 200
    header_receiver.respond_headers = lambda _timer_id, seen: {"Retry-After": "86400"} if seen == 0 else {}
    async with service() as client:
        timer_id = await create(client, url=header_receiver.url, retry={"backoff_cap_seconds": 0.5})
        view = await settled(client, timer_id, "delivered")  # not a day later
    assert view["attempts"] == 2


async def test_gone_fails_without_retries(service: ServiceFactory, receiver: Receiver) -> None:
    receiver.respond = always(410)
    async with service() as client:
        timer_id = await create(client, url=receiver.url)
        view = await settled(client, timer_id, "failed")
        await asyncio.sleep(0.5)
    assert view["attempts"] == 1
    assert "410" in view["last_error"]
    assert len(receiver.deliveries) == 1


async def test_per_timer_max_attempts(service: ServiceFactory, receiver: Receiver) -> None:
    receiver.respond = always(500)
    async with service(max_attempts=5) as client:
        timer_id = await create(client, url=receiver.url, retry={"max_attempts": 2})
        view = await settled(client, timer_id, "failed")
    assert view["attempts"] == 2
    assert len(receiver.deliveries) == 2


async def test_per_timer_timeout(service: ServiceFactory, receiver: Receiver) -> None:
    receiver.delay_seconds = 1.5
    async with service() as client:  # service timeout 2 s: only the timer's 0.3 s can time out
        timer_id = await create(client, url=receiver.url, retry={"timeout_seconds": 0.3, "max_attempts": 1})
        view = await settled(client, timer_id, "failed")
        attempts = (await client.get(f"/timer/{timer_id}/attempts")).json()["attempts"]
    assert "timeout" in view["last_error"]
    assert attempts[0]["error_class"] == "timeout"


async def test_attempt_log(service: ServiceFactory, receiver: Receiver) -> None:
    receiver.respond = lambda _timer_id, seen: 500 if seen < 2 else 200
    async with service() as client:
        timer_id = await create(client, url=receiver.url)
        await settled(client, timer_id, "delivered")
        attempts = (await client.get(f"/timer/{timer_id}/attempts")).json()["attempts"]
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    assert [a["status_code"] for a in attempts] == [500, 500, 200]
    assert [a["error_class"] for a in attempts] == ["http_status", "http_status", None]
    assert attempts[0]["response_body"] == "nope"
    assert attempts[2]["response_body"] == "ok"
    assert attempts[0]["error_message"].startswith("HTTP 500")
    assert all(a["duration_ms"] >= 0 for a in attempts)
    started = [datetime.fromisoformat(a["started_at"]) for a in attempts]
    assert started == sorted(started)


async def test_attempt_log_keeps_only_the_first_kilobyte(service: ServiceFactory, database_url: str) -> None:
    from aiohttp import web

    async def big(_request: web.Request) -> web.Response:
        return web.Response(status=500, text="x" * 5000)

    app = web.Application()
    app.router.add_post("/big", big)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with service() as client:
            timer_id = await create(client, url=f"http://127.0.0.1:{port}/big", retry={"max_attempts": 1})
            await settled(client, timer_id, "failed")
            (attempt,) = (await client.get(f"/timer/{timer_id}/attempts")).json()["attempts"]
    finally:
        await runner.cleanup()
    assert len(attempt["response_body"]) == 1024


async def test_timer_past_its_cutoff_expires_without_firing(
    api: httpx.AsyncClient, service: ServiceFactory, receiver: Receiver
) -> None:
    # Created while no dispatcher runs ("the service was down"), due in 1 s, 1 s of lateness allowed.
    late = await create(api, seconds=1, url=receiver.url, max_lateness_seconds=1)
    lenient = await create(api, seconds=1, url=receiver.url, max_lateness_seconds=3600)
    await asyncio.sleep(2.5)
    async with service() as client:
        expired = await settled(client, late, "expired")
        await settled(client, lenient, "delivered")
        await client.get("/healthz")
    assert "expired" in expired["last_error"]
    assert [d.timer_id for d in receiver.deliveries] == [lenient]


async def test_fire_at_in_the_past_with_a_cutoff_already_passed(
    service: ServiceFactory, receiver: Receiver
) -> None:
    past = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    cutoff = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    async with service() as client:
        response = await client.post(
            "/timer", json={"fire_at": past, "url": receiver.url, "deliver_before": cutoff}
        )
        assert response.status_code == 201, response.text
        await settled(client, response.json()["timer_id"], "expired")
    assert receiver.deliveries == []


async def test_redrive_a_failed_timer(service: ServiceFactory, receiver: Receiver) -> None:
    receiver.respond = always(500)
    async with service() as client:
        timer_id = await create(client, url=receiver.url, retry={"max_attempts": 2})
        await settled(client, timer_id, "failed")
        receiver.respond = always(200)
        redriven = await client.post(f"/timer/{timer_id}/retry")
        assert redriven.status_code == 200
        assert redriven.json()["status"] in ("pending", "firing", "delivered")
        view = await settled(client, timer_id, "delivered")
        attempts = (await client.get(f"/timer/{timer_id}/attempts")).json()["attempts"]
    assert view["attempts"] == 3
    assert [a["status_code"] for a in attempts] == [500, 500, 200]
    ids = {headers_of(d)["webhook-id"] for d in receiver.deliveries}
    assert len(ids) == 1  # the redrive keeps the delivery id


async def test_redrive_gives_a_fresh_retry_budget(service: ServiceFactory, receiver: Receiver) -> None:
    receiver.respond = always(500)
    async with service() as client:
        timer_id = await create(client, url=receiver.url, retry={"max_attempts": 2})
        await settled(client, timer_id, "failed")
        await client.post(f"/timer/{timer_id}/retry")
        await asyncio.sleep(0.1)
        view = await settled(client, timer_id, "failed")
    assert view["attempts"] == 4


async def test_reschedule_sooner_and_new_url(
    service: ServiceFactory, receiver: Receiver, database_url: str
) -> None:
    async with service() as client:
        timer_id = await create(client, hours=1, url="http://127.0.0.1:9/never")
        patched = await client.patch(f"/timer/{timer_id}", json={"seconds": 0, "url": receiver.url})
        assert patched.status_code == 200, patched.text
        await settled(client, timer_id, "delivered")
    assert [d.timer_id for d in receiver.deliveries] == [timer_id]


async def test_cancel_racing_the_dispatcher_never_both(
    service: ServiceFactory, receiver: Receiver, database_url: str
) -> None:
    """Every timer ends either cancelled (never delivered) or delivered (its cancel got 409)."""
    async with service(lookahead_seconds=0.2) as client:
        batch = {"timers": [{"seconds": 1, "url": receiver.url} for _ in range(200)]}
        ids = [t["timer_id"] for t in (await client.post("/timers/batch", json=batch)).json()["timers"]]
        await asyncio.sleep(0.7)  # cancel right around the time they are claimed and fired
        answers = await asyncio.gather(*(client.delete(f"/timer/{i}") for i in ids))
        await asyncio.sleep(1.5)
        conn = await asyncpg.connect(asyncpg_dsn(database_url))
        try:
            rows = await conn.fetch("SELECT id, status FROM timers")
        finally:
            await conn.close()
    final = {r["id"]: r["status"] for r in rows}
    delivered = set(receiver.counts())
    for timer_id, answer in zip(ids, answers, strict=True):
        if answer.status_code == 200:
            assert final[timer_id] == "cancelled"
            assert timer_id not in delivered
        else:
            assert answer.status_code == 409, answer.text
            assert answer.json()["error"]["field"] == "status"
            assert final[timer_id] in ("firing", "delivered")
    assert all(n == 1 for n in receiver.counts().values())


async def test_a_slow_hosts_backlog_does_not_stop_other_hosts_timers_being_claimed(
    service: ServiceFactory, receiver: Receiver, header_receiver: HeaderReceiver
) -> None:
    """30 timers for a host that answers in 8 s, 2 at a time, fill a budget of 10 held timers
    three times over; the fast host's timers, due a moment later, are still claimed and sent."""
    header_receiver.delay_seconds = 8.0
    slow_url = header_receiver.url.replace("127.0.0.1", "localhost")
    limits = {"max_in_flight": 10, "claim_batch_size": 10, "max_concurrent_per_host": 2}
    async with service(**limits, request_timeout_seconds=10, lease_seconds=30) as client:
        slow = {"timers": [{"url": slow_url} for _ in range(30)]}
        assert (await client.post("/timers/batch", json=slow)).status_code == 201
        assert await header_receiver.wait_for(lambda: len(header_receiver.deliveries) >= 2, 5.0)
        fast = {"timers": [{"url": receiver.url, "seconds": 1} for _ in range(10)]}
        assert (await client.post("/timers/batch", json=fast)).status_code == 201
        # Without parking, the slow host's 28 waiting timers hold the whole budget until its
        # requests end (8 s each, 2 at a time): the fast host's timers would wait minutes.
        assert await receiver.wait_for(lambda: len(receiver.deliveries) == 10, 6.0)
        assert len(header_receiver.deliveries) == 2


async def test_a_slow_host_does_not_hold_up_other_hosts(
    service: ServiceFactory, receiver: Receiver, header_receiver: HeaderReceiver
) -> None:
    """The slow host may have 2 requests in flight; the instance 4: the fast host keeps 2."""
    header_receiver.delay_seconds = 8.0
    slow_url = header_receiver.url.replace("127.0.0.1", "localhost")
    limits = {"max_concurrent_deliveries": 4, "max_concurrent_per_host": 2}
    async with service(**limits, request_timeout_seconds=10, lease_seconds=15) as client:
        batch = {"timers": [{"url": slow_url} for _ in range(6)] + [{"url": receiver.url} for _ in range(6)]}
        assert (await client.post("/timers/batch", json=batch)).status_code == 201
        # all six to the fast host arrive while the slow host holds its first requests for 8 s
        # (without the per-host limit the slow host's first four would hold every slot)
        assert await receiver.wait_for(lambda: len(receiver.deliveries) == 6, 6.0)
        assert await header_receiver.wait_for(lambda: len(header_receiver.deliveries) >= 2, 1.5)
        assert len(header_receiver.deliveries) == 2


async def test_two_slow_hosts_do_not_keep_every_send_slot_of_the_instance(
    service: ServiceFactory, receiver: Receiver
) -> None:
    """Two hosts answering in 2 s fill the instance's 4 send slots (2 each). With a first-come
    semaphore every slot the fast host freed went to a slow host's request queued before its
    next one, so its 12 timers went out 2 per slow round, after the slow hosts' 16 (8 rounds'
    worth). A freed slot now goes to the waiting host with the fewest requests in flight: the
    fast host keeps the slots it frees and is done within the slow hosts' second round."""
    slow = [Receiver(host="127.0.0.2", delay_seconds=2.0), Receiver(host="127.0.0.3", delay_seconds=2.0)]
    for one in slow:
        await one.start()
    try:
        limits = {"max_concurrent_deliveries": 4, "max_concurrent_per_host": 2}
        async with service(**limits, request_timeout_seconds=10, lease_seconds=30) as client:
            batch = {"timers": [{"url": one.url} for one in slow for _ in range(8)]}
            assert (await client.post("/timers/batch", json=batch)).status_code == 201
            assert await slow[0].wait_for(
                lambda: len(slow[0].deliveries) + len(slow[1].deliveries) >= 4, 10.0
            )
            fast = {"timers": [{"url": receiver.url} for _ in range(12)]}
            assert (await client.post("/timers/batch", json=fast)).status_code == 201
            assert await receiver.wait_for(lambda: len(receiver.deliveries) == 12, 30.0)
            slow_seen = len(slow[0].deliveries) + len(slow[1].deliveries)
            # The first round (4) and at most the second (4) had started when the last fast one came.
            t0 = min(d.arrived_at for one in slow for d in one.deliveries)
            timeline = {
                "slow": sorted(round(d.arrived_at - t0, 2) for one in slow for d in one.deliveries),
                "fast": [round(d.arrived_at - t0, 2) for d in receiver.deliveries],
            }
            assert slow_seen <= 8, timeline
            assert await slow[1].wait_for(
                lambda: len(slow[0].deliveries) + len(slow[1].deliveries) == 16, 30.0
            )
    finally:
        for one in slow:
            await one.stop()
