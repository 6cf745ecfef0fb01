"""Per-host delivery slots: a full host's waiting timers are counted by how long they waited."""

from __future__ import annotations

import asyncio
import contextlib

from task_scheduler.delivery.dispatcher import HostSlots


async def test_waiting_timers_are_counted_by_age_and_per_host() -> None:
    slots = HostSlots(per_host=2)
    release = asyncio.Event()
    entered: list[str] = []

    async def send(url: str) -> None:
        async with slots.slot(url):
            entered.append(url)
            await release.wait()

    old = [asyncio.create_task(send("http://slow.example/x")) for _ in range(5)]
    await asyncio.sleep(0.2)
    young = [asyncio.create_task(send("http://slow.example/y")) for _ in range(2)]
    other = asyncio.create_task(send("http://fast.example/"))  # another host: a free slot at once
    await asyncio.sleep(0.05)
    assert entered.count("http://fast.example/") == 1
    assert slots.waiting_longer_than(0.1) == 3  # 5 to the slow host, 2 of them sending
    assert slots.waiting_longer_than(0.0) == 5  # the 2 that came later wait too
    young[0].cancel()  # leaving the queue early keeps the count right
    with contextlib.suppress(asyncio.CancelledError):
        await young[0]
    assert slots.waiting_longer_than(0.0) == 4
    release.set()
    await asyncio.gather(*old, young[1], other)
    assert slots.waiting_longer_than(0.0) == 0
    assert len(entered) == 7
