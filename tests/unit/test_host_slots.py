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


async def test_destinations_with_timers_waiting_for_their_host_are_counted() -> None:
    """`crowded` names the destinations with at least so many timers waiting for a full host
    (the claim passes them by); timers sending, and those that left the queue, do not count."""
    slots = HostSlots(per_host=2)
    release = asyncio.Event()

    async def send(url: str, destination: str | None) -> None:
        async with slots.slot(url, destination):
            await release.wait()

    backlog = [asyncio.create_task(send("http://a.example/x", "http://a.example:80")) for _ in range(6)]
    given = [asyncio.create_task(send("http://a.example/y", "payments")) for _ in range(2)]
    unkeyed = asyncio.create_task(send("http://a.example/z", None))
    elsewhere = asyncio.create_task(send("http://b.example/", "http://b.example:80"))
    await asyncio.sleep(0.05)
    # 2 of the backlog send; 4 of it, both "payments" and the unkeyed one wait for a.example
    assert slots.crowded(4) == ["http://a.example:80"]
    assert slots.crowded(2) == ["http://a.example:80", "payments"]
    assert slots.crowded(1) == ["http://a.example:80", "payments"]
    given[0].cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await given[0]
    assert slots.crowded(1) == ["http://a.example:80", "payments"]
    assert slots.crowded(2) == ["http://a.example:80"]
    release.set()
    await asyncio.gather(*backlog, given[1], unkeyed, elsewhere)
    assert slots.crowded(1) == []
