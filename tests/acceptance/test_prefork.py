"""`SCHEDULER_WORKERS=2`: one parent forks two servers on one port and supervises them. Real
processes and signals; which process answered is read from its request log line (the instance
name of a child ends with its pid)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from tests.support.processes import ServiceProcess
from tests.support.receiver import Receiver

pytestmark = pytest.mark.acceptance

WORKERS = {"SCHEDULER_WORKERS": "2"}


def child_pids(parent: int) -> set[int]:
    pids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited while we looked
        if int(fields[1]) == parent and fields[0] != "Z":
            pids.add(int(stat.parent.name))
    return pids


async def wait_for_children(
    proc: ServiceProcess, count: int, *, other_than: set[int], within: float
) -> set[int]:
    assert proc.process is not None
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        pids = child_pids(proc.process.pid)
        if len(pids) == count and not pids & other_than:
            return pids
        await asyncio.sleep(0.1)
    raise AssertionError(f"not {count} new children after {within}s: {child_pids(proc.process.pid)}")


def answered_by(proc: ServiceProcess, request_ids: set[str]) -> dict[str, int]:
    """request id -> pid of the process whose request log line carries it."""
    found = {}
    for line in proc.log_path.read_text(errors="replace").splitlines():
        if '"http.request"' not in line:
            continue
        event = json.loads(line)
        if event.get("request_id") in request_ids:
            found[event["request_id"]] = int(event["instance"].rsplit("-", 1)[1])
    return found


async def pids_answering(proc: ServiceProcess, expected: set[int], within: float) -> set[int]:
    """Fresh connections (the kernel hashes each to one process) until every expected pid answered."""
    deadline = time.monotonic() + within
    seen: set[int] = set()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        while time.monotonic() < deadline and not expected <= seen:
            sent = set()
            for _ in range(20):
                request_id = uuid.uuid4().hex
                async with session.get(f"{proc.base_url}/healthz", headers={"X-Request-ID": request_id}) as r:
                    assert r.status == 200
                sent.add(request_id)
            await asyncio.sleep(0.2)  # the log line is written just after the reply
            seen |= set(answered_by(proc, sent).values())
    return seen


def gone(pids: set[int]) -> bool:
    return not any(Path(f"/proc/{pid}").exists() for pid in pids)


async def test_two_children_serve_fire_once_and_stop_together(
    spawn: Callable[..., ServiceProcess], receiver: Receiver
) -> None:
    proc = spawn(**WORKERS)
    await proc.wait_ready()
    children = await wait_for_children(proc, 2, other_than=set(), within=30)
    assert await pids_answering(proc, children, within=30) == children

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        for _ in range(40):
            async with session.post(f"{proc.base_url}/timer", json={"seconds": 1, "url": receiver.url}) as r:
                assert r.status == 201
    assert await receiver.wait_for(lambda: len(receiver.counts()) == 40, 30.0)
    await asyncio.sleep(1.0)  # a duplicate would arrive now
    assert set(receiver.counts().values()) == {1}

    assert await asyncio.to_thread(proc.terminate, 60.0) == 0
    assert gone(children)  # the parent exits only once it has reaped every child
    log = proc.log_path.read_text()
    assert log.count('"server.worker_stopped"') == 2
    assert '"exit_code": 0' in log


async def test_a_killed_child_is_replaced(spawn: Callable[..., ServiceProcess], receiver: Receiver) -> None:
    proc = spawn(**WORKERS)
    await proc.wait_ready()
    children = await wait_for_children(proc, 2, other_than=set(), within=30)
    victim = min(children)
    os.kill(victim, signal.SIGKILL)

    replaced = await wait_for_children(proc, 2, other_than={victim}, within=30)
    assert children - {victim} < replaced
    assert await pids_answering(proc, replaced, within=30) == replaced
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{proc.base_url}/timer", json={"seconds": 0, "url": receiver.url}) as r,
    ):
        assert r.status == 201
        timer_id = (await r.json())["timer_id"]
    assert await receiver.wait_for(lambda: receiver.counts()[timer_id] == 1, 30.0)
    assert '"server.worker_died"' in proc.log_path.read_text()
    assert await asyncio.to_thread(proc.terminate, 60.0) == 0


async def test_children_failing_at_start_stop_the_parent(
    spawn: Callable[..., ServiceProcess], database_url: str
) -> None:
    # A database that does not exist is refused at once: no child ever serves.
    missing = database_url.rsplit("/", 1)[0] + "/no_such_database_" + uuid.uuid4().hex[:8]
    proc = spawn(**WORKERS, DATABASE_URL=missing)
    assert proc.process is not None
    code = await asyncio.to_thread(proc.process.wait, 60)
    assert code == 3  # uvicorn's startup failure, as for one process
    assert '"workers keep failing at start"' in proc.log_path.read_text()
