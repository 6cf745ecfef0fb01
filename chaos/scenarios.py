"""The scenarios, and the run of one: receiver, three instances, the workload through the API, the
fault, a quiet wait until no timer is pending or firing, then the invariants. (The recurring
schedules' scenario has its own workload and checks: chaos.schedules.)"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg

from chaos.analysis import AttemptRow, Record, Result, TimerRow, analyse, read_records, timer_row
from chaos.cluster import SERVICE_ENV, Cluster, ReceiverProcess
from chaos.faults import (
    Context,
    Injector,
    Misbehave,
    flapping_receiver,
    flood_of_creates,
    kill_instances,
    misbehaving_receiver,
    no_faults,
    restart_postgres,
    terminate_connections,
    together,
)
from chaos.flapping import check_flapping
from chaos.hostile import HostileLoad, HostileProcess, hostile_traffic
from chaos.hostile import check as check_hostile
from chaos.postgres import OwnPostgres
from chaos.schedules import run_schedules
from chaos.workload import Creator, feed, spread_due_times
from task_scheduler.db import asyncpg_dsn

log = logging.getLogger("chaos")

LEAD_SECONDS = 8.0  # from the start of feeding to the first due time
QUIET_WITHIN = 120.0  # after the last due time, at most this long for every timer to finish
STRAGGLERS_SECONDS = 2.0  # after the last timer finished, for any late duplicate to arrive
MAX_ATTEMPTS = int(SERVICE_ENV["SCHEDULER_MAX_ATTEMPTS"])
FLAPPING_COOLDOWN = 1.5  # seconds an open breaker waits before its probe, in the flapping scenario
# From a down period's first failed attempt until its breaker holds everything: the writer's
# commit, the other instances' next poll (SCHEDULER_POLL_INTERVAL_SECONDS, 1 s), a request timeout.
FLAPPING_SETTLE = 3.0


@dataclass(frozen=True)
class Scenario:
    name: str
    what: str
    inject: Injector
    clocks: tuple[str, ...] = ("", "", "")
    burst: float = 0.0  # share of the workload due at one instant, mid-spread
    own_postgres: bool = False  # stops and starts the server: needs the suite's own
    hostile: int = 0  # timers sent to a receiver that answers badly, beside poison creates
    poison_rounds: int = 5  # rounds of every poison create (chaos.hostile.POISON_BODIES)
    # instead of the timer workload: this many schedules firing every second for schedule_seconds
    schedules: int = 0
    schedule_seconds: int = 36
    # a share of the timers sent to a second receiver, the flapping destination (ctx.flapping)
    flapping: float = 0.0
    env: tuple[tuple[str, str], ...] = ()  # service settings of this scenario only


def full_suite() -> list[Scenario]:
    return [
        Scenario("baseline", "no fault: what on time looks like here", no_faults),
        Scenario(
            "kill-9",
            "kill -9 a random instance every 6-10 s, restart it at once",
            kill_instances(every=(6.0, 10.0)),
        ),
        Scenario(
            "postgres",
            "PostgreSQL: fast restart at 25 %, crash + 10 s outage at 55 % of the spread",
            restart_postgres(restart_at=0.25, outage_at=0.55, outage_seconds=10.0),
            own_postgres=True,
        ),
        Scenario(
            "terminate",
            "pg_terminate_backend on every session of the database every 3-5 s",
            terminate_connections(every=(3.0, 5.0)),
        ),
        Scenario(
            "receiver",
            "receiver: 503 + Retry-After 5 s, times out 5 s, resets 5 s, down 30 s",
            misbehaving_receiver(
                Misbehave("unavailable", at=0.05, seconds=5.0, retry_after=1),
                Misbehave("timeout", at=0.17, seconds=5.0, sleep=3.0),
                Misbehave("reset", at=0.30, seconds=5.0),
                Misbehave("down", at=0.43, seconds=30.0),
            ),
        ),
        Scenario(
            "clock-skew",
            "instance clocks +30 s, -30 s and true (libfaketime)",
            no_faults,
            clocks=("+30s", "-30s", ""),
        ),
        Scenario(
            "flood",
            "25 % of the timers due at one instant, 10 s of concurrent creates around it",
            flood_of_creates(at=0.42, seconds=10.0, batches=20, batch_size=500, singles=3000),
            burst=0.25,
        ),
        Scenario(
            "hostile",
            "300 timers to a receiver answering badly (NUL, gzip, invalid HTTP, resets, drips) and"
            " boundary-value creates, beside the workload",
            no_faults,
            hostile=300,
        ),
        Scenario(
            "flapping",
            "a second destination (20 % of the timers) refuses connections or answers 503 for 4-7 s,"
            " then is up for 2-4 s, throughout; kill -9 a random instance every 6-10 s; breaker"
            f" cool-down {FLAPPING_COOLDOWN:g} s",
            together(flapping_receiver(up=(2.0, 4.0), down=(4.0, 7.0)), kill_instances(every=(6.0, 10.0))),
            flapping=0.2,
            env=(("SCHEDULER_BREAKER_COOLDOWN_SECONDS", f"{FLAPPING_COOLDOWN:g}"),),
        ),
        Scenario(
            "schedules",
            "4 schedules firing every second (catchup all) for 36 s: kill -9 a random instance every"
            " 3-6 s, and all three at once for 4 s mid-range",
            kill_instances(every=(3.0, 6.0), seed=5, all_at=0.5, all_down_seconds=4.0),
            schedules=4,
            schedule_seconds=36,
        ),
    ]


def short_suite() -> list[Scenario]:
    """For CI: the same harness, shorter faults."""
    return [
        Scenario("kill-9", "kill -9 a random instance every 3-5 s", kill_instances(every=(3.0, 5.0))),
        Scenario(
            "terminate",
            "pg_terminate_backend every 2-3 s",
            terminate_connections(every=(2.0, 3.0)),
        ),
        Scenario(
            "receiver",
            "receiver: 503 + Retry-After 3 s, resets 2 s",
            misbehaving_receiver(
                Misbehave("unavailable", at=0.2, seconds=3.0, retry_after=1),
                Misbehave("reset", at=0.55, seconds=2.0),
            ),
        ),
        Scenario(
            "hostile",
            "60 timers to a receiver answering badly, boundary-value creates",
            no_faults,
            hostile=60,
            poison_rounds=2,
        ),
    ]


async def run_scenario(
    scenario: Scenario,
    *,
    database_url: str,
    workdir: Path,
    timers: int,
    spread: float,
    postgres: OwnPostgres | None = None,
) -> Result:
    """Run one scenario on a fresh database; every process it starts is stopped on the way out."""
    if scenario.schedules:
        return await run_schedules(
            scenario.name,
            scenario.inject,
            schedules=scenario.schedules,
            seconds=scenario.schedule_seconds,
            database_url=database_url,
            workdir=workdir,
        )
    started = time.monotonic()
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    receiver = ReceiverProcess(workdir)
    flappy = ReceiverProcess(workdir / "flapping") if scenario.flapping else None
    cluster = Cluster(
        database_url=database_url, workdir=workdir, clocks=scenario.clocks, env=dict(scenario.env)
    )
    tasks: list[asyncio.Task[None]] = []
    ctx: Context | None = None
    hostile = HostileProcess(workdir)
    load = HostileLoad()
    try:
        receiver.start()
        await receiver.wait_ready()
        if flappy is not None:
            await asyncio.to_thread((workdir / "flapping").mkdir, exist_ok=True)
            flappy.start()
            await flappy.wait_ready()
        if scenario.hostile:
            hostile.start()
        await cluster.start()
        t0 = time.time() + LEAD_SECONDS
        due = spread_due_times(timers, start=t0, spread=spread, burst=scenario.burst)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            creator = Creator(
                urls=cluster.ready_urls,
                session=session,
                deadline=time.monotonic() + LEAD_SECONDS + spread + 60,
            )
            ctx = Context(cluster, receiver, database_url, t0, spread, creator, postgres, flapping=flappy)
            tasks = [asyncio.create_task(scenario.inject(ctx))]
            if flappy is not None:  # every n-th due time to the flapping destination
                every = max(1, round(1 / scenario.flapping))
                tasks.append(asyncio.create_task(feed(creator, flappy.url, due[::every])))
                due = [t for i, t in enumerate(due) if i % every]
            tasks.append(asyncio.create_task(feed(creator, receiver.url, due)))
            if scenario.hostile:
                traffic = hostile_traffic(
                    load, hostile.url, timers=scenario.hostile, poison_rounds=scenario.poison_rounds
                )
                tasks.append(asyncio.create_task(traffic(ctx)))
            await asyncio.gather(*tasks)
            restarts = await asyncio.gather(*ctx.background, return_exceptions=True)
        log.info("%s: workload and faults done, waiting for every timer to finish", scenario.name)
        still_open = await wait_quiet(database_url, until=t0 + spread + QUIET_WITHIN)
        await asyncio.sleep(STRAGGLERS_SECONDS)
        await receiver.flush()
        if flappy is not None:
            await flappy.flush()
        rows, attempts = await read_database(database_url)
        hostile_ids = set(load.timer_ids)
        hostile_rows = {r.id: r.status for r in rows if r.id in hostile_ids}
        rows = [r for r in rows if r.id not in hostile_ids]
        attempts = [a for a in attempts if a.timer_id not in hostile_ids]
        records = read_records(receiver.records_path)
        if flappy is not None:
            records += read_records(flappy.records_path)
        result = analyse(
            scenario=scenario.name,
            rows=rows,
            attempts=attempts,
            records=records,
            acknowledged=creator.acked,
            faults=ctx.faults,
            max_attempts=MAX_ATTEMPTS,
            workload_end=t0 + spread,
        )
        if scenario.hostile:
            result.hostile_problems = await check_hostile(load, cluster.ready_urls()[0], hostile_rows)
            result.notes.append(
                f"hostile receiver: {len(load.timer_ids)} timers, final {dict(Counter(hostile_rows.values()))};"
                f" poison creates answered {dict(load.poison_statuses)}"
            )
        if flappy is not None:
            result.destination_problems, flapping_notes = await check_flapping(
                database_url,
                flapping_key=f"http://127.0.0.1:{flappy.port}",
                faults=ctx.faults,
                cooldown=FLAPPING_COOLDOWN,
                settle=FLAPPING_SETTLE,
            )
            result.notes.extend(flapping_notes)
        if still_open:
            result.notes.append(
                f"{still_open} timers still pending or firing {QUIET_WITHIN:g} s after the last due time"
            )
        failed_restarts = [r for r in restarts if isinstance(r, BaseException)]
        if failed_restarts:
            result.notes.append(f"{len(failed_restarts)} restarts failed: {failed_restarts[0]!r}")
        retries = {k: v for k, v in creator.stats.items() if not k.endswith("_acked")}
        if retries:
            result.notes.append(f"create requests retried: {dict(retries)}")
        if any(scenario.clocks):
            result.notes.append(clock_evidence(records))
        result.evidence.extend(log_evidence(workdir, result))
        result.seconds = time.monotonic() - started
        result.t0 = t0
        return result
    finally:
        for task in [*tasks, *(ctx.background if ctx else [])]:
            task.cancel()
        await asyncio.gather(*tasks, *(ctx.background if ctx else []), return_exceptions=True)
        cluster.stop()
        receiver.stop()
        if flappy is not None:
            flappy.stop()
        hostile.stop()
        if postgres is not None and not postgres.running():
            postgres.start()  # an outage cut short by a failure


async def wait_quiet(database_url: str, *, until: float) -> int:
    """Wait until no timer is pending or firing (or the wall time `until`); returns how many are."""
    left = -1
    while True:
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            conn = await asyncpg.connect(asyncpg_dsn(database_url), timeout=10)
            try:
                left = await conn.fetchval(
                    "SELECT count(*) FROM timers WHERE status IN ('pending', 'firing')"
                )
            finally:
                await conn.close()
        if left == 0 or time.time() > until:
            return max(left, 0)
        await asyncio.sleep(0.5)


async def read_database(database_url: str) -> tuple[list[TimerRow], list[AttemptRow]]:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        rows = await conn.fetch(
            "SELECT id, status, due_at, created_at, delivery_id::text AS delivery_id, attempts,"
            " labels::text AS labels FROM timers"
        )
        attempts = await conn.fetch(
            "SELECT timer_id, attempt, started_at, status_code, error_class FROM timer_attempts"
            " WHERE timer_id IN (SELECT id FROM timers WHERE status <> 'delivered') OR error_class = 'timeout'"
        )
    finally:
        await conn.close()
    return [timer_row(r) for r in rows], [
        AttemptRow(
            r["timer_id"], r["attempt"], r["started_at"].timestamp(), r["status_code"], r["error_class"]
        )
        for r in attempts
    ]


def clock_evidence(records: list[Record]) -> str:
    """How far each request's webhook-timestamp (the sender's clock) was from its arrival."""
    offsets = Counter(round((r.sent_at - r.arrived) / 10) * 10 for r in records)
    seen = ", ".join(f"{off:+d} s: {n}" for off, n in sorted(offsets.items()))
    return f"webhook-timestamp minus arrival (rounded to 10 s), the instances' clocks at work: {seen}"


def log_evidence(workdir: Path, result: Result, limit: int = 5) -> list[str]:
    """Service log lines naming the timers of each violation."""
    suspects = sorted(
        {
            *result.lost,
            *result.dup_outside,
            *(t for t, _ in result.early),
            *(t for t, _ in result.state_mismatch),
        }
    )[:limit]
    lines = []
    for tid in suspects:
        pattern = re.compile(rf'"timer_id": ?{tid}[,}}]')
        for path in sorted(workdir.glob("service-*.log")):
            for line in path.read_text(errors="replace").splitlines():
                if pattern.search(line):
                    lines.append(f"{path.name}: {line[:400]}")
    return lines
