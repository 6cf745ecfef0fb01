"""A destination with a backlog waiting for its host's slots does not hold up other
destinations' timers due now: the claim passes it by while two rounds of its slots' worth wait
on this instance (delivery/host_slots.py `crowded`). Before, the claim took timers earliest due
first, so a backlog released at once (a breaker that closed after an outage) was claimed whole
before any timer due after it."""

from __future__ import annotations

import asyncio

from tests.support.app import ServiceFactory
from tests.support.polling import WAIT, wait_for_status
from tests.support.receiver import Receiver, running


async def test_a_backlog_waiting_for_its_host_does_not_hold_up_other_destinations(
    service: ServiceFactory,
) -> None:
    slow = Receiver(delay_seconds=0.3)  # 127.0.0.1: 2 requests at once, 0.3 s each
    other = Receiver(host="127.0.0.2")
    async with (
        running(slow),
        running(other),
        service(max_in_flight=10, max_concurrent_per_host=2, claim_batch_size=10) as client,
    ):
        made = await client.post("/timers/batch", json={"timers": [{"seconds": 0, "url": slow.url}] * 40})
        assert made.status_code == 201, made.text
        backlog = [t["timer_id"] for t in made.json()["timers"]]
        assert await slow.wait_for(lambda: len(slow.deliveries) >= 1, WAIT)
        # due after the whole backlog: claimed earliest due first, they would wait for all 40
        # (about 6 s of the slow host's slots)
        made = await client.post("/timers/batch", json={"timers": [{"seconds": 0, "url": other.url}] * 5})
        assert made.status_code == 201, made.text
        prompt = [t["timer_id"] for t in made.json()["timers"]]
        for timer_id in prompt:
            await wait_for_status(client, timer_id, "delivered", WAIT)
        slow_so_far = len(slow.deliveries)
        for timer_id in backlog:
            await wait_for_status(client, timer_id, "delivered", 60.0)
        await asyncio.sleep(0.3)  # a second request of any timer would have come by now
    # the other destination's timers went out while most of the backlog still waited
    assert slow_so_far <= 25, slow_so_far
    assert other.counts() == dict.fromkeys(prompt, 1)
    assert slow.counts() == dict.fromkeys(backlog, 1)
