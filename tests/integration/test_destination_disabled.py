"""A destination failing for longer than SCHEDULER_BREAKER_DISABLE_AFTER_SECONDS is disabled when
its next probe fails (issue 16's optional rule): paused by the service, no more probes, its timers
held with their attempts untouched, `destination.disabled` sent to the tenant's webhooks; unpausing
it lets the probes resume, and a probe that succeeds delivers everything held, once."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from tests.integration.test_destinations import Switchable, breaker_of, create, origin, path_of, wait_for
from tests.support.app import ServiceFactory
from tests.support.polling import WAIT, wait_for_status
from tests.support.receiver import Receiver, running


def at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


async def test_a_destination_failing_too_long_is_disabled_until_unpaused(
    service: ServiceFactory, receiver: Receiver
) -> None:
    events_url = f"http://127.0.0.1:{receiver.port}/events"
    async with (
        running(Switchable(status=503)) as failing,
        service(
            breaker_failures=2, breaker_cooldown_seconds=0.3, breaker_disable_after_seconds=1.0
        ) as client,
    ):
        key = origin(failing)
        subscribed = await client.post(
            "/tenant/webhooks",
            json={"url": events_url, "events": ["destination.opened", "destination.disabled"]},
        )
        assert subscribed.status_code == 201, subscribed.text
        first = [
            await create(client, seconds=0, url=failing.url, retry={"max_attempts": 1}) for _ in range(2)
        ]
        for timer_id in first:
            await wait_for_status(client, timer_id, "failed", WAIT)
        held = {
            await create(client, seconds=0, url=failing.url, retry={"max_attempts": 50}) for _ in range(4)
        }

        async def disabled() -> bool:
            return (await breaker_of(client, key))["disabled_at"] is not None

        assert await wait_for(disabled)
        shown = await breaker_of(client, key)
        probes = failing.requests_for(held)
        await asyncio.sleep(1.5)  # five cool-downs: a destination still probing would be asked again
        probes_later = failing.requests_for(held)
        views = [(await client.get(f"/timer/{t}")).json() for t in sorted(held)]
        requests = {t: failing.requests_for({t}) for t in sorted(held)}
        assert await receiver.wait_for(
            lambda: any(
                d.body.get("type") == "destination.disabled"
                for d in receiver.deliveries
                if d.path == "/events"
            ),
            WAIT,
        )

        failing.status = 200
        unpaused = (await client.put(path_of(key), json={"paused": False})).json()
        delivered = [await wait_for_status(client, t, "delivered", WAIT) for t in sorted(held)]
        closed = await breaker_of(client, key)

    assert (shown["paused"], shown["breaker_state"]) == (True, "open")
    assert shown["failing_since"] is not None
    assert at(shown["failing_since"]) <= at(shown["disabled_at"])
    assert probes >= 1  # it was disabled by a failed probe, after failing for 1 s
    assert probes_later == probes  # none while disabled
    assert {(v["status"], v["held_reason"]) for v in views} == {("pending", "destination_disabled")}
    # each held timer's attempts are its requests: none spent without one
    assert {v["timer_id"]: v["attempts"] for v in views} == requests
    events: list[dict[str, Any]] = [d.body for d in receiver.deliveries if d.path == "/events"]
    assert [e["type"] for e in events] == ["destination.opened", "destination.disabled"]
    gone = events[1]
    assert (gone["destination"], gone["paused"], gone["breaker_state"]) == (key, True, "open")
    assert gone["failing_since"] is not None
    # unpaused: the disablement ends, the failing time starts anew; the breaker decides from here
    assert (unpaused["paused"], unpaused["disabled_at"], unpaused["breaker_state"]) == (False, None, "open")
    assert at(unpaused["failing_since"]) > at(shown["disabled_at"])
    assert all(d["status"] == "delivered" for d in delivered)
    assert failing.counts() == dict.fromkeys(held, 1)
    assert (closed["breaker_state"], closed["failing_since"], closed["disabled_at"]) == ("closed", None, None)
    # its history, newest first: the failed probes in between are not state changes
    # (each failed probe counts one failure more)
    assert [(e["event"], e["consecutive_failures"]) for e in shown["history"]] == [
        ("disabled", 2 + probes),
        ("opened", 2),
    ]
    assert [e["event"] for e in closed["history"]] == ["closed", "unpaused", "disabled", "opened"]
    assert closed["history"][0]["consecutive_failures"] == 0


async def test_by_default_a_failing_destination_is_never_disabled(service: ServiceFactory) -> None:
    async with (
        running(Switchable(status=503)) as failing,
        service(breaker_failures=2, breaker_cooldown_seconds=0.2) as client,
    ):
        key = origin(failing)
        first = [
            await create(client, seconds=0, url=failing.url, retry={"max_attempts": 1}) for _ in range(2)
        ]
        for timer_id in first:
            await wait_for_status(client, timer_id, "failed", WAIT)
        held = {await create(client, seconds=0, url=failing.url, retry={"max_attempts": 50})}
        # probes keep going out, one per cool-down, for as long as it fails
        assert await failing.wait_for(lambda: failing.requests_for(held) >= 4, WAIT)
        shown = await breaker_of(client, key)
    assert (shown["paused"], shown["disabled_at"]) == (False, None)
    assert shown["breaker_state"] in ("open", "half_open")
    assert shown["failing_since"] is not None
