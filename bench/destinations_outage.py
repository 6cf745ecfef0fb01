"""Issue 16's breaker scenario at full size: `INSTANCES` service processes (`make run` defaults but
the cool-down) on one scratch database, a destination that answers 503 for `OUTAGE` seconds with
`DOWN` timers due at once, and a healthy destination with `UP` timers due evenly from the start to
`OUTAGE` + 10 s. Both receivers run in this process, on two loopback addresses (127.0.0.1 and
127.0.0.2: two hosts, as two destinations usually are; on one host name they would share the
per-host limit of requests in flight, SCHEDULER_MAX_CONCURRENT_PER_HOST). The failing one runs in
this process (it changes its answer); the healthy one is bench.receiver in a process of its own,
so that the arrival times of its timers are not held up behind the failing destination's 10,000
requests in one event loop.

Prints the requests the failing destination received while down (the attempts spent: those in
flight when the breaker opened, then one probe per cool-down in the whole cluster), whether every
timer of both was delivered once, how long the held timers took to go out after the recovery, and
the healthy timers' lateness: all of them, and those due after the first two seconds (the burst
of `DOWN` timers claimed at once is behind the first ones).

    python -m bench.destinations_outage [SERVER_URL] [--down N] [--up N] [--outage S]
        [--instances I] [--cooldown S] [--backoff-cap S]

SERVER_URL (default: DATABASE_URL, else postgresql://postgres@127.0.0.1:5432/postgres) is a
PostgreSQL server: a `bench_...` database is made on it for the run and dropped after.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from aiohttp import web

from bench.destinations_flow import drop_database
from bench.harness import Receiver as LeanReceiver
from bench.harness import connect, fresh_database, start_instances
from bench.loadgen import Client
from tests.support.receiver import serve_on_loopback

HEALTHY_TAIL_SECONDS = 10.0  # healthy timers keep coming due this long after the outage
SETTLED_AFTER_SECONDS = 2.0  # lateness is also shown for timers due after this


class Receiver:
    """Answers `status`; records (timer id, arrival time, status answered)."""

    def __init__(self, status: int, host: str = "127.0.0.1") -> None:
        self.status = status
        self.host = host
        self.seen: list[tuple[int, float, int]] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner, self.port = await serve_on_loopback(app, self.host)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        await request.read()
        status = self.status
        self.seen.append((int(request.headers.get("X-Timer-Id", "-1")), time.time(), status))
        return web.Response(status=status)

    def delivered(self) -> Counter[int]:
        return Counter(t for t, _, s in self.seen if s < 300)


def quantile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(len(values) * q))]


async def run(server_url: str, args: argparse.Namespace) -> dict[str, Any]:
    database_url = await fresh_database(server_url)
    down = Receiver(503)
    await down.start()
    procs = []
    up_records: list[tuple[int, float, str]] = []
    up: LeanReceiver | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="bench-outage-") as tmp:
            up = LeanReceiver(Path(tmp), host="127.0.0.2")
            up.start()
            procs = start_instances(
                database_url,
                Path(tmp),
                "outage",
                args.instances,
                SCHEDULER_BREAKER_COOLDOWN_SECONDS=str(args.cooldown),
                SCHEDULER_MAX_ATTEMPTS="100",
                **(
                    {}
                    if args.backoff_cap is None
                    else {
                        "SCHEDULER_BACKOFF_BASE_SECONDS": str(args.backoff_cap),
                        "SCHEDULER_BACKOFF_CAP_SECONDS": str(args.backoff_cap),
                    }
                ),
            )
            for proc in procs:
                await proc.wait_ready()
            conn = await connect(database_url)
            try:
                span = args.outage + HEALTHY_TAIL_SECONDS
                start = await conn.fetchval("SELECT now() + interval '1 s'")
                up_rows = await conn.fetch(
                    "INSERT INTO timers (url, due_at, destination)"
                    " SELECT $1, $2::timestamptz + make_interval(secs => $3::float8 * i / $4::int), $5"
                    " FROM generate_series(0, $4::int - 1) AS i RETURNING id, due_at",
                    up.url,
                    start,
                    span,
                    args.up,
                    f"http://{up.host}:{up.port}",
                )
                down_ids = [
                    r["id"]
                    for r in await conn.fetch(
                        "INSERT INTO timers (url, due_at, destination)"
                        " SELECT $1, $2::timestamptz, $3 FROM generate_series(1, $4::int) RETURNING id",
                        f"http://127.0.0.1:{down.port}/hook",
                        start,
                        f"http://127.0.0.1:{down.port}",
                        args.down,
                    )
                ]
                started = time.monotonic()
                await asyncio.sleep(1.0 + args.outage)
                while_down = len(down.seen)
                breaker = await conn.fetchval(
                    "SELECT breaker_state FROM destinations WHERE key = $1", f"http://127.0.0.1:{down.port}"
                )
                down.status = 200
                recovered_at = time.monotonic()
                recovered_wall = time.time()
                deadline = recovered_at + 120 + args.down / 100  # bounded in time
                async with Client(up.url, timeout=10.0) as client:
                    while time.monotonic() < deadline:
                        if len(down.delivered()) >= args.down and await up.count(client) >= args.up:
                            break
                        await asyncio.sleep(0.2)
                drained_in = time.monotonic() - recovered_at
                await asyncio.sleep(1.0)  # late duplicates would arrive by now
                attempts = await conn.fetchval(
                    "SELECT sum(attempts) FROM timers WHERE id = ANY($1::bigint[])", down_ids
                )
            finally:
                await conn.close()
            for proc in procs:
                proc.terminate()
            up_records = up.stop()
    finally:
        for proc in procs:
            proc.ensure_stopped()
        if up is not None and up.process is not None and up.process.poll() is None:
            up.process.kill()  # the run failed before its records were read
            up.process.wait()
        await down.stop()
        await drop_database(server_url, database_url)
    due = {r["id"]: r["due_at"].timestamp() for r in up_rows}
    first_seen: dict[int, float] = {}
    for timer_id, arrived, _ in up_records:
        if timer_id in due:
            first_seen.setdefault(timer_id, arrived)
    lateness = sorted((at - due[t]) * 1000 for t, at in first_seen.items())
    settled = sorted(
        (at - due[t]) * 1000
        for t, at in first_seen.items()
        if due[t] - start.timestamp() >= SETTLED_AFTER_SECONDS
    )
    down_delivered, up_delivered = down.delivered(), Counter(t for t, _, _ in up_records)
    out_at: dict[int, float] = {}
    for timer_id, arrived, status in down.seen:
        if status < 300:
            out_at.setdefault(timer_id, arrived - recovered_wall)
    after_recovery = sorted(out_at.values())
    # The healthy timers due while the failing destination's backlog went out (from the recovery
    # until 99 % of it had arrived; the rest are retries waiting for their backoff), and the
    # others: what the release costs the other destinations.
    release_end = recovered_wall + (quantile(after_recovery, 0.99) if after_recovery else 0.0)
    releasing = sorted(
        (at - due[t]) * 1000 for t, at in first_seen.items() if recovered_wall <= due[t] <= release_end
    )
    steady = sorted(
        (at - due[t]) * 1000
        for t, at in first_seen.items()
        if due[t] - start.timestamp() >= SETTLED_AFTER_SECONDS and not recovered_wall <= due[t] <= release_end
    )
    # The five seconds (from the first due time) whose healthy timers were latest, and the recovery's.
    by_second: dict[int, float] = {}
    for t, at in first_seen.items():
        second = int(due[t] - start.timestamp())
        by_second[second] = max(by_second.get(second, 0.0), (at - due[t]) * 1000)
    worst = sorted(by_second.items(), key=lambda item: -item[1])[:5]
    return {
        "worst_seconds": worst,
        "recovered_second": int(recovered_wall - start.timestamp()),
        "elapsed_s": time.monotonic() - started,
        "while_down": while_down,
        "breaker_then": breaker,
        "attempts": attempts,
        "requests": len(down.seen),
        "down_delivered": len(down_delivered),
        "down_doubled": sum(1 for n in down_delivered.values() if n > 1),
        "drained_in_s": drained_in,
        "after_recovery": after_recovery,
        "up_delivered": len(up_delivered),
        "up_doubled": sum(1 for n in up_delivered.values() if n > 1),
        "lateness": lateness,
        "settled": settled,
        "releasing": releasing,
        "steady": steady,
    }


def report(args: argparse.Namespace, result: dict[str, Any]) -> None:
    print(
        f"{args.instances} instances; failing destination: {args.down:,} timers due at once, 503 for "
        f"{args.outage:g} s, cool-down {args.cooldown:g} s; healthy: {args.up:,} timers due over "
        f"{args.outage + HEALTHY_TAIL_SECONDS:g} s"
    )
    print(
        f"  requests to the failing destination while down: {result['while_down']:,} "
        f"(breaker then: {result['breaker_then']})"
    )
    print(f"  attempts of its timers at the end: {result['attempts']:,} (= requests: {result['requests']:,})")
    print(
        f"  delivered after the recovery: {result['down_delivered']:,} of {args.down:,} "
        f"(doubled {result['down_doubled']}) within {result['drained_in_s']:.1f} s"
    )
    if result["after_recovery"]:
        out = result["after_recovery"]
        print(
            f"  seconds from the recovery to each one's delivery: p50 {statistics.median(out):.1f}, "
            f"p99 {quantile(out, 0.99):.1f}, max {out[-1]:.1f} (those that failed while down wait "
            f"for their retry's backoff)"
        )
    print(f"  healthy: delivered {result['up_delivered']:,} of {args.up:,} (doubled {result['up_doubled']})")
    for name, values in (
        ("all", result["lateness"]),
        (f"due after {SETTLED_AFTER_SECONDS:g} s", result["settled"]),
        ("due while the backlog went out", result["releasing"]),
        (f"due after {SETTLED_AFTER_SECONDS:g} s, not then", result["steady"]),
    ):
        if values:
            print(
                f"  healthy lateness ms, {name}: p50 {statistics.median(values):.1f}, "
                f"p99 {quantile(values, 0.99):.1f}, max {values[-1]:.1f}"
            )
    print(
        f"  healthy timers' latest seconds (from the first due time; the recovery at "
        f"{result['recovered_second']} s): "
        + ", ".join(f"{second} s: max {late:.0f} ms" for second, late in result["worst_seconds"])
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument(
        "server_url",
        nargs="?",
        default=os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--down", type=int, default=10_000)
    parser.add_argument("--up", type=int, default=7_000)
    parser.add_argument("--outage", type=float, default=60.0)
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--cooldown", type=float, default=5.0)
    parser.add_argument(
        "--backoff-cap", type=float, default=None, help="the retries' base and cap (default: the service's)"
    )
    args = parser.parse_args()
    report(args, asyncio.run(run(args.server_url, args)))


if __name__ == "__main__":
    main()
