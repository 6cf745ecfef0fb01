"""End to end with real service processes, a real receiver and real signals."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable

import aiohttp
import asyncpg
import pytest

from task_scheduler.db import asyncpg_dsn
from tests.support.databases import statuses
from tests.support.processes import ServiceProcess
from tests.support.receiver import Receiver

pytestmark = pytest.mark.acceptance


async def create(session: aiohttp.ClientSession, proc: ServiceProcess, **body: object) -> int:
    async with session.post(f"{proc.base_url}/timer", json=body) as response:
        assert response.status == 201, await response.text()
        timer_id: int = (await response.json())["timer_id"]
        return timer_id


async def test_create_fire_get(spawn: Callable[..., ServiceProcess], receiver: Receiver) -> None:
    proc = spawn()
    await proc.wait_ready()
    async with aiohttp.ClientSession() as session:
        timer_id = await create(session, proc, seconds=1, url=receiver.url)
        assert await receiver.wait_for(lambda: receiver.counts()[timer_id] >= 1, within=15)
        for _ in range(100):
            async with session.get(f"{proc.base_url}/timer/{timer_id}") as response:
                view = await response.json()
            if view["status"] == "delivered":
                break
            await asyncio.sleep(0.05)
    assert view["status"] == "delivered"
    assert view["time_left"] == 0
    await asyncio.sleep(0.5)
    assert receiver.counts() == {timer_id: 1}
    assert proc.terminate() == 0


async def test_timers_due_while_down_fire_once_on_restart(
    spawn: Callable[..., ServiceProcess], receiver: Receiver, database_url: str
) -> None:
    first = spawn()
    await first.wait_ready()
    async with aiohttp.ClientSession() as session:
        ids = [await create(session, first, seconds=2, url=receiver.url) for _ in range(20)]
    assert first.terminate() == 0  # graceful: exit code 0
    await asyncio.sleep(3)  # every timer comes due while no instance runs
    assert receiver.deliveries == []
    assert await statuses(database_url) == {"pending": 20}

    second = spawn()
    started = time.monotonic()
    await second.wait_ready()
    assert await receiver.wait_for(lambda: len(receiver.counts()) == 20, within=15)
    recovered_in = time.monotonic() - started
    await asyncio.sleep(0.5)
    assert receiver.counts() == dict.fromkeys(ids, 1)
    print(f"restart: 20 overdue timers delivered {recovered_in:.2f}s after start")


async def test_three_instances_two_thousand_due_in_one_second(
    spawn: Callable[..., ServiceProcess], receiver: Receiver, database_url: str
) -> None:
    # Leases long enough that a heartbeat delayed by a loaded machine does not look like a crash,
    # and a request timeout a receiver starved of CPU can meet (at 1 s, 2,000 requests at once on
    # a machine loaded to 6 per core used up all 5 attempts of a third of the timers).
    procs = [
        spawn(
            SCHEDULER_DB_POOL_SIZE="5", SCHEDULER_LEASE_SECONDS="15", SCHEDULER_REQUEST_TIMEOUT_SECONDS="10"
        )
        for _ in range(3)
    ]
    for proc in procs:
        await proc.wait_ready()
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        rows = await conn.fetch(
            "INSERT INTO timers (url, due_at) SELECT $1, date_trunc('second', now()) + interval '3 s'"
            " FROM generate_series(1, 2000) RETURNING id, due_at",
            receiver.url,
        )
    finally:
        await conn.close()
    due = {r["id"]: r["due_at"].timestamp() for r in rows}
    assert await receiver.wait_for(lambda: len(receiver.counts()) == 2000, within=60)
    await asyncio.sleep(1.0)  # anything doubled would arrive by now
    counts = receiver.counts()
    lost = [tid for tid in due if counts[tid] == 0]
    doubled = [tid for tid, n in counts.items() if n > 1]
    late_ms = sorted((d.arrived_at - due[d.timer_id]) * 1000 for d in receiver.deliveries)
    print(
        f"3 instances, 2000 timers due at once: lost={len(lost)} duplicates={len(doubled)} "
        f"lateness p50={statistics.median(late_ms):.1f}ms max={late_ms[-1]:.1f}ms"
    )
    assert lost == []
    assert doubled == []
    assert min(late_ms) >= 0, "a timer fired before its due time"
    assert await statuses(database_url) == {"delivered": 2000}


async def test_kill_9_while_holding_leases(
    spawn: Callable[..., ServiceProcess], receiver: Receiver, database_url: str
) -> None:
    # The victim claims timers 4 s ahead, so it holds their leases when it dies.
    victim = spawn(SCHEDULER_LOOKAHEAD_SECONDS="5", SCHEDULER_POLL_INTERVAL_SECONDS="0.1")
    await victim.wait_ready()
    async with aiohttp.ClientSession() as session:
        ids = [await create(session, victim, seconds=3, url=receiver.url) for _ in range(50)]
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        for _ in range(100):
            firing = await conn.fetchval("SELECT count(*) FROM timers WHERE status = 'firing'")
            if firing == 50:
                break
            await asyncio.sleep(0.05)
        assert firing == 50, "the victim should hold every lease before it is killed"
        victim.kill()
        survivor = spawn()
        await survivor.wait_ready()
        assert await receiver.wait_for(lambda: len(receiver.counts()) == 50, within=30)
        await asyncio.sleep(0.5)
        lease_ends = await conn.fetch("SELECT id, due_at FROM timers")
    finally:
        await conn.close()
    counts = receiver.counts()
    print(
        f"kill -9: lost={sum(1 for t in ids if counts[t] == 0)} duplicates={sum(n > 1 for n in counts.values())}"
    )
    assert counts == dict.fromkeys(ids, 1)
    assert len(lease_ends) == 50
    assert await statuses(database_url) == {"delivered": 50}
