"""The benchmark scenarios. Each starts from a fresh database, runs real processes, and returns
a row: the figure, the target, whether it was met, and correctness (lost, duplicates, errors)."""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

from bench.bulk_cancel import bulk_cancel
from bench.common import BODY, Row, correctness
from bench.destinations_flow import flow_control
from bench.harness import (
    ONE_PROCESS,
    SERVICE_ENV,
    TUNED_ENV,
    Delivered,
    Receiver,
    closed_loop,
    connect,
    due_times,
    fresh_database,
    insert_due,
    open_loop,
    ordinary_closed_loop,
    start_service,
)
from bench.scale import scale
from bench.schedules import schedule_burst, schedule_create, schedule_steady
from bench.tracing import tracing_create, tracing_fire
from task_scheduler.config import worker_count_of


async def _service(server_url: str, workdir: Path, name: str, **env: str) -> Any:
    database_url = await fresh_database(server_url)
    proc = start_service(database_url, workdir, name, **env)
    await proc.wait_ready()
    return database_url, proc


async def create_peak(server_url: str, workdir: Path, seconds: float = 10.0, tuned: bool = False) -> Row:
    """The lean load generator (bench.loadgen) at 64 connections; `tuned`: logging at WARNING."""
    _, proc = await _service(server_url, workdir, "create-peak", **(TUNED_ENV if tuned else {}))
    try:
        await closed_loop(f"{proc.base_url}/timer", 64, 2.0, BODY)  # warm up
        result = await closed_loop(f"{proc.base_url}/timer", 64, seconds, BODY)
    finally:
        proc.terminate()
    return Row(
        "create: peak POST /timer rate (64 clients, closed loop)" + (", tuned: log WARNING" if tuned else ""),
        f"{result['per_second']} requests/s",
        ">= 3,000 requests/s",
        result["per_second"] >= 3000,
        f"errors {result['errors']}",
        result,
    )


async def create_latency(server_url: str, workdir: Path, rate: float = 1000, seconds: float = 10.0) -> Row:
    _, proc = await _service(server_url, workdir, "create-latency")
    try:
        await closed_loop(f"{proc.base_url}/timer", 16, 1.0, BODY)
        result = await open_loop(f"{proc.base_url}/timer", rate, seconds, BODY)
    finally:
        proc.terminate()
    return Row(
        f"create: latency at {rate:g} requests/s, open loop",
        f"p50 {result['p50_ms']} / p99 {result['p99_ms']} / max {result['max_ms']} ms",
        "p99 <= 25 ms, no errors",
        result["p99_ms"] <= 25 and result["errors"] == 0,
        f"errors {result['errors']}",
        result,
    )


async def batch_create(server_url: str, workdir: Path, seconds: float = 10.0) -> Row:
    _, proc = await _service(server_url, workdir, "batch")
    body = {"timers": [BODY] * 1000}
    try:
        await closed_loop(f"{proc.base_url}/timers/batch", 2, 1.0, body)
        result = await closed_loop(f"{proc.base_url}/timers/batch", 4, seconds, body)
    finally:
        proc.terminate()
    rate = result["per_second"] * 1000
    return Row(
        "batch create: POST /timers/batch, 1,000 per request, 4 clients",
        f"{rate:,} timers/s",
        ">= 50,000 timers/s",
        rate >= 50_000,
        f"errors {result['errors']}",
        result,
    )


async def _fire(
    server_url: str,
    workdir: Path,
    name: str,
    count: int,
    start_in: float,
    spread: float,
    instances: int = 1,
    **env: str,
) -> tuple[Delivered, float, list[Any]]:
    database_url = await fresh_database(server_url)
    receiver = Receiver(workdir)
    receiver.start()
    procs = [start_service(database_url, workdir, f"{name}-{i}", **env) for i in range(instances)]
    try:
        for proc in procs:
            await proc.wait_ready()
        conn = await connect(database_url)
        try:
            await insert_due(conn, receiver.url, count, start_in, spread)
            inserted = time.time()
            await receiver.wait_for(count, within=start_in + spread + 120)
            await asyncio.sleep(1.0)  # late duplicates would arrive by now
            due = await due_times(conn)
        finally:
            await conn.close()
    finally:
        for proc in procs:
            proc.terminate()
        records = receiver.stop()
    return Delivered.check(records, due), inserted, procs


async def fire_throughput(
    server_url: str, workdir: Path, count: int = 30_000, workers: int | None = None
) -> Row:
    delivered, _, _ = await _fire(
        server_url, workdir, "fire", count, start_in=3.0, spread=0.0, **_workers_env(workers)
    )
    span = delivered.last_arrival - delivered.first_arrival
    rate = round(count / span) if span > 0 else 0
    return Row(
        f"fire: {count:,} due at once, delivery rate (claim -> POST -> record){_workers_label(workers)}",
        f"{rate:,} timers/s",
        ">= 5,000 timers/s",
        rate >= 5000,
        correctness(delivered),
        {**delivered.summary(), "span_s": round(span, 2)},
    )


async def lateness_steady(server_url: str, workdir: Path, rate: int = 1000, seconds: int = 10) -> Row:
    delivered, _, _ = await _fire(server_url, workdir, "steady", rate * seconds, start_in=3.0, spread=seconds)
    s = delivered.summary()
    return Row(
        f"lateness at {rate:,} fires/s steady ({rate * seconds:,} timers)",
        f"p50 {s['lateness_p50_ms']} / p99 {s['lateness_p99_ms']} / max {s['lateness_max_ms']} ms",
        "p50 <= 5, p99 <= 50, max <= 250 ms",
        s["lateness_p50_ms"] <= 5 and s["lateness_p99_ms"] <= 50 and s["lateness_max_ms"] <= 250,
        correctness(delivered),
        s,
    )


def _workers_env(workers: int | None) -> dict[str, str]:
    """None: the default (SERVICE_ENV: auto unless SCHEDULER_WORKERS is set); else that many."""
    return {} if workers is None else {"SCHEDULER_WORKERS": str(workers)}


def _workers_label(workers: int | None) -> str:
    if workers is None:
        setting = SERVICE_ENV["SCHEDULER_WORKERS"]
        count = worker_count_of("auto" if setting == "auto" else int(setting))
        return f", defaults ({count} processes: SCHEDULER_WORKERS={setting})"
    return f", one instance of {workers} process{'es' if workers > 1 else ''} (SCHEDULER_WORKERS={workers})"


async def burst(server_url: str, workdir: Path, count: int = 100_000, workers: int | None = None) -> Row:
    delivered, _, _ = await _fire(
        server_url, workdir, "burst", count, start_in=5.0, spread=0.0, **_workers_env(workers)
    )
    s = delivered.summary()
    all_in = s["lateness_max_ms"] / 1000
    return Row(
        f"burst: {count:,} timers due in the same second{_workers_label(workers)}",
        f"all delivered {all_in:.1f} s after due",
        "all within 20 s",
        all_in <= 20,
        correctness(delivered),
        s,
    )


async def recovery(server_url: str, workdir: Path, count: int = 100_000, workers: int | None = None) -> Row:
    database_url = await fresh_database(server_url)
    receiver = Receiver(workdir)
    receiver.start()
    # the schema first, then the overdue timers, with no service running
    proc = start_service(database_url, workdir, "recovery-migrate")
    await proc.wait_ready()
    proc.terminate()
    conn = await connect(database_url)
    try:
        await insert_due(conn, receiver.url, count, start_in=-60.0, spread=30.0)
        started = time.time()
        proc = start_service(database_url, workdir, "recovery", **_workers_env(workers))
        await proc.wait_ready()
        ready = time.time()
        await receiver.wait_for(count, within=180)
        await asyncio.sleep(1.0)
        due = await due_times(conn)
    finally:
        await conn.close()
        proc.terminate()
        records = receiver.stop()
    delivered = Delivered.check(records, due)
    first = delivered.first_arrival - started
    last = delivered.last_arrival - started
    return Row(
        f"recovery: start with {count:,} overdue timers{_workers_label(workers)}",
        f"first delivery {first:.1f} s after start ({ready - started:.1f} s to ready), all in {last:.1f} s",
        "first within 2 s of start, all within 20 s",
        first <= 2 and last <= 20,
        correctness(delivered),
        {**delivered.summary(), "process_ready_s": round(ready - started, 2)},
    )


async def three_instances(server_url: str, workdir: Path, count: int = 60_000) -> Row:
    # Instances of one process each, as the earlier figures and the chaos suite's instances.
    one, _, _ = await _fire(
        server_url, workdir, "scale1", count, start_in=3.0, spread=0.0, instances=1, **ONE_PROCESS
    )
    three, _, _ = await _fire(
        server_url, workdir, "scale3", count, start_in=3.0, spread=0.0, instances=3, **ONE_PROCESS
    )

    def rate(d: Delivered) -> int:
        span = d.last_arrival - d.first_arrival
        return round(d.expected / span) if span > 0 else 0

    return Row(
        f"3 instances on one database ({count:,} due at once)",
        f"{rate(three):,} timers/s with 3 vs {rate(one):,} with 1 (x{rate(three) / max(rate(one), 1):.2f})",
        "throughput scales, 0 lost, 0 duplicates",
        rate(three) > rate(one) and three.lost == 0 and three.duplicates == 0,
        correctness(three),
        {"one": one.summary(), "three": three.summary()},
    )


async def isolation(server_url: str, workdir: Path, seconds: int = 30, rate: int = 200) -> Row:
    """One receiver host answers after 10 s; another host's timers must stay on time. 30 s: long
    enough for the slow host's backlog to outgrow the instance's budget of held timers (a 10-s
    run hid that it then starved the other host)."""
    database_url = await fresh_database(server_url)
    slow = Receiver(workdir, delay=10.0)
    fast = Receiver(workdir)
    slow.start()
    fast.start()
    proc = start_service(database_url, workdir, "isolation", SCHEDULER_REQUEST_TIMEOUT_SECONDS="15")
    try:
        await proc.wait_ready()
        conn = await connect(database_url)
        try:
            slow_url = slow.url.replace("127.0.0.1", "localhost")  # another host name, same machine
            await insert_due(conn, slow_url, rate * seconds, 3.0, seconds)
            await insert_due(conn, fast.url, rate * seconds, 3.0, seconds)
            await fast.wait_for(rate * seconds, within=seconds + 60)
            await asyncio.sleep(1.0)
            rows = await conn.fetch(
                "SELECT id, extract(epoch FROM due_at)::float8 AS due FROM timers WHERE url = $1", fast.url
            )
        finally:
            await conn.close()
    finally:
        proc.terminate()
        slow.stop()
        records = fast.stop()
    delivered = Delivered.check(records, {r["id"]: r["due"] for r in rows})
    s = delivered.summary()
    return Row(
        f"isolation: one host takes 10 s per request ({rate}/s to each host)",
        f"other host: p50 {s['lateness_p50_ms']} / p99 {s['lateness_p99_ms']} / max {s['lateness_max_ms']} ms",
        "the other host's timers meet the lateness target",
        s["lateness_p50_ms"] <= 5 and s["lateness_p99_ms"] <= 50 and s["lateness_max_ms"] <= 250,
        correctness(delivered),
        s,
    )


async def create_as_installed(server_url: str, workdir: Path, seconds: float = 10.0) -> Row:
    """`make run` defaults and an ordinary aiohttp client with 64 connections (not the lean
    load generator): what a user's own backend gets."""
    _, proc = await _service(server_url, workdir, "create-installed")
    try:
        await ordinary_closed_loop(f"{proc.base_url}/timer", 64, 2.0, BODY)  # warm up
        result = await ordinary_closed_loop(f"{proc.base_url}/timer", 64, seconds, BODY)
    finally:
        proc.terminate()
    result.pop("ids")
    return Row(
        "create as installed: defaults, one aiohttp client, 64 connections",
        f"{result['per_second']:,} creates/s",
        ">= 5,000 creates/s, no 429",
        result["per_second"] >= 5000 and result["errors"] == 0,
        f"errors {result['errors']} {result['statuses']}",
        result,
    )


async def api_burst(server_url: str, workdir: Path, count: int = 10_000) -> Row:
    """A new deployment's first burst: a fresh database, `count` timers created through the API
    (16 aiohttp connections) all due at the same second, into a table whose statistics still say
    it is empty (the bench's other bursts insert straight into the table and never met the stale
    plans that stalled this one for 35 s)."""
    database_url, proc = await _service(server_url, workdir, "api-burst")
    receiver = Receiver(workdir)
    receiver.start()
    try:
        fire_at = time.time() + 4.0 + count / 2000  # every create has landed by then
        iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(fire_at)) + "Z"
        body = {"fire_at": iso, "url": receiver.url}
        created = await ordinary_closed_loop(
            f"{proc.base_url}/timer", 16, count / 200, body, stop_after=count
        )
        # On a slow machine creating takes longer than planned: count from the last create.
        all_due = max(fire_at, time.time())
        await receiver.wait_for(created["created"], within=max(0.0, fire_at - time.time()) + 120)
        await asyncio.sleep(1.0)
        conn = await connect(database_url)
        try:
            due = await due_times(conn)
        finally:
            await conn.close()
    finally:
        proc.terminate()
        records = receiver.stop()
    delivered = Delivered.check(records, due)
    s = delivered.summary()
    all_in = delivered.last_arrival - all_due
    return Row(
        f"burst through the API into a new table: {count:,} created by 16 connections, due at once",
        f"all delivered {all_in:.1f} s after due",
        "all within 10 s, none lost",
        all_in <= 10 and delivered.lost == 0 and created["created"] == count,
        correctness(delivered),
        {
            **s,
            "all_in_s": round(all_in, 2),
            "created": created["created"],
            "create_errors": created["errors"],
        },
    )


async def log_cost(server_url: str, workdir: Path, pairs: int = 5, seconds: float = 5.0) -> Row:
    """What logging at INFO (the default) costs creates against WARNING, measured in pairs (INFO,
    then WARNING, on fresh databases, `pairs` times) with the ordinary client at 64 connections:
    the ratio pair by pair holds when a shared machine's speed drifts."""
    ratios: list[float] = []
    rates: dict[str, list[int]] = {"INFO": [], "WARNING": []}
    for _ in range(pairs):
        pair: dict[str, int] = {}
        for level in ("INFO", "WARNING"):
            _, proc = await _service(server_url, workdir, f"log-{level.lower()}", SCHEDULER_LOG_LEVEL=level)
            try:
                await ordinary_closed_loop(f"{proc.base_url}/timer", 64, 1.0, BODY)  # warm up
                result = await ordinary_closed_loop(f"{proc.base_url}/timer", 64, seconds, BODY)
            finally:
                proc.terminate()
            pair[level] = result["per_second"]
            rates[level].append(result["per_second"])
        ratios.append(pair["INFO"] / max(1, pair["WARNING"]))
    cost = 1.0 - statistics.median(ratios)
    return Row(
        f"logging at INFO vs WARNING: creates/s, {pairs} pairs, ordinary client, 64 connections",
        f"INFO costs {cost:.1%} (median of the pairs' ratios)",
        "< 10 %",
        cost < 0.10,
        f"INFO {sorted(rates['INFO'])}, WARNING {sorted(rates['WARNING'])} creates/s",
        {"ratios": [round(r, 3) for r in ratios], "rates": rates},
    )


QUICK = {
    "create_installed": create_as_installed,
    "api_burst": api_burst,
    "create_peak": create_peak,
    "create_peak_tuned": lambda s, w: create_peak(s, w, tuned=True),
    "create_latency": create_latency,
    "batch": batch_create,
    "fire": fire_throughput,
    "lateness": lateness_steady,
    "burst": lambda s, w: burst(s, w, 20_000),
    "recovery": lambda s, w: recovery(s, w, 20_000),
    "schedule_create": schedule_create,
    "schedule_burst": schedule_burst,
    "schedule_steady": schedule_steady,
    "tracing_create": tracing_create,
    "tracing_fire": tracing_fire,
}
FULL = {
    **QUICK,
    "burst": burst,
    "recovery": recovery,
    "isolation": isolation,
    "three_instances": three_instances,
    "fire_1_process": lambda s, w: fire_throughput(s, w, workers=1),
    "burst_1_process": lambda s, w: burst(s, w, workers=1),
    "recovery_1_process": lambda s, w: recovery(s, w, workers=1),
    "scale": scale,
    "log_cost": log_cost,
    "bulk_cancel": bulk_cancel,
    "flow_control": flow_control,
}
