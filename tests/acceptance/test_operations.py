"""Operating the service as real processes: graceful shutdown and a database restart."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.support.databases import statuses
from tests.support.pg import OwnPostgres
from tests.support.processes import FAST, ServiceProcess
from tests.support.receiver import Receiver

pytestmark = pytest.mark.acceptance


async def test_sigterm_finishes_in_flight_and_hands_back_the_rest(
    spawn: Callable[..., ServiceProcess], receiver: Receiver, database_url: str
) -> None:
    receiver.delay_seconds = 1.5  # requests stay in flight for a while
    leaving = spawn(
        SCHEDULER_LOOKAHEAD_SECONDS="5", SCHEDULER_LEASE_SECONDS="60", SCHEDULER_REQUEST_TIMEOUT_SECONDS="5"
    )
    await leaving.wait_ready()
    async with aiohttp.ClientSession() as session:
        now = await session.post(
            f"{leaving.base_url}/timers/batch", json={"timers": [{"seconds": 0, "url": receiver.url}] * 5}
        )
        later = await session.post(
            f"{leaving.base_url}/timers/batch", json={"timers": [{"seconds": 3, "url": receiver.url}] * 20}
        )
        assert now.status == later.status == 201
    # wait until the five are in flight and the twenty are claimed (held in memory, leased)
    assert await receiver.wait_for(lambda: len(receiver.deliveries) >= 5, 15.0)
    for _ in range(100):
        if (await statuses(database_url)).get("firing", 0) == 25:
            break
        await asyncio.sleep(0.05)
    assert (await statuses(database_url)).get("firing") == 25

    stopped_at = time.monotonic()
    code = await asyncio.to_thread(leaving.terminate, 30.0)
    assert code == 0
    after_stop = await statuses(database_url)
    # the five in flight finished; the twenty were handed back at once, not left to their 60 s lease
    assert after_stop == {"delivered": 5, "pending": 20}

    taker = spawn(SCHEDULER_LEASE_SECONDS="60", SCHEDULER_REQUEST_TIMEOUT_SECONDS="5")
    await taker.wait_ready()
    assert await receiver.wait_for(lambda: len(receiver.counts()) == 25, 30.0)
    assert time.monotonic() - stopped_at < 45  # well before the 60 s leases would have lapsed
    assert all(n == 1 for n in receiver.counts().values())
    for _ in range(200):  # the receiver answers 1.5 s after it records a request
        if await statuses(database_url) == {"delivered": 25}:
            break
        await asyncio.sleep(0.05)
    assert await statuses(database_url) == {"delivered": 25}


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[OwnPostgres]:
    server = OwnPostgres(tmp_path)
    yield server
    server.cleanup()


async def test_database_restart_under_a_running_service(
    own_postgres: OwnPostgres, receiver: Receiver, tmp_path: Path
) -> None:
    proc = ServiceProcess(database_url=own_postgres.url, log_path=tmp_path / "service.log", env=dict(FAST))
    proc.start()
    try:
        await proc.wait_ready()
        async with aiohttp.ClientSession() as session:
            created = await session.post(f"{proc.base_url}/timer", json={"seconds": 4, "url": receiver.url})
            timer_id = (await created.json())["timer_id"]

            await asyncio.to_thread(own_postgres.stop)
            async with session.get(f"{proc.base_url}/timer/{timer_id}") as response:
                assert response.status == 503
                body = await response.json()
                assert body["error"]["code"] == "database_unavailable"
            async with session.post(
                f"{proc.base_url}/timer", json={"seconds": 1, "url": receiver.url}
            ) as response:
                assert response.status == 503
            async with session.get(f"{proc.base_url}/readyz") as response:
                assert response.status == 503
            async with session.get(f"{proc.base_url}/healthz") as response:
                assert response.status == 200  # alive, just not ready
            await asyncio.sleep(3)  # the timer comes due while the database is away

            await asyncio.to_thread(own_postgres.start)
            assert await receiver.wait_for(lambda: receiver.counts()[timer_id] == 1, 30.0)
            for _ in range(100):
                async with session.get(f"{proc.base_url}/readyz") as response:
                    if response.status == 200:
                        break
                await asyncio.sleep(0.1)
            async with session.post(
                f"{proc.base_url}/timer", json={"seconds": 0, "url": receiver.url}
            ) as response:
                assert response.status == 201
                second = (await response.json())["timer_id"]
            assert await receiver.wait_for(lambda: receiver.counts()[second] == 1, 30.0)
        assert proc.terminate() == 0
    finally:
        proc.ensure_stopped()
    assert receiver.counts() == {timer_id: 1, second: 1}


async def test_several_worker_processes_on_one_port(
    spawn: Callable[..., ServiceProcess], receiver: Receiver, database_url: str
) -> None:
    proc = spawn(SCHEDULER_WORKERS="2")
    await proc.wait_ready()
    async with aiohttp.ClientSession() as session:
        batch = {"timers": [{"seconds": 1, "url": receiver.url}] * 50}
        async with session.post(f"{proc.base_url}/timers/batch", json=batch) as response:
            assert response.status == 201
        for _ in range(10):
            async with session.post(
                f"{proc.base_url}/timer", json={"seconds": 1, "url": receiver.url}
            ) as response:
                assert response.status == 201
        assert await receiver.wait_for(lambda: len(receiver.counts()) == 60, 30.0)
        async with session.get(f"{proc.base_url}/metrics") as response:
            text = await response.text()
    await asyncio.sleep(0.5)
    assert all(n == 1 for n in receiver.counts().values())
    # both processes report into one exposition: every created timer is counted once
    assert "scheduler_timers_created_total 60.0" in text
    assert await asyncio.to_thread(proc.terminate, 30.0) == 0
