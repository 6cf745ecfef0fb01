"""Flow control across instances (issue 16): `DESTINATIONS` destinations each limited to `RATE`
requests a second (burst: one second's worth unless given) and `PARALLELISM` in flight, `INSTANCES` service
processes on one scratch database, `TIMERS` timers due at once spread over the destinations
(explicit destination keys, one real receiver on 127.0.0.1 that holds each request `HOLD_MS`).

Prints, per destination, its observed rate over every whole 5-s window after its first second
(target: within 5 % of the limit), the most requests it had in flight at once against its
parallelism, the most requests in any 1-s window against rate + burst, and lost / doubled.

    python -m bench.destinations_flow [SERVER_URL] [--timers N] [--destinations D] [--rate R]
        [--burst B] [--parallelism P] [--instances I] [--hold-ms MS]

SERVER_URL (default: DATABASE_URL, else postgresql://postgres@127.0.0.1:5432/postgres) is a
PostgreSQL server: a `bench_...` database is made on it for the run and dropped after.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import web

from bench.common import Row
from bench.harness import connect, fresh_database, start_instances
from task_scheduler.db import asyncpg_dsn
from tests.support.receiver import serve_on_loopback

WINDOW_SECONDS = 5.0
SKIPPED_SECONDS = 1.0  # the first second carries the burst


@dataclass
class Receiver:
    """One receiver for every destination (told each timer's destination): records arrivals and
    counts each destination's requests in flight while it holds them `hold` seconds."""

    destination_of: dict[int, str]
    hold: float
    arrivals: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    seen: Counter[int] = field(default_factory=Counter)
    in_flight: Counter[str] = field(default_factory=Counter)
    most_in_flight: Counter[str] = field(default_factory=Counter)
    port: int = 0
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner, self.port = await serve_on_loopback(app)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        await request.read()
        timer_id = int(request.headers.get("X-Timer-Id", "-1"))
        destination = self.destination_of.get(timer_id, "?")
        self.arrivals[destination].append(time.time())
        self.seen[timer_id] += 1
        self.in_flight[destination] += 1
        self.most_in_flight[destination] = max(self.most_in_flight[destination], self.in_flight[destination])
        try:
            await asyncio.sleep(self.hold)
        finally:
            self.in_flight[destination] -= 1
        return web.Response(status=200)


def window_rates(arrivals: list[float]) -> list[float]:
    """Requests a second in each whole 5-s window from the first arrival + 1 s."""
    if not arrivals:
        return []
    arrivals = sorted(arrivals)
    start = arrivals[0] + SKIPPED_SECONDS
    windows = int((arrivals[-1] - start) // WINDOW_SECONDS)
    counts = [0] * windows
    for at in arrivals:
        index = math.floor((at - start) / WINDOW_SECONDS)
        if 0 <= index < windows:
            counts[index] += 1
    return [c / WINDOW_SECONDS for c in counts]


def most_in_any_window(arrivals: list[float], seconds: float) -> int:
    arrivals = sorted(arrivals)
    most, end = 0, 0
    for start, at in enumerate(arrivals):
        while end < len(arrivals) and arrivals[end] < at + seconds:
            end += 1
        most = max(most, end - start)
    return most


async def run(server_url: str, args: argparse.Namespace) -> dict[str, Any]:
    database_url = await fresh_database(server_url)
    keys = [f"flow-{i}" for i in range(args.destinations)]
    burst = args.burst or max(1, math.ceil(args.rate))
    receiver = Receiver({}, args.hold_ms / 1000)
    await receiver.start()
    procs = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-flow-") as tmp:
            procs = start_instances(
                database_url, Path(tmp), "flow", args.instances, SCHEDULER_LOG_LEVEL="WARNING"
            )
            for proc in procs:
                await proc.wait_ready()
            conn = await connect(database_url)
            try:
                await conn.executemany(
                    "INSERT INTO destinations (tenant, key, rate_per_second, burst, parallelism)"
                    " VALUES ('default', $1, $2, $3, $4)",
                    [(key, args.rate, burst, args.parallelism) for key in keys],
                )
                rows = await conn.fetch(
                    "INSERT INTO timers (url, due_at, destination)"
                    " SELECT $1, now() + interval '2 s', 'flow-' || (i % $2::int)"
                    " FROM generate_series(0, $3::int - 1) AS i RETURNING id, destination",
                    f"http://127.0.0.1:{receiver.port}/hook",
                    args.destinations,
                    args.timers,
                )
                receiver.destination_of.update({r["id"]: r["destination"] for r in rows})
                expected = args.timers / (args.destinations * args.rate)
                deadline = time.monotonic() + 2 + expected * 2 + 30  # bounded in time
                while time.monotonic() < deadline and len(receiver.seen) < args.timers:  # noqa: ASYNC110 - a bounded poll
                    await asyncio.sleep(0.2)
                await asyncio.sleep(1.0)  # late duplicates would arrive by now
            finally:
                await conn.close()
            for proc in procs:
                proc.terminate()
    finally:
        for proc in procs:
            proc.ensure_stopped()
        await receiver.stop()
        await drop_database(server_url, database_url)
    per_destination = {}
    for key in keys:
        rates = window_rates(receiver.arrivals[key])
        per_destination[key] = {
            "delivered": len(receiver.arrivals[key]),
            "window_rates": rates,
            "most_in_flight": receiver.most_in_flight[key],
            "most_in_1s": most_in_any_window(receiver.arrivals[key], 1.0),
        }
    all_rates = [r for d in per_destination.values() for r in d["window_rates"]]
    return {
        "timers": args.timers,
        "lost": sum(1 for t in receiver.destination_of if receiver.seen[t] == 0),
        "doubled": sum(n - 1 for n in receiver.seen.values() if n > 1),
        "windows": len(all_rates),
        "rate_min": min(all_rates, default=float("nan")),
        "rate_max": max(all_rates, default=float("nan")),
        "worst_deviation_pct": max(
            (abs(r - args.rate) / args.rate * 100 for r in all_rates), default=float("nan")
        ),
        "most_in_flight": max(d["most_in_flight"] for d in per_destination.values()),
        "most_in_1s": max(d["most_in_1s"] for d in per_destination.values()),
        "bound_1s": args.rate + burst,
        "per_destination": per_destination,
    }


async def drop_database(server_url: str, database_url: str) -> None:
    name = database_url.rsplit("/", 1)[-1].split("?", 1)[0]
    admin = await asyncpg.connect(asyncpg_dsn(server_url))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def report(args: argparse.Namespace, result: dict[str, Any]) -> None:
    print(
        f"{args.destinations} destinations x {args.rate:g}/s (burst {result['bound_1s'] - args.rate:g}), "
        f"parallelism {args.parallelism}, {args.instances} instances, {args.timers:,} timers due at once, "
        f"receiver holds each request {args.hold_ms} ms"
    )
    for key, d in result["per_destination"].items():
        rates = ", ".join(f"{r:.1f}" for r in d["window_rates"])
        print(
            f"  {key}: delivered {d['delivered']}, 5-s windows/s [{rates}], most in flight "
            f"{d['most_in_flight']}, most in 1 s {d['most_in_1s']}"
        )
    print(
        f"5-s windows after the first second: {result['windows']}, rate {result['rate_min']:.1f}-"
        f"{result['rate_max']:.1f}/s, worst deviation {result['worst_deviation_pct']:.1f} % (target 5 %)"
    )
    print(
        f"most in flight {result['most_in_flight']} (parallelism {args.parallelism}); most in any 1 s "
        f"{result['most_in_1s']} (rate + burst {result['bound_1s']:g}); lost {result['lost']}, "
        f"doubled {result['doubled']}"
    )


async def flow_control(server_url: str, _workdir: Path) -> Row:
    """`make bench-full`'s row: the issue's scenario with its defaults."""
    args = _parser().parse_args([])
    result = await run(server_url, args)
    return Row(
        f"flow control: {args.destinations} destinations x {args.rate:g}/s, {args.instances} instances, "
        f"{args.timers:,} due at once",
        f"5-s windows {result['rate_min']:.1f}-{result['rate_max']:.1f}/s "
        f"(worst {result['worst_deviation_pct']:.1f} %), "
        f"most in flight {result['most_in_flight']} of {args.parallelism}",
        "each 5-s window after the first second within 5 % of the limit, parallelism held",
        result["worst_deviation_pct"] <= 5 and result["most_in_flight"] <= args.parallelism,
        f"lost {result['lost']}, duplicates {result['doubled']}",
        {k: v for k, v in result.items() if k != "per_destination"},
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("server_url", nargs="?", default=None)
    parser.add_argument("--timers", type=int, default=20_000)
    parser.add_argument("--destinations", type=int, default=10)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--burst", type=int, default=None, help="default: max(1, ceil(rate))")
    parser.add_argument("--parallelism", type=int, default=50)
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--hold-ms", type=int, default=20)
    return parser


def main() -> None:
    args = _parser().parse_args()
    server_url = (
        args.server_url or os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    report(args, asyncio.run(run(server_url, args)))


if __name__ == "__main__":
    main()
