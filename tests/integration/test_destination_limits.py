"""Flow control per destination (issue 16): a rate (token bucket) and a parallelism, set by
PUT /destinations/{key} and held across every instance on one database. Real PostgreSQL, real
receivers on 127.0.0.1, two or three dispatchers. Only upper bounds are asserted (what a limit
guarantees), never speed."""

from __future__ import annotations

import contextlib
from typing import Any

import httpx
import pytest
from aiohttp import web

from bench.destinations_flow import most_in_any_window
from task_scheduler.app import create_app
from tests.support.app import ServiceFactory, running_app
from tests.support.polling import WAIT, wait_for_status
from tests.support.receiver import Receiver, running

from .test_destinations import create, origin, path_of, wait_for


class Counting(Receiver):
    """A receiver that holds each request `delay_seconds` and counts those in flight at once."""

    def __init__(self, delay_seconds: float = 0.0) -> None:
        super().__init__(delay_seconds=delay_seconds)
        self.in_flight = 0
        self.most_in_flight = 0

    async def _handle(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            return await super()._handle(request)
        finally:
            self.in_flight -= 1


@contextlib.asynccontextmanager
async def instances(make_settings: Any, count: int, **overrides: Any) -> Any:
    """`count` whole services (dispatchers) on one database; yields the first one's client."""
    apps = [create_app(make_settings(instance_id=f"flow-{i}", **overrides)) for i in range(count)]
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(running_app(app)) for app in apps]
        yield clients[0]


# -- the API ---------------------------------------------------------------------------------------


async def test_limits_are_set_kept_when_left_out_and_lifted(api: httpx.AsyncClient) -> None:
    key = "http://limited.example:80"
    rate = (await api.put(path_of(key), json={"rate_per_second": 0.5})).json()
    both = (await api.put(path_of(key), json={"parallelism": 3})).json()
    paused = (await api.put(path_of(key), json={"paused": True})).json()
    burst = (await api.put(path_of(key), json={"rate_per_second": 250.5, "burst": 40})).json()
    shown = (await api.get(path_of(key))).json()
    listed = (await api.get("/destinations")).json()["destinations"]
    default_burst = (await api.put(path_of(key), json={"rate_per_second": 2.5, "burst": None})).json()
    lifted = (await api.put(path_of(key), json={"rate_per_second": None, "parallelism": None})).json()
    whole = (await api.put(path_of(key), json={"rate_per_second": 3})).json()  # an integer is a number

    def limits(view: dict[str, Any]) -> tuple[Any, ...]:
        return (view["paused"], view["rate_per_second"], view["burst"], view["parallelism"])

    assert limits(rate) == (False, 0.5, 1, None)
    assert limits(both) == (False, 0.5, 1, 3)
    assert limits(paused) == (True, 0.5, 1, 3)
    assert limits(burst) == (True, 250.5, 40, 3)
    assert limits(shown) == (True, 250.5, 40, 3)
    assert (shown["in_flight"], shown["waiting"], shown["breaker_state"]) == (0, 0, "closed")
    assert [limits(d) for d in listed] == [(True, 250.5, 40, 3)]
    assert limits(default_burst) == (True, 2.5, 3, 3)
    assert limits(lifted) == (True, None, None, None)
    assert limits(whole) == (True, 3.0, 3, None)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"rate_per_second": 0}, "rate_per_second"),
        ({"rate_per_second": -1}, "rate_per_second"),
        ({"rate_per_second": "fast"}, "rate_per_second"),
        ({"rate_per_second": "5"}, "rate_per_second"),
        ({"rate_per_second": True}, "rate_per_second"),
        ({"rate_per_second": 1e300}, "rate_per_second"),
        ({"burst": 0}, "burst"),
        ({"burst": 1.5}, "burst"),
        ({"burst": True}, "burst"),
        ({"rate_per_second": None, "burst": 3}, "burst"),
        ({"parallelism": 0}, "parallelism"),
        ({"parallelism": "2"}, "parallelism"),
        ({"paused": None}, "paused"),
        ({"rate": 5}, "rate"),
        ({}, None),
    ],
)
async def test_bad_limits_are_422_naming_the_field(
    api: httpx.AsyncClient, body: dict[str, Any], field: str | None
) -> None:
    answer = await api.put(path_of("k"), json=body)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "validation_error"
    assert error["field"] == field
    if field is not None:
        assert error["message"].startswith(f"{field}: ")
    assert (await api.get("/destinations")).json()["destinations"] == []


# -- cluster-wide limits ---------------------------------------------------------------------------


async def test_parallelism_holds_across_three_instances(make_settings: Any) -> None:
    async with running(Counting(delay_seconds=0.2)) as receiver, instances(make_settings, 3) as client:
        put = await client.put(path_of(origin(receiver)), json={"parallelism": 2})
        timers = [await create(client, seconds=0, url=receiver.url) for _ in range(24)]
        assert await receiver.wait_for(lambda: len(receiver.counts()) == len(timers), WAIT * 2)
        shown = [await wait_for_status(client, t, "delivered", WAIT) for t in timers]
    assert put.json()["parallelism"] == 2
    assert 1 <= receiver.most_in_flight <= 2
    assert receiver.counts() == dict.fromkeys(timers, 1)  # none lost, none doubled
    assert {(s["status"], s["attempts"]) for s in shown} == {("delivered", 1)}


# A request goes out a little after its claim (the commit, the event loop): windows measured at the
# receiver allow this much of it on top of rate * window + burst.
SEND_JITTER_SECONDS = 0.5


async def test_the_rate_holds_across_three_instances(make_settings: Any) -> None:
    rate, burst, count = 20.0, 5, 60
    async with running(Receiver()) as receiver, instances(make_settings, 3) as client:
        put = await client.put(path_of(origin(receiver)), json={"rate_per_second": rate, "burst": burst})
        timers = [await create(client, seconds=0, url=receiver.url) for _ in range(count)]
        assert await receiver.wait_for(lambda: len(receiver.counts()) == count, WAIT * 2)
    assert put.json()["burst"] == burst
    arrivals = [d.arrived_at for d in receiver.deliveries]
    for window in (0.5, 1.0, 2.0):
        assert most_in_any_window(arrivals, window) <= rate * (window + SEND_JITTER_SECONDS) + burst
    assert receiver.counts() == dict.fromkeys(timers, 1)


async def test_a_waiting_timer_says_why_and_keeps_its_attempts(service: ServiceFactory) -> None:
    # The slow receiver holds its request 8 s: within the timeout, and long enough to look.
    settings = {"stats_interval_seconds": 0.1, "request_timeout_seconds": 10.0, "lease_seconds": 30.0}
    async with (
        running(Counting(delay_seconds=8.0)) as slow,
        running(Receiver()) as metered,
        service(**settings) as client,
    ):
        await client.put(path_of(origin(slow)), json={"parallelism": 1})
        await client.put(path_of(origin(metered)), json={"rate_per_second": 0.1})
        sending = await create(client, seconds=0, url=slow.url)
        behind = await create(client, seconds=0, url=slow.url)
        first = await create(client, seconds=0, url=metered.url)
        assert await slow.wait_for(lambda: len(slow.deliveries) == 1, WAIT)
        assert await metered.wait_for(lambda: len(metered.deliveries) == 1, WAIT)
        second = await create(client, seconds=0, url=metered.url)

        async def gauge_shows_them() -> bool:
            text = (await client.get("/metrics")).text
            return f'scheduler_flow_waiting_timers{{destination="{origin(metered)}"}} 1.0' in text

        assert await wait_for(gauge_shows_them)
        held = [(await client.get(f"/timer/{t}")).json() for t in (behind, second)]
        shown = (await client.get(path_of(origin(slow)))).json()
        metrics = (await client.get("/metrics")).text
    assert [d.timer_id for d in slow.deliveries] == [sending]
    assert [d.timer_id for d in metered.deliveries] == [first]
    assert [(h["status"], h["attempts"], h["held_reason"]) for h in held] == [
        ("pending", 0, "parallelism"),
        ("pending", 0, "rate_limited"),
    ]
    assert (shown["in_flight"], shown["waiting"]) == (1, 1)
    assert f'scheduler_flow_limited_sends_total{{destination="{origin(metered)}"}} 1.0' in metrics
    assert "scheduler_flow_deferrals_total{" in metrics


async def test_limited_timers_still_retry_expire_and_probe(service: ServiceFactory) -> None:
    """Under a limit: a failed attempt is retried, a timer held past its cutoff expires unsent, and
    a breaker opened by failures sends its probe and closes."""
    answers = iter([503, 503, 503])

    def respond(_timer_id: int, _seen: int) -> int:
        return next(answers, 200)

    async with running(Receiver(respond=respond)) as receiver:
        key = origin(receiver)
        async with service(breaker_failures=3, breaker_cooldown_seconds=0.3) as client:
            await client.put(path_of(key), json={"rate_per_second": 50, "parallelism": 1})
            retried = [
                await create(client, seconds=0, url=receiver.url, retry={"max_attempts": 20})
                for _ in range(3)
            ]
            delivered = [await wait_for_status(client, t, "delivered", WAIT * 2) for t in retried]
            await client.put(path_of(key), json={"rate_per_second": 0.05, "burst": 1})
            await create(client, seconds=0, url=receiver.url)  # spends the one token
            late = await create(client, seconds=0, url=receiver.url, max_lateness_seconds=0.5)
            expired = await wait_for_status(client, late, "expired", WAIT)
            shown = (await client.get(path_of(key))).json()
    assert [d["status"] for d in delivered] == ["delivered"] * 3
    assert sum(d["attempts"] for d in delivered) == 6  # three failures, each retried once
    assert expired["status"] == "expired"
    assert late not in receiver.counts()
    assert shown["breaker_state"] == "closed"


async def test_a_dead_instances_timers_in_flight_stop_counting_when_their_leases_lapse(
    service: ServiceFactory, db: Any
) -> None:
    """Parallelism is the count of firing timers flow control claimed: two claimed by an instance
    that died hold the destination (parallelism 2) until lease expiry returns them; then all go
    out, each once. No counter to repair."""
    async with running(Receiver()) as receiver, service() as client:
        await client.put(path_of(origin(receiver)), json={"parallelism": 2})
        await client.put(path_of(origin(receiver)), json={"paused": True})
        timers = [await create(client, seconds=0, url=receiver.url) for _ in range(4)]
        await db.execute(
            "UPDATE timers SET status = 'firing', flow_claimed = true, attempts = 1, lease_owner = 'dead',"
            " lease_expires_at = now() + interval '1 hour' WHERE id = ANY($1::bigint[])",
            timers[:2],
        )
        await client.put(path_of(origin(receiver)), json={"paused": False})
        # The leases hold for as long as the snapshots take, however slow the machine...
        held = (await client.get(f"/timer/{timers[2]}")).json()
        shown = (await client.get(path_of(origin(receiver)))).json()
        # ...then they lapse.
        await db.execute(
            "UPDATE timers SET lease_expires_at = now() - interval '1 second' WHERE id = ANY($1::bigint[])",
            timers[:2],
        )
        delivered = [await wait_for_status(client, t, "delivered", WAIT) for t in timers]
    assert (held["status"], held["attempts"], held["held_reason"]) == ("pending", 0, "parallelism")
    assert shown["in_flight"] == 2
    assert receiver.counts() == dict.fromkeys(timers, 1)
    assert [d["status"] for d in delivered] == ["delivered"] * 4
