"""HostSlots under random interleavings (hypothesis): timers of a few destinations on a few hosts
enter, finish and are cancelled (shutdown) while one destination starts slowly and the clock
moves, and waiters are cancelled at the instant they are given room. Invariants after every
step: no host has more than `per_host` requests in flight, the slow-starting destination never
more than its limit at that moment, the waiting counts match the timers that wait; and at the end
every timer has gone through (no waiter is left stranded), a new one enters at once, and the
bookkeeping is empty."""

from __future__ import annotations

import asyncio
import types
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from task_scheduler.delivery import host_slots
from task_scheduler.delivery.host_slots import HostSlots

PER_HOST = 5
SLOW_START = 10.0
HOSTS = ["http://a.example/", "http://b.example/"]
DESTINATIONS = ["d0", "d1", "d2"]  # d0 starts slowly; d1 and d2 share a.example with it

operations = st.lists(
    st.one_of(
        st.tuples(st.just("start"), st.integers(0, 2), st.integers(0, 1)),
        st.tuples(st.just("finish"), st.integers(0, 50)),
        st.tuples(st.just("cancel"), st.integers(0, 50)),
        st.tuples(st.just("handoff"), st.integers(0, 50)),
        st.tuples(st.just("tick"), st.floats(0.0, 4.0)),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(steps=operations)
def test_slots_hold_their_limits_under_any_interleaving(steps: list[tuple[object, ...]]) -> None:
    clock = [100.0]
    patched = types.SimpleNamespace(monotonic=lambda: clock[0])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(host_slots, "time", patched)
        asyncio.run(_play(steps, clock))


async def _play(steps: list[tuple[object, ...]], clock: list[float]) -> None:
    slots = HostSlots(per_host=PER_HOST, slow_start_seconds=SLOW_START)
    slots.ramp_up("d0")
    inside: dict[int, tuple[str, str]] = {}  # timer -> (host, destination) while sending
    gates: dict[int, asyncio.Event] = {}
    tasks: dict[int, asyncio.Task[None]] = {}
    where: dict[int, tuple[str, str]] = {}

    async def send(number: int, url: str, destination: str) -> None:
        async with slots.slot(url, destination):
            inside[number] = (url, destination)
            try:
                await gates[number].wait()
            finally:
                del inside[number]

    async def settle() -> None:
        for _ in range(5):
            await asyncio.sleep(0)

    def check() -> None:
        per_host = Counter(url for url, _ in inside.values())
        assert all(n <= PER_HOST for n in per_host.values()), per_host
        limit = slots.ramp_limit("d0")
        if limit is not None:
            assert sum(1 for _, d in inside.values() if d == "d0") <= limit
        waiting = [n for n, t in tasks.items() if not t.done() and n not in inside]
        assert slots.waiting_longer_than(-1.0) == len(waiting)
        queued = Counter(where[n][1] for n in waiting)
        assert slots.crowded(1) == sorted(queued)

    for step in steps:
        if step[0] == "start":
            number = len(tasks)
            url, destination = HOSTS[int(step[2])], DESTINATIONS[int(step[1])]  # type: ignore[call-overload]
            gates[number] = asyncio.Event()
            where[number] = (url, destination)
            tasks[number] = asyncio.create_task(send(number, url, destination))
        elif step[0] == "finish" and inside:
            gates[sorted(inside)[int(step[1]) % len(inside)]].set()  # type: ignore[call-overload]
        elif step[0] == "cancel":
            alive = [n for n, t in tasks.items() if not t.done()]
            if alive:
                tasks[alive[int(step[1]) % len(alive)]].cancel()  # type: ignore[call-overload]
        elif step[0] == "handoff" and inside:
            # One ends, and every waiter is cancelled before it runs: the one just given the room
            # (shutdown at that instant) must hand it on, not keep it.
            leaving = sorted(inside)[int(step[1]) % len(inside)]  # type: ignore[call-overload]
            gates[leaving].set()
            for _ in range(10):
                if tasks[leaving].done():
                    break
                await asyncio.sleep(0)
            for number, task in tasks.items():
                if not task.done() and number not in inside:
                    task.cancel()
        elif step[0] == "tick":
            clock[0] += float(step[1])  # type: ignore[arg-type]
        await settle()
        check()
    for gate in gates.values():
        gate.set()
    await asyncio.wait_for(asyncio.gather(*tasks.values(), return_exceptions=True), timeout=5)
    # Nothing in flight: a new timer of the slow-starting destination goes in at once (no room
    # was kept by a timer that left, however it left).
    gates[-1] = asyncio.Event()
    where[-1] = (HOSTS[0], "d0")
    tasks[-1] = asyncio.create_task(send(-1, HOSTS[0], "d0"))
    await settle()
    assert -1 in inside
    gates[-1].set()
    clock[0] += SLOW_START
    await asyncio.wait_for(asyncio.gather(*tasks.values(), return_exceptions=True), timeout=5)
    assert inside == {}
    assert slots.waiting_longer_than(-1.0) == 0
    assert slots.crowded(1) == []
    assert slots.hosts_in_use == 0
