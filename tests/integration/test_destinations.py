"""Destinations end to end (issue 16): the whole service on a real PostgreSQL, real receivers on
127.0.0.1. A paused destination holds its timers; a destination that keeps failing opens its
circuit breaker, holds its timers without spending their attempts, sends one probe per cool-down
(one in the whole cluster), and closes when the probe succeeds."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import asyncpg
import httpx
import pytest
from aiohttp import web

from task_scheduler.app import create_app
from tests.support.app import ServiceFactory, running_app
from tests.support.keys import ADMIN_KEY, bearer, make_key
from tests.support.polling import WAIT, wait_for_status
from tests.support.receiver import Receiver, running


def path_of(key: str) -> str:
    return f"/destinations/{quote(key, safe='')}"


def origin(receiver: Receiver) -> str:
    return f"http://127.0.0.1:{receiver.port}"


async def create(client: httpx.AsyncClient, **fields: Any) -> int:
    created = await client.post("/timer", json=fields)
    assert created.status_code == 201, created.text
    timer_id: int = created.json()["timer_id"]
    return timer_id


async def wait_for(predicate: Any, within: float = WAIT) -> bool:
    """Poll an async predicate every 50 ms, at most `within` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(0.05)
    return False


class Switchable(Receiver):
    """A receiver whose answer the test switches (`status`), counting requests in flight for the
    timers it watches (`watched`) while it fails: two probes at once would show as two in flight."""

    def __init__(self, status: int = 503, delay_seconds: float = 0.0) -> None:
        super().__init__(respond=lambda _timer_id, _seen: self.status, delay_seconds=delay_seconds)
        self.status = status
        self.watched: set[int] = set()
        self.in_flight = 0
        self.most_in_flight = 0

    async def _handle(self, request: web.Request) -> web.Response:
        watched = self.status >= 500 and int(request.headers.get("X-Timer-Id", "-1")) in self.watched
        if watched:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            return await super()._handle(request)
        finally:
            if watched:
                self.in_flight -= 1

    def requests_for(self, timer_ids: set[int]) -> int:
        return sum(1 for d in self.deliveries if d.timer_id in timer_ids)


async def test_a_timer_gets_its_urls_origin_or_the_given_destination(api: httpx.AsyncClient) -> None:
    default = await create(api, seconds=60, url="https://Example.COM/hook?x=1")
    given = await create(api, seconds=60, url="http://example.com:8080/a", destination="payments")
    shown = [(await api.get(f"/timer/{t}")).json() for t in (default, given)]
    assert [s["destination"] for s in shown] == ["https://example.com:443", "payments"]
    assert [s["held_reason"] for s in shown] == [None, None]


async def test_a_paused_destination_holds_its_timers_and_resume_releases_them(
    service: ServiceFactory, receiver: Receiver
) -> None:
    key = origin(receiver)
    async with service(stats_interval_seconds=0.1) as client:
        paused = await client.put(path_of(key), json={"paused": True})
        timer_id = await create(client, seconds=0, url=receiver.url)
        other = await create(client, seconds=0, url=receiver.url, destination="elsewhere")
        delivered_other = await wait_for_status(client, other, "delivered", WAIT)
        await asyncio.sleep(0.5)  # several claim turns (poll 0.2 s) pass the held timer by

        async def gauges_show_it() -> bool:
            text = (await client.get("/metrics")).text
            return (
                "scheduler_destinations_holding 1.0" in text
                and "scheduler_destination_waiting_timers 1.0" in text
            )

        assert await wait_for(gauges_show_it)
        held = (await client.get(f"/timer/{timer_id}")).json()
        shown = (await client.get(path_of(key))).json()
        listed = (await client.get("/destinations")).json()
        resumed = await client.post(f"{path_of(key)}/resume")
        delivered = await wait_for_status(client, timer_id, "delivered", WAIT)
    assert paused.status_code == 200, paused.text
    assert paused.json()["paused"] is True
    assert delivered_other["status"] == "delivered"
    assert (held["status"], held["attempts"], held["held_reason"]) == ("pending", 0, "destination_paused")
    assert (shown["paused"], shown["breaker_state"], shown["waiting"]) == (True, "closed", 1)
    assert [d["key"] for d in listed["destinations"]] == [key]
    assert resumed.status_code == 200
    assert resumed.json()["paused"] is False
    assert [e["event"] for e in paused.json()["history"]] == ["paused"]
    assert [e["event"] for e in resumed.json()["history"]] == ["resumed", "paused"]
    # Let go: its timers start slowly (SCHEDULER_SLOW_START_SECONDS, 30 s) from the resume.
    resumed_at = datetime.fromisoformat(resumed.json()["history"][0]["at"])
    assert shown["slow_start_until"] is None
    assert datetime.fromisoformat(resumed.json()["slow_start_until"]) == resumed_at + timedelta(seconds=30)
    assert delivered["status"] == "delivered"
    assert delivered["attempts"] == 1
    assert receiver.counts() == {other: 1, timer_id: 1}


async def test_a_held_timer_past_its_lateness_cutoff_expires(
    service: ServiceFactory, receiver: Receiver
) -> None:
    async with service() as client:
        await client.put(path_of(origin(receiver)), json={"paused": True})
        timer_id = await create(client, seconds=0, url=receiver.url, max_lateness_seconds=0.5)
        expired = await wait_for_status(client, timer_id, "expired", WAIT)
    assert expired["status"] == "expired"
    assert receiver.deliveries == []


async def test_a_destination_never_changed_reads_closed(api: httpx.AsyncClient) -> None:
    shown = await api.get(path_of("http://example.com:80"))
    assert shown.status_code == 200
    assert shown.json() == {
        "key": "http://example.com:80",
        "paused": False,
        "breaker_state": "closed",
        "consecutive_failures": 0,
        "opened_at": None,
        "failing_since": None,
        "disabled_at": None,
        "slow_start_until": None,
        "history": [],
        "updated_at": None,
        "rate_per_second": None,
        "burst": None,
        "parallelism": None,
        "waiting": 0,
        "in_flight": 0,
        "health": {
            "window_seconds": 900,
            "hosts": ["example.com:80", "example.com"],
            "attempts": 0,
            "succeeded": 0,
            "success_rate": None,
            "p50_ms": None,
            "p99_ms": None,
        },
    }
    assert (await api.get("/destinations")).json() == {"destinations": [], "next_cursor": None}


async def test_destinations_are_listed_page_by_page(api: httpx.AsyncClient) -> None:
    for key in ("c", "a", "b"):
        assert (await api.put(path_of(key), json={"paused": True})).status_code == 200
    first = (await api.get("/destinations", params={"limit": 2})).json()
    second = (await api.get("/destinations", params={"limit": 2, "cursor": first["next_cursor"]})).json()
    assert [d["key"] for d in first["destinations"]] == ["a", "b"]
    assert [d["key"] for d in second["destinations"]] == ["c"]
    assert second["next_cursor"] is None


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("PUT", path_of("k"), {"paused": "yes"}, "paused"),
        ("PUT", path_of("k"), {}, "paused"),
        ("PUT", path_of("k"), {"paused": True, "rate": 5}, "rate"),
        ("PUT", path_of("x" * 301), {"paused": True}, "key"),
        ("PUT", path_of(" k"), {"paused": True}, "key"),
        ("GET", path_of("a\tb"), None, "key"),
        ("GET", "/destinations?cursor=%25%25", None, "cursor"),
        ("POST", "/timer", {"seconds": 1, "url": "http://example.com/", "destination": ""}, "destination"),
        (
            "POST",
            "/timer",
            {"seconds": 1, "url": "http://example.com/", "destination": "x" * 201},
            "destination",
        ),
        (
            "POST",
            "/timer",
            {"seconds": 1, "url": "http://example.com/", "destination": "a\nb"},
            "destination",
        ),
    ],
)
async def test_a_bad_destination_is_422_naming_the_field(
    api: httpx.AsyncClient, method: str, path: str, body: dict[str, Any] | None, field: str
) -> None:
    answer = await api.request(method, path, json=body)
    assert answer.status_code == 422, answer.text
    assert field in answer.json()["error"]["message"]
    assert (await api.get("/destinations")).json()["destinations"] == []


async def breaker_of(client: httpx.AsyncClient, key: str) -> dict[str, Any]:
    shown: dict[str, Any] = (await client.get(path_of(key))).json()
    return shown


async def test_a_failing_destination_opens_holds_probes_once_and_closes(
    service: ServiceFactory, receiver: Receiver
) -> None:
    """503 five times: the breaker opens (destination.opened is sent); the timers due then stay
    pending while the other destinations deliver; one probe at a time; back to 200: the probe
    closes it (destination.closed) and every timer is delivered once."""
    events_url = f"http://127.0.0.1:{receiver.port}/events"
    async with (
        running(Switchable(status=503, delay_seconds=0.3)) as failing,
        service(breaker_cooldown_seconds=1.0) as client,
    ):
        key = origin(failing)
        subscribed = await client.post(
            "/tenant/webhooks",
            json={"url": events_url, "events": ["destination.opened", "destination.closed"]},
        )
        assert subscribed.status_code == 201, subscribed.text
        first = {
            await create(client, seconds=0, url=failing.url, retry={"max_attempts": 1}) for _ in range(5)
        }
        for timer_id in first:
            assert (await wait_for_status(client, timer_id, "failed", WAIT))["status"] == "failed"
        opened = await breaker_of(client, key)
        assert await receiver.wait_for(lambda: any(d.path == "/events" for d in receiver.deliveries), WAIT)

        held = {
            await create(client, seconds=0, url=failing.url, retry={"max_attempts": 50}) for _ in range(10)
        }
        failing.watched |= held
        others = {await create(client, seconds=0, url=receiver.url) for _ in range(5)}
        for timer_id in others:
            assert (await wait_for_status(client, timer_id, "delivered", WAIT))["status"] == "delivered"
        # Probes go out one per cool-down while it fails: wait for two.
        assert await failing.wait_for(lambda: failing.requests_for(held) >= 2, WAIT)
        views = [(await client.get(f"/timer/{t}")).json() for t in held]
        while_open = await breaker_of(client, key)

        failing.status = 200
        for timer_id in held:
            assert (await wait_for_status(client, timer_id, "delivered", WAIT))["status"] == "delivered"
        closed = await breaker_of(client, key)
        assert await receiver.wait_for(
            lambda: sum(d.path == "/events" for d in receiver.deliveries) >= 2, WAIT
        )
        attempts = {t: (await client.get(f"/timer/{t}")).json()["attempts"] for t in held}

    assert (opened["breaker_state"], opened["consecutive_failures"]) == ("open", 5)
    assert opened["opened_at"] is not None
    pending = [v for v in views if v["status"] == "pending"]
    assert len(pending) >= len(held) - 1  # one may be the probe, firing
    assert {v["held_reason"] for v in pending} == {"destination_open"}
    assert while_open["breaker_state"] in ("open", "half_open")
    assert while_open["waiting"] >= 8
    assert failing.most_in_flight == 1  # never two probes at once
    # No attempt was spent without a request: each held timer's attempts are its requests.
    assert attempts == {t: failing.requests_for({t}) for t in held}
    assert (closed["breaker_state"], closed["consecutive_failures"]) == ("closed", 0)
    assert failing.counts() == dict.fromkeys(held, 1)
    assert all(receiver.counts()[t] == 1 for t in others)
    events = [d.body for d in receiver.deliveries if d.path == "/events"]
    assert [(e["type"], e["destination"]) for e in events] == [
        ("destination.opened", key),
        ("destination.closed", key),
    ]


async def test_two_instances_send_one_probe_at_a_time(
    make_settings: Any, receiver: Receiver, database_url: str
) -> None:
    """Two dispatchers on one database: when the cool-down ends both claim, one takes the probe."""
    async with running(Switchable(status=503, delay_seconds=0.5)) as failing:
        key = origin(failing)
        apps = [
            create_app(make_settings(instance_id=f"probe-{i}", breaker_cooldown_seconds=0.3))
            for i in range(2)
        ]
        async with running_app(apps[0]) as one, running_app(apps[1]):
            first = {
                await create(one, seconds=0, url=failing.url, retry={"max_attempts": 1}) for _ in range(5)
            }
            for timer_id in first:
                assert (await wait_for_status(one, timer_id, "failed", WAIT))["status"] == "failed"
            assert (await breaker_of(one, key))["breaker_state"] == "open"
            held = {
                await create(one, seconds=0, url=failing.url, retry={"max_attempts": 50}) for _ in range(10)
            }
            failing.watched |= held
            # The cool-down (0.3 s) is shorter than a probe (0.5 s): only the probe's lease stops a second.
            assert await failing.wait_for(lambda: failing.requests_for(held) >= 4, WAIT)
            failing.status = 200
            for timer_id in held:
                assert (await wait_for_status(one, timer_id, "delivered", WAIT))["status"] == "delivered"
            attempts = {t: (await one.get(f"/timer/{t}")).json()["attempts"] for t in held}
    assert failing.most_in_flight == 1
    assert attempts == {t: failing.requests_for({t}) for t in held}
    assert failing.counts() == dict.fromkeys(held, 1)


class Concurrent(Switchable):
    """Also counts the requests in flight it answers 2xx (those of a destination back up)."""

    def __init__(self, status: int, delay_seconds: float) -> None:
        super().__init__(status=status, delay_seconds=delay_seconds)
        self.answering = 0
        self.most_answering = 0

    async def _handle(self, request: web.Request) -> web.Response:
        answering = self.status < 300
        if answering:
            self.answering += 1
            self.most_answering = max(self.most_answering, self.answering)
        try:
            return await super()._handle(request)
        finally:
            if answering:
                self.answering -= 1


async def test_a_destination_back_from_an_open_breaker_starts_slowly(service: ServiceFactory) -> None:
    """Slow start: when the probe closes the breaker, the 30 held timers do not all go out at
    once (per host 40 would allow it) but a tenth of the per-host limit at a time, rising over
    SCHEDULER_SLOW_START_SECONDS (600 here: 4 in flight for the whole test, 5 after 25 s)."""
    async with (
        running(Concurrent(status=503, delay_seconds=0.2)) as flaky,
        service(
            breaker_failures=3,
            breaker_cooldown_seconds=0.3,
            max_concurrent_per_host=40,
            slow_start_seconds=600,
        ) as client,
    ):
        first = {await create(client, seconds=0, url=flaky.url, retry={"max_attempts": 1}) for _ in range(3)}
        for timer_id in first:
            assert (await wait_for_status(client, timer_id, "failed", WAIT))["status"] == "failed"
        assert (await breaker_of(client, origin(flaky)))["breaker_state"] == "open"
        held = {await create(client, seconds=0, url=flaky.url) for _ in range(30)}
        flaky.status = 200
        for timer_id in held:
            assert (await wait_for_status(client, timer_id, "delivered", WAIT))["status"] == "delivered"
        closed = await breaker_of(client, origin(flaky))
    assert closed["breaker_state"] == "closed"
    closed_at = datetime.fromisoformat(closed["history"][0]["at"])
    assert datetime.fromisoformat(closed["slow_start_until"]) == closed_at + timedelta(seconds=600)
    assert 2 <= flaky.most_answering <= 5, flaky.most_answering


def returned_count(metrics_text: str) -> float:
    for line in metrics_text.splitlines():
        if line.startswith('scheduler_deliveries_total{outcome="returned"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.parametrize("limited", [False, True], ids=["regular-claim", "flow-claim"])
async def test_a_breaker_closed_elsewhere_releases_its_timers_before_the_next_read(
    service: ServiceFactory, limited: bool
) -> None:
    """An instance whose outcomes opened a breaker holds its timers at once; when the breaker is
    closed elsewhere (here by the API's resume, as by another instance's probe), the claim that
    takes the released timers reads the holding destinations again in its transaction. It once
    kept its stale view until the next periodic read (every poll interval, 60 s here): every
    timer it claimed meanwhile was returned unsent, claimed again, returned again. The same for a
    rate-limited destination, whose timers the flow-control claim takes."""
    async with (
        running(Concurrent(status=503, delay_seconds=0.0)) as flaky,
        service(
            breaker_failures=3, breaker_cooldown_seconds=3600, poll_interval_seconds=60, slow_start_seconds=0
        ) as client,
    ):
        if limited:
            put = await client.put(path_of(origin(flaky)), json={"rate_per_second": 1000})
            assert put.status_code == 200, put.text
        first = {await create(client, seconds=0, url=flaky.url, retry={"max_attempts": 1}) for _ in range(3)}
        for timer_id in first:
            assert (await wait_for_status(client, timer_id, "failed", WAIT))["status"] == "failed"
        assert (await breaker_of(client, origin(flaky)))["breaker_state"] == "open"
        flaky.status = 200
        held = {await create(client, seconds=0, url=flaky.url) for _ in range(20)}
        await asyncio.sleep(0.3)
        returned_before = returned_count((await client.get("/metrics")).text)
        resumed = await client.post(f"{path_of(origin(flaky))}/resume")
        assert resumed.status_code == 200, resumed.text
        views = [await wait_for_status(client, timer_id, "delivered", WAIT) for timer_id in held]
        returned = returned_count((await client.get("/metrics")).text) - returned_before
    assert {(v["status"], v["attempts"]) for v in views} == {("delivered", 1)}
    assert returned == 0


async def test_4xx_answers_do_not_open_the_breaker(service: ServiceFactory, db: asyncpg.Connection) -> None:
    async with running(Switchable(status=404)) as refusing, service() as client:
        timers = {
            await create(client, seconds=0, url=refusing.url, retry={"max_attempts": 1}) for _ in range(6)
        }
        for timer_id in timers:
            assert (await wait_for_status(client, timer_id, "failed", WAIT))["status"] == "failed"
        shown = await breaker_of(client, origin(refusing))
    assert (shown["breaker_state"], shown["consecutive_failures"]) == ("closed", 0)
    assert await db.fetchval("SELECT count(*) FROM destinations") == 0  # healthy: no row written


async def test_timers_claimed_before_the_breaker_opened_are_returned_unsent(service: ServiceFactory) -> None:
    """Timers already claimed (the lookahead holds them in memory) when their destination's
    breaker opens are not sent: they go back to pending, their attempts undone."""
    # The later timers are due in 12 s, inside the 14 s lookahead: claimed at once, held in
    # memory, while the first ones fail and open the breaker (12 s for that: with 6 s, a CI run on
    # a loaded machine sent later ones first, and their failures opened the breaker while first
    # ones were still unsent); the breaker's probe comes 30 s after it opens, well after the end.
    async with running(Switchable(status=503)) as failing, service(lookahead_seconds=14.0) as client:
        fire_at = (datetime.now(UTC) + timedelta(seconds=12)).isoformat()
        batch = await client.post(
            "/timers/batch", json={"timers": [{"fire_at": fire_at, "url": failing.url}] * 20}
        )
        assert batch.status_code == 201, batch.text
        later = {t["timer_id"] for t in batch.json()["timers"]}  # claimed now
        assert len(later) == 20

        async def all_claimed() -> bool:
            views = [(await client.get(f"/timer/{t}")).json() for t in later]
            return all(v["status"] == "firing" for v in views)

        assert await wait_for(all_claimed)  # before the breaker opens
        first = {
            await create(client, seconds=0, url=failing.url, retry={"max_attempts": 1}) for _ in range(5)
        }
        for timer_id in first:
            assert (await wait_for_status(client, timer_id, "failed", WAIT))["status"] == "failed"
        assert (await breaker_of(client, origin(failing)))["breaker_state"] == "open"

        async def all_due_and_idle() -> bool:
            views = [(await client.get(f"/timer/{t}")).json() for t in later]
            return all(v["status"] == "pending" and v["time_left"] == 0 for v in views)

        assert await wait_for(all_due_and_idle)
        await asyncio.sleep(0.5)  # claim turns pass them by
        views = [(await client.get(f"/timer/{t}")).json() for t in later]
    assert len(failing.deliveries) == 5
    assert {(v["status"], v["attempts"], v["held_reason"]) for v in views} == {
        ("pending", 0, "destination_open")
    }


async def test_an_edited_url_takes_its_origin_along_unless_a_destination_was_given(
    api: httpx.AsyncClient,
) -> None:
    default = await create(api, seconds=60, url="http://a.example/x")
    given = await create(api, seconds=60, url="http://a.example/x", destination="shared")
    for timer_id in (default, given):
        edited = await api.patch(f"/timer/{timer_id}", json={"url": "https://b.example:8443/y"})
        assert edited.status_code == 200, edited.text
    shown = [(await api.get(f"/timer/{t}")).json()["destination"] for t in (default, given)]
    assert shown == ["https://b.example:8443", "shared"]


async def test_destinations_belong_to_their_tenant(make_settings: Any) -> None:
    app = create_app(make_settings(admin_api_key=ADMIN_KEY, api_key_cache_seconds=0), run_dispatcher=False)
    async with running_app(app) as client:
        acme, globex = await make_key(client, "acme", "writer"), await make_key(client, "globex", "writer")
        reader = await make_key(client, "acme", "reader")
        paused = await client.put(path_of("shared"), json={"paused": True}, headers=bearer(acme))
        theirs = (await client.get(path_of("shared"), headers=bearer(globex))).json()
        their_list = (await client.get("/destinations", headers=bearer(globex))).json()
        by_reader = await client.put(path_of("shared"), json={"paused": False}, headers=bearer(reader))
        resumed_by_reader = await client.post(f"{path_of('shared')}/resume", headers=bearer(reader))
        read_by_reader = (await client.get(path_of("shared"), headers=bearer(reader))).json()
    assert paused.status_code == 200
    assert theirs["paused"] is False
    assert their_list["destinations"] == []
    assert (by_reader.status_code, resumed_by_reader.status_code) == (403, 403)
    assert read_by_reader["paused"] is True


async def test_a_key_the_path_cannot_carry_is_a_documented_404(api: httpx.AsyncClient) -> None:
    """Regression (the fuzzer): a key with a newline does not match the routes' path converter,
    so the router answers 404 before any route; every route of one destination documents it."""
    spec = (await api.get("/openapi.json")).json()
    unroutable = path_of("a\nb")
    for method, suffix in (("get", ""), ("put", ""), ("post", "/resume")):
        assert "404" in spec["paths"]["/destinations/{key}" + suffix][method]["responses"]
        response = await api.request(
            method.upper(), unroutable + suffix, json={"paused": True} if method == "put" else None
        )
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "not_found"


async def test_the_history_keeps_the_last_twenty_changes_newest_first(api: httpx.AsyncClient) -> None:
    """Each real change of the pause switch is noted once (setting it to what it is notes nothing)."""
    for paused in [True, True] + [False, True] * 12:
        assert (await api.put(path_of("payments"), json={"paused": paused})).status_code == 200
    limited = (await api.put(path_of("payments"), json={"rate_per_second": 5})).json()
    history = (await api.get(path_of("payments"))).json()["history"]
    assert history == limited["history"]
    assert [e["event"] for e in history] == ["paused", "unpaused"] * 10
    stamps = [datetime.fromisoformat(e["at"]) for e in history]
    assert stamps == sorted(stamps, reverse=True)
    assert {e["consecutive_failures"] for e in history} == {0}
