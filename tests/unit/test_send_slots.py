"""The instance's send slots: at most `limit` in flight, a freed slot to the waiting host with the
fewest requests in flight, first come first served within a host, nothing lost to cancellation."""

from __future__ import annotations

import asyncio
import contextlib
import os

from hypothesis import given, settings
from hypothesis import strategies as st

from task_scheduler.delivery.host_slots import SendSlots


class Gate:
    """Requests that hold their slot until let go, recording the order they got one."""

    def __init__(self, slots: SendSlots) -> None:
        self.slots = slots
        self.order: list[str] = []
        self.most = 0
        self._go: dict[str, asyncio.Event] = {}

    def send(self, host: str, name: str) -> asyncio.Task[None]:
        self._go[name] = asyncio.Event()

        async def run() -> None:
            async with self.slots.slot(host):
                self.order.append(name)
                self.most = max(self.most, self.slots.in_flight)
                await self._go[name].wait()

        return asyncio.create_task(run())

    def finish(self, name: str) -> None:
        self._go[name].set()


async def settle() -> None:
    """Let every ready task and callback run: a slot is let go two loop turns after its request,
    and a hand-off can start the next request, which may end at once and hand on again."""
    for _ in range(100):
        await asyncio.sleep(0)


async def test_a_freed_slot_goes_to_the_waiting_host_with_fewest_in_flight() -> None:
    gate = Gate(SendSlots(4))
    tasks = [gate.send("slow-a", f"a{n}") for n in range(1, 4)] + [
        gate.send("slow-b", f"b{n}") for n in range(1, 4)
    ]
    await settle()
    assert sorted(gate.order) == ["a1", "a2", "a3", "b1"]  # four in flight; a FIFO would go on the same way
    tasks += [gate.send("fast", f"f{n}") for n in range(1, 4)]  # queued after b2 and b3
    await settle()
    gate.finish("a1")
    await settle()
    assert gate.order[-1] == "f1"  # not b2, which came first: fast had none in flight, b one
    gate.finish("f1")
    await settle()
    assert gate.order[-1] == "f2"  # fast keeps the slot it frees: b has one in flight, fast none
    gate.finish("f2")
    gate.finish("a2")
    await settle()
    assert gate.order[-2:] == ["f3", "b2"]  # f2 freed its slot first: to fast (none in flight), then b
    for name in ("a3", "b1", "b2", "b3", "f3"):
        gate.finish(name)
    await asyncio.gather(*tasks)
    await settle()
    assert gate.most == 4
    assert gate.slots.in_flight == 0


async def test_within_a_host_first_come_first_served() -> None:
    gate = Gate(SendSlots(1))
    tasks = [gate.send("h", f"h{n}") for n in range(5)]
    await settle()
    for n in range(5):
        gate.finish(f"h{n}")
        await settle()
    await asyncio.gather(*tasks)
    assert gate.order == [f"h{n}" for n in range(5)]


async def test_a_waiter_cancelled_in_the_queue_or_as_it_is_handed_the_slot_loses_nothing() -> None:
    slots = SendSlots(1)
    gate = Gate(slots)
    await slots._acquire("a")  # a request holding the only slot
    queued = gate.send("b", "queued")
    handed = gate.send("c", "handed")
    await settle()
    queued.cancel()  # while waiting
    with contextlib.suppress(asyncio.CancelledError):
        await queued
    slots._release("a")  # hands the slot to "handed", whose task has not run since
    assert slots.in_flight_to("c") == 1
    handed.cancel()  # cancelled at the moment of hand-off: the slot must be passed on
    with contextlib.suppress(asyncio.CancelledError):
        await handed
    after = gate.send("d", "after")
    await settle()
    assert gate.order[-1] == "after"
    gate.finish("after")
    await after
    await settle()  # a slot is let go two turns of the loop after its context (SendSlots.slot)
    assert gate.slots.in_flight == 0
    assert gate.slots.in_flight_to("c") == 0


EXAMPLES = int(os.environ.get("SEND_SLOT_EXAMPLES", "60"))


@settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=not os.environ.get("FUZZ_RANDOM"))
@given(
    limit=st.integers(1, 4),
    steps=st.lists(
        st.tuples(st.sampled_from(["send", "finish", "cancel"]), st.sampled_from("abc"), st.integers(0, 30)),
        max_size=40,
    ),
)
def test_any_interleaving_keeps_the_limit_and_leaves_no_waiter_behind_a_free_slot(
    limit: int, steps: list[tuple[str, str, int]]
) -> None:
    async def run() -> None:
        slots = SendSlots(limit)
        gate = Gate(slots)
        tasks: dict[str, asyncio.Task[None]] = {}
        for number, (action, host, pick) in enumerate(steps):
            if action == "send":
                tasks[f"{host}{number}"] = gate.send(host, f"{host}{number}")
            elif tasks:
                name = sorted(tasks)[pick % len(tasks)]
                if action == "finish":
                    gate.finish(name)
                else:
                    tasks[name].cancel()
            await settle()
            assert slots.in_flight <= limit
            running = [name for name, task in tasks.items() if not task.done() and name in gate.order]
            waiting = [name for name, task in tasks.items() if not task.done() and name not in gate.order]
            assert slots.in_flight == len(running)
            # every waiting host stands in exactly the tier of its requests in flight
            tiers = slots._tiers
            assert sum(len(tier) for tier in tiers.values()) == len(slots._waiting)
            for host in slots._waiting:
                assert host in tiers[slots.in_flight_to(host)]
            if waiting:  # work-conserving: nobody waits while a slot is free
                assert slots.in_flight == limit
        for name in tasks:
            gate.finish(name)
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        await settle()
        assert slots.in_flight == 0
        for host in "abc":
            assert slots.in_flight_to(host) == 0

    asyncio.run(run())
