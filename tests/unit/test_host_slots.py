"""Per-host delivery slots: a full host's waiting timers are counted by how long they waited."""

from __future__ import annotations

import asyncio
import contextlib
import types

import pytest

from task_scheduler.delivery import host_slots
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


async def test_a_destination_let_go_starts_slowly_and_its_waiters_are_counted() -> None:
    """Slow start: right after `ramp_up`, a tenth of `per_host` in flight for that destination;
    its waiting timers count as waiting (the claim passes it by, they do not charge max_in_flight
    after a second) without taking host slots other destinations on the host need."""
    slots = HostSlots(per_host=20, slow_start_seconds=30)
    slots.ramp_up("d")
    assert slots.ramp_limit("d") == 2
    assert slots.ramp_limit("other") is None
    release = asyncio.Event()
    inside: list[str] = []

    async def send(destination: str) -> None:
        async with slots.slot("http://a.example/", destination):
            inside.append(destination)
            await release.wait()
            inside.remove(destination)

    ramped = [asyncio.create_task(send("d")) for _ in range(10)]
    other = [asyncio.create_task(send("other")) for _ in range(5)]
    await asyncio.sleep(0.05)
    assert inside.count("d") == 2
    assert inside.count("other") == 5  # the same host, another destination: not slowed
    assert slots.crowded(8) == ["d"]
    assert slots.waiting_longer_than(0.0) == 8
    ramped[-1].cancel()  # a waiter cancelled (shutdown) leaves the queue and the count
    with contextlib.suppress(asyncio.CancelledError):
        await ramped[-1]
    assert slots.waiting_longer_than(0.0) == 7
    assert slots.crowded(8) == []
    release.set()
    await asyncio.gather(*ramped[:-1], *other)
    assert inside == []
    assert slots.waiting_longer_than(0.0) == 0
    assert slots.hosts_in_use == 0


async def test_the_slow_start_rises_evenly_and_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(host_slots, "time", types.SimpleNamespace(monotonic=lambda: now[0]))
    slots = HostSlots(per_host=100, slow_start_seconds=30)
    slots.ramp_up("d")
    limits = []
    for elapsed in (0, 10, 20, 29.9, 30):
        now[0] = 1000.0 + elapsed
        limits.append(slots.ramp_limit("d"))
    assert limits == [10, 40, 70, 99, None]
    now[0] = 1040.0
    slots.ramp_up("d")  # held and let go again: starts over
    assert slots.ramp_limit("d") == 10
    assert HostSlots(per_host=100).ramp_limit("d") is None
    off = HostSlots(per_host=100, slow_start_seconds=0)
    off.ramp_up("d")
    assert off.ramp_limit("d") is None


async def test_waiters_go_as_the_slow_start_rises_and_all_once_it_is_over() -> None:
    slots = HostSlots(per_host=20, slow_start_seconds=0.3)
    slots.ramp_up("d")
    gate = asyncio.Event()
    inside = 0
    most = 0

    async def send() -> None:
        nonlocal inside, most
        async with slots.slot("http://a.example/", "d"):
            inside += 1
            most = max(most, inside)
            await gate.wait()
            await asyncio.sleep(0.01)
            inside -= 1

    tasks = [asyncio.create_task(send()) for _ in range(12)]
    await asyncio.sleep(0.05)
    assert inside == 2
    await asyncio.sleep(0.3)  # the slow start is over: the first release lets every waiter in
    gate.set()
    await asyncio.gather(*tasks)
    assert most > 2
    assert slots.ramp_limit("d") is None
    assert slots.crowded(1) == []


async def test_a_waiter_cancelled_as_it_is_given_room_hands_the_room_on() -> None:
    """Shutdown at the instant a timer's slow-start room comes free: the waiter it was handed to
    is cancelled before it runs. The room must go back, or the destination stays one short for
    good (with a limit of 1, stuck)."""
    slots = HostSlots(per_host=5, slow_start_seconds=1000)
    slots.ramp_up("d")
    assert slots.ramp_limit("d") == 1
    entered: list[str] = []

    async def send(name: str, gate: asyncio.Event) -> None:
        async with slots.slot("http://a.example/", "d"):
            entered.append(name)
            await gate.wait()

    first_gate = asyncio.Event()
    first = asyncio.create_task(send("first", first_gate))
    await asyncio.sleep(0)
    second = asyncio.create_task(send("second", asyncio.Event()))
    await asyncio.sleep(0)
    first_gate.set()
    for _ in range(10):
        if first.done():
            break
        await asyncio.sleep(0)
    assert entered == ["first"]  # the room is the second's, but it has not run yet
    second.cancel()
    await asyncio.gather(second, return_exceptions=True)
    third_gate = asyncio.Event()
    third = asyncio.create_task(send("third", third_gate))
    await asyncio.sleep(0.01)
    assert entered == ["first", "third"]
    third_gate.set()
    await third
