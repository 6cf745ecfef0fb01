"""A destination's health in GET /destinations/{key} and the list (issue 16): real webhooks to a
real receiver on 127.0.0.1 (some answered 200, some 500), folded into the delivery rollups by the
service's own folder, and the figures checked against the attempt log; its timers in flight
counted while a slow receiver holds them."""

from __future__ import annotations

from typing import Any

import asyncpg

from task_scheduler.ui.repository import DURATION_EDGES_MS
from tests.integration.test_destinations import create, origin, path_of, wait_for
from tests.support.app import ServiceFactory
from tests.support.polling import WAIT, wait_for_status
from tests.support.receiver import Receiver, running

# The rollups folded often; the breaker never opens on the failures these tests make on purpose.
FAST_FOLD = {"rollup_interval_seconds": 0.2, "breaker_failures": 1000}


def bucket_of(duration_ms: float) -> tuple[float, float]:
    """The edges of the duration bucket that holds `duration_ms`."""
    low = 0.0
    for edge in DURATION_EDGES_MS:
        if duration_ms < edge:
            return low, edge
        low = edge
    return low, low


async def test_success_rate_and_response_times_of_real_deliveries(
    service: ServiceFactory, db: asyncpg.Connection
) -> None:
    failing: set[int] = set()
    receiver = Receiver(respond=lambda timer_id, _seen: 500 if timer_id in failing else 200)
    async with running(receiver), running(Receiver()) as other, service(**FAST_FOLD) as client:
        key = origin(receiver)
        ids = []
        for n in range(10):
            timer_id = await create(client, seconds=1, url=receiver.url, retry={"max_attempts": 1})
            ids.append(timer_id)
            if n % 10 in (2, 5, 8):
                failing.add(timer_id)
        elsewhere = await create(client, seconds=0, url=other.url, destination="billing")
        for timer_id in [*ids, elsewhere]:
            await wait_for_status(client, timer_id, "failed" if timer_id in failing else "delivered", WAIT)

        async def folded() -> bool:
            health = (await client.get(path_of(key))).json()["health"]
            return bool(health["attempts"] == 10)

        assert await wait_for(folded)
        shown = (await client.get(path_of(key))).json()
        given = (await client.get(path_of("billing"))).json()
        await client.put(path_of(key), json={"paused": False})  # a row: now in the list
        listed = (await client.get("/destinations")).json()["destinations"]

    health = shown["health"]
    assert {k: health[k] for k in ("window_seconds", "hosts", "attempts", "succeeded", "success_rate")} == {
        "window_seconds": 900,
        "hosts": [f"127.0.0.1:{receiver.port}"],
        "attempts": 10,
        "succeeded": 7,
        "success_rate": 0.7,
    }
    assert (shown["in_flight"], shown["waiting"]) == (0, 0)
    # the estimates fall in the duration bucket of the true quantiles of the attempt log
    durations = sorted(
        r["duration_ms"]
        for r in await db.fetch("SELECT duration_ms FROM timer_attempts WHERE timer_id = ANY($1)", ids)
    )
    assert len(durations) == 10
    for estimate, true in ((health["p50_ms"], durations[4]), (health["p99_ms"], durations[9])):
        low, high = bucket_of(true)
        assert low <= estimate <= high, (estimate, true, durations)
    # a key given on create may span hosts: no figures; its own timer was delivered all the same
    assert (given["health"], given["in_flight"]) == (None, 0)
    assert [d["key"] for d in listed] == [key]
    assert listed[0]["health"] == health
    assert listed[0]["in_flight"] == 0


async def test_in_flight_counts_the_destinations_timers_being_fired(service: ServiceFactory) -> None:
    # the replies take long enough that all four requests are surely in flight together, however
    # busy the machine: the check waits for that state instead of expecting it at one instant
    slow = Receiver(delay_seconds=5.0)
    async with running(slow), service(**FAST_FOLD, request_timeout_seconds=7.0, lease_seconds=9.0) as client:
        key = origin(slow)
        ids = [await create(client, seconds=0, url=slow.url) for _ in range(3)]
        aside = await create(client, seconds=0, url=slow.url, destination="aside")

        async def all_in_flight() -> bool:
            shown: dict[str, Any] = (await client.get(path_of(key))).json()
            apart: dict[str, Any] = (await client.get(path_of("aside"))).json()
            return bool(shown["in_flight"] == 3 and apart["in_flight"] == 1)

        assert await wait_for(all_in_flight, within=4.0)
        for timer_id in [*ids, aside]:
            await wait_for_status(client, timer_id, "delivered", WAIT)
        after = (await client.get(path_of(key))).json()
    assert after["in_flight"] == 0
