"""The faults: each injector runs during the workload, ends by itself before the last timer is
due, and returns what it did, with wall times, for the analysis."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from chaos.cluster import Cluster, ReceiverProcess, Slot
from chaos.postgres import OwnPostgres
from chaos.workload import Creator, flood
from task_scheduler.db import asyncpg_dsn

log = logging.getLogger("chaos")

# At most this many fault events per injector, whatever the timing says.
_MAX_EVENTS = 200


@dataclass(frozen=True)
class Fault:
    kind: str
    start: float  # wall time the fault began
    end: float  # wall time it was over (the same instant for a kill or a termination)
    detail: str = ""
    # kill -9 only: the timers the dead instance held (firing, leased to it) when it died
    held: frozenset[int] = frozenset()
    # a database crash: the wall time the server was gone (commits the dispatcher made without
    # waiting for the WAL flush, until then, may be lost)
    database_gone_at: float | None = None


@dataclass
class Context:
    cluster: Cluster
    receiver: ReceiverProcess
    database_url: str
    t0: float  # wall time the first timer is due
    spread: float  # seconds over which the timers are due
    creator: Creator
    postgres: OwnPostgres | None = None
    flapping: ReceiverProcess | None = None  # the flapping destination's receiver, if any
    faults: list[Fault] = field(default_factory=list)
    background: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def last_due(self) -> float:
        return self.t0 + self.spread


Injector = Callable[[Context], Coroutine[Any, Any, None]]


async def sleep_until(wall: float) -> None:
    await asyncio.sleep(max(0.0, wall - time.time()))


async def random_ticks(ctx: Context, every: tuple[float, float], rng: random.Random) -> AsyncIterator[None]:
    """From t0, a tick every `every` seconds (uniform), the last a second before the last timer
    is due (at most _MAX_EVENTS)."""
    await sleep_until(ctx.t0)
    for _ in range(_MAX_EVENTS):
        wait = rng.uniform(*every)
        if time.time() + wait > ctx.last_due - 1:
            return
        await asyncio.sleep(wait)
        yield


async def no_faults(_ctx: Context) -> None:
    return None


def kill_instances(
    every: tuple[float, float],
    seed: int = 1,
    *,
    all_at: float | None = None,
    all_down_seconds: float = 0.0,
) -> Injector:
    """kill -9 a random ready instance every `every` seconds (uniform), restart it at once; with
    `all_at`, once, at that share of the spread, kill -9 every instance at once (after the
    restarts under way are done) and start them again `all_down_seconds` later: a time with no
    instance at all (what a schedule's catch-up is for)."""

    async def run(ctx: Context) -> None:
        rng = random.Random(seed)
        all_down_at = None if all_at is None else ctx.t0 + all_at * ctx.spread
        async for _ in random_ticks(ctx, every, rng):
            if all_down_at is not None and time.time() >= all_down_at:
                all_down_at = None
                await asyncio.gather(*ctx.background, return_exceptions=True)
                slots = [slot for slot in ctx.cluster.slots if slot.ready]
                for slot in slots:
                    await kill_slot(ctx, slot, note="all instances down")
                await asyncio.sleep(all_down_seconds)

                async def restart_all(slots: list[Slot] = slots) -> None:
                    await asyncio.gather(*(ctx.cluster.restart(slot) for slot in slots))

                ctx.background.append(asyncio.create_task(restart_all()))
                continue
            ready = [slot for slot in ctx.cluster.slots if slot.ready]
            if not ready:
                continue
            slot = rng.choice(ready)
            await kill_slot(ctx, slot)
            ctx.background.append(asyncio.create_task(ctx.cluster.restart(slot)))

    return run


async def kill_slot(ctx: Context, slot: Slot, *, note: str = "") -> None:
    """kill -9 the slot's instance and record the fault with the timers it held."""
    kill = ctx.cluster.kill(slot)
    held = await held_by(ctx.database_url, kill.instance_id)
    detail = f"{kill.instance_id} (pid {kill.pid}) held {len(held)}" + (f", {note}" if note else "")
    ctx.faults.append(Fault("kill -9", kill.at, kill.at, detail, frozenset(held)))
    log.info("killed %s (pid %d), it held %d timers", kill.instance_id, kill.pid, len(held))


async def held_by(database_url: str, instance_id: str) -> set[int]:
    """Timers leased to `instance_id` and still firing: what it had in hand when it died."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        rows = await conn.fetch(
            "SELECT id FROM timers WHERE status = 'firing' AND lease_owner = $1", instance_id
        )
    finally:
        await conn.close()
    return {r["id"] for r in rows}


def restart_postgres(*, restart_at: float, outage_at: float, outage_seconds: float) -> Injector:
    """At these shares of the spread: a fast restart, then a crash (`-m immediate`) and a start
    again `outage_seconds` later."""

    async def run(ctx: Context) -> None:
        pg = ctx.postgres
        assert pg is not None, "this scenario needs the suite's own PostgreSQL"
        await sleep_until(ctx.t0 + restart_at * ctx.spread)
        start = time.time()
        await asyncio.to_thread(pg.restart)
        ctx.faults.append(Fault("postgres restart", start, time.time(), "pg_ctl restart -m fast"))
        log.info("postgres restarted in %.2fs", time.time() - start)
        await sleep_until(ctx.t0 + outage_at * ctx.spread)
        start = time.time()
        gone_at = None
        try:
            await asyncio.to_thread(pg.crash)
            gone_at = time.time()
            await asyncio.sleep(outage_seconds)
        finally:
            await asyncio.to_thread(pg.start)
        ctx.faults.append(
            Fault(
                f"postgres down {outage_seconds:g} s",
                start,
                time.time(),
                "pg_ctl stop -m immediate, then start",
                database_gone_at=gone_at,
            )
        )
        log.info("postgres back after %.2fs", time.time() - start)

    return run


_TERMINATE = """
SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))
FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
"""


def terminate_connections(every: tuple[float, float], seed: int = 3) -> Injector:
    """Every `every` seconds, the server ends every other session on the scenario's database."""

    async def run(ctx: Context) -> None:
        async for _ in random_ticks(ctx, every, random.Random(seed)):
            conn = await asyncpg.connect(asyncpg_dsn(ctx.database_url))
            try:
                at = time.time()
                ended = await conn.fetchval(_TERMINATE)
            finally:
                await conn.close()
            ctx.faults.append(Fault("terminate connections", at, at, f"{ended} sessions"))
            log.info("terminated %d sessions", ended)

    return run


@dataclass(frozen=True)
class Misbehave:
    mode: str  # a chaos.receiver mode
    at: float  # share of the spread after t0
    seconds: float
    retry_after: int = 1
    sleep: float = 3.0  # "timeout": past SCHEDULER_REQUEST_TIMEOUT_SECONDS (2 s)


def misbehaving_receiver(*steps: Misbehave) -> Injector:
    async def run(ctx: Context) -> None:
        for step in steps:
            await sleep_until(ctx.t0 + step.at * ctx.spread)
            began, _ = await ctx.receiver.set_mode(step.mode, retry_after=step.retry_after, sleep=step.sleep)
            try:
                await asyncio.sleep(step.seconds)
            finally:
                _, done = await ctx.receiver.set_mode("ok")
            detail = {
                "unavailable": f"503, Retry-After: {step.retry_after}",
                "timeout": f"answers after {step.sleep:g} s",
                "reset": "TCP RST, no answer",
                "down": "not listening; open connections dropped",
            }[step.mode]
            ctx.faults.append(Fault(f"receiver {step.mode} {step.seconds:g} s", began, done, detail))
            log.info("receiver %s for %.1fs", step.mode, done - began)

    return run


def flood_of_creates(*, at: float, seconds: float, batches: int, batch_size: int, singles: int) -> Injector:
    """From this share of the spread, for `seconds`: many clients create timers due 1-10 s ahead,
    in batches and one by one, while the workload's burst comes due."""

    async def run(ctx: Context) -> None:
        await sleep_until(ctx.t0 + at * ctx.spread)
        start = time.time()
        before = dict(ctx.creator.stats)
        await flood(
            ctx.creator,
            ctx.receiver.url,
            until=start + seconds,
            batches=batches,
            batch_size=batch_size,
            singles=singles,
        )
        made = {k: v - before.get(k, 0) for k, v in ctx.creator.stats.items()}
        detail = (
            f"{made.get('batch_acked', 0)} batches of {batch_size} and "
            f"{made.get('single_acked', 0)} single timers acknowledged"
        )
        ctx.faults.append(Fault("flood of creates", start, time.time(), detail))
        log.info("flood: %s", detail)

    return run


FLAPPING = "receiver flapping"  # the kind of each down period of flapping_receiver
_DOWN_MODES = ("down", "unavailable")


def flapping_receiver(*, up: tuple[float, float], down: tuple[float, float], seed: int = 11) -> Injector:
    """From t0, the flapping destination's receiver (ctx.flapping, a second one: the workload's
    own stays healthy) goes down for `down` seconds (uniform), then up for `up` seconds, until a
    second before the last timer is due; down is in turn not listening (connection refused) and
    503 with Retry-After 1. Each down period is a fault whose kind starts "receiver "."""

    async def run(ctx: Context) -> None:
        flappy = ctx.flapping
        assert flappy is not None, "this scenario needs a flapping receiver"
        rng = random.Random(seed)
        await sleep_until(ctx.t0)
        for n in range(_MAX_EVENTS):
            seconds = rng.uniform(*down)
            if time.time() + seconds > ctx.last_due - 1:
                return
            mode = _DOWN_MODES[n % len(_DOWN_MODES)]
            began, _ = await flappy.set_mode(mode, retry_after=1)
            try:
                await asyncio.sleep(seconds)
            finally:
                _, done = await flappy.set_mode("ok")
            detail = "not listening" if mode == "down" else "503, Retry-After: 1"
            ctx.faults.append(Fault(f"{FLAPPING} {mode} {seconds:.1f} s", began, done, detail))
            log.info("flapping receiver %s for %.1fs", mode, done - began)
            await asyncio.sleep(rng.uniform(*up))

    return run


def together(*injectors: Injector) -> Injector:
    """Several injectors at once (each ends by itself before the last timer is due)."""

    async def run(ctx: Context) -> None:
        await asyncio.gather(*(inject(ctx) for inject in injectors))

    return run
