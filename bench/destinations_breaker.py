"""A destination down for a while (issue 16's breaker scenario, scaled down): the whole service in
this process on a scratch database, two real receivers on 127.0.0.1. `DOWN` timers go to a
destination that answers 503 for `OUTAGE` seconds, then 200; `UP` timers to a healthy one, due
spread over the outage. Prints the requests the failing destination received while down (the
attempts spent: five to open the breaker, the timers claimed before it opened, then one probe per
cool-down), whether every timer was delivered once, and the healthy timers' lateness.

    python -m bench.destinations_breaker postgresql://postgres@127.0.0.1:5432/scratch [DOWN UP OUTAGE]

It drops and recreates the public schema of the database it is given.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text

from bench.destinations_outage import Receiver
from task_scheduler.app import create_app
from task_scheduler.config import Settings
from task_scheduler.db import create_engine

COOLDOWN = 2.0


async def create_batch(client: httpx.AsyncClient, timers: list[dict[str, Any]]) -> list[int]:
    ids: list[int] = []
    for start in range(0, len(timers), 1000):
        answer = await client.post("/timers/batch", json={"timers": timers[start : start + 1000]})
        answer.raise_for_status()
        ids += [t["timer_id"] for t in answer.json()["timers"]]
    return ids


async def main(url: str, down_count: int, up_count: int, outage: float) -> None:
    engine = create_engine(url, pool_size=1)
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await engine.dispose()
    down, up = Receiver(503), Receiver(200)
    await down.start()
    await up.start()
    settings = Settings.model_validate(
        {
            "database_url": url,
            "breaker_cooldown_seconds": COOLDOWN,
            "webhook_allowed_networks": "127.0.0.0/8",
            "log_level": "ERROR",
            "backoff_base_seconds": 1.0,
            "backoff_cap_seconds": 5.0,
            "max_attempts": 100,
        }
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=60) as client:
            started = time.monotonic()
            now = datetime.now(UTC)
            down_url = f"http://127.0.0.1:{down.port}/hook"
            up_url = f"http://127.0.0.1:{up.port}/hook"
            down_ids = await create_batch(client, [{"seconds": 0, "url": down_url}] * down_count)
            step = outage / up_count
            due = {
                timer_id: now + timedelta(seconds=1 + i * step)
                for i, timer_id in enumerate(
                    await create_batch(
                        client,
                        [
                            {"fire_at": (now + timedelta(seconds=1 + i * step)).isoformat(), "url": up_url}
                            for i in range(up_count)
                        ],
                    )
                )
            }
            await asyncio.sleep(outage)
            while_down = len(down.seen)
            statuses = Counter(status for _, _, status in down.seen)
            down.status = 200
            deadline = time.monotonic() + 120 + down_count / 100
            while time.monotonic() < deadline:
                done = sum(1 for _, _, s in down.seen if s == 200) >= down_count
                if done and len(up.seen) >= up_count:
                    break
                await asyncio.sleep(0.2)
            recovered_in = time.monotonic() - started
            attempts = 0
            for start in range(0, len(down_ids), 500):
                for timer_id in down_ids[start : start + 500]:
                    attempts += (await client.get(f"/timer/{timer_id}")).json()["attempts"]
    delivered_down = Counter(t for t, _, s in down.seen if s == 200)
    delivered_up = Counter(t for t, _, s in up.seen if s == 200)
    lateness = sorted(
        (arrived - due[t].timestamp()) * 1000 for t, arrived, s in up.seen if s == 200 and t in due
    )
    await down.stop()
    await up.stop()
    print(
        f"down destination: {down_count} timers due at once, 503 for {outage:.0f} s, cool-down {COOLDOWN:g} s"
    )
    print(f"  requests while down: {while_down} ({dict(statuses)})")
    print(f"  attempts of its timers at the end: {attempts} (= requests: {len(down.seen)})")
    print(
        f"  delivered: {len(delivered_down)} of {down_count}, doubled: "
        f"{sum(1 for c in delivered_down.values() if c > 1)}, all within {recovered_in:.1f} s of the start"
    )
    print(
        f"healthy destination: {up_count} timers due over the outage, delivered {len(delivered_up)}, "
        f"doubled {sum(1 for c in delivered_up.values() if c > 1)}"
    )
    if lateness:
        p99 = lateness[min(len(lateness) - 1, int(len(lateness) * 0.99))]
        print(f"  lateness ms: p50 {statistics.median(lateness):.1f}, p99 {p99:.1f}, max {lateness[-1]:.1f}")


if __name__ == "__main__":
    args = sys.argv[1:]
    counts = (int(args[1]), int(args[2]), float(args[3])) if len(args) >= 4 else (10_000, 2_000, 20.0)
    asyncio.run(main(args[0], *counts))
