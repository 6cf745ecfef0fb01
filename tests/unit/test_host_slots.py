"""Per-host delivery slots: a full host's waiting timers are counted by how long they waited."""

from __future__ import annotations

import asyncio
import contextlib

from task_scheduler.delivery.host_slots import HostSlots


async def test_waiting_timers_are_counted_by_age_and_per_host() -> None:
    slots = HostSlots(per_host=2)
    release = asyncio.Event()
    entered: list[str] = []

    async def send(url: str) -> None:
        async with slots.slot(url):
            entered.append(url)
            await release.wait()

    old = [asyncio.create_task(send("http://slow.example/x")) for _ in range(5)]
    await asyncio.sleep(1.0)
    young = [asyncio.create_task(send("http://slow.example/y")) for _ in range(2)]
    other = asyncio.create_task(send("http://fast.example/"))  # another host: a free slot at once
    await asyncio.sleep(0.05)
    assert entered.count("http://fast.example/") == 1
    # (the old ones have waited 1 s, the young ones 50 ms plus however late this check runs)
    assert slots.waiting_longer_than(0.5) == 3  # 5 to the slow host, 2 of them sending
    assert slots.waiting_longer_than(0.0) == 5  # the 2 that came later wait too
    young[0].cancel()  # leaving the queue early keeps the count right
    with contextlib.suppress(asyncio.CancelledError):
        await young[0]
    assert slots.waiting_longer_than(0.0) == 4
    release.set()
    await asyncio.gather(*old, young[1], other)
    assert slots.waiting_longer_than(0.0) == 0
    assert len(entered) == 7
    assert slots.hosts_in_use == 0


async def test_a_host_in_use_keeps_its_limit_however_many_other_hosts_come_and_go() -> None:
    """Regression: past 10,000 hosts, semaphores with some (not all) slots taken were evicted,
    and the host then got more than `per_host` requests at once."""
    slots = HostSlots(per_host=2)
    release = asyncio.Event()
    inside = 0
    most_inside = 0

    async def send(url: str) -> None:
        nonlocal inside, most_inside
        async with slots.slot(url):
            inside += 1
            most_inside = max(most_inside, inside)
            await release.wait()
            inside -= 1

    first = asyncio.create_task(send("http://busy.example/"))
    await asyncio.sleep(0)
    assert inside == 1  # one of its two slots taken: in use, but not at its limit
    for number in range(10_050):
        async with slots.slot(f"http://host{number}.example/"):
            pass
    assert slots.hosts_in_use == 1
    more = [asyncio.create_task(send("http://busy.example/")) for _ in range(3)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert inside == 2
    release.set()
    await asyncio.gather(first, *more)
    assert most_inside == 2
    assert slots.hosts_in_use == 0
