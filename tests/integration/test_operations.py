"""Metrics, readiness and retention, in-process on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from typing import Any

import asyncpg

from task_scheduler.app import create_app
from task_scheduler.config import Settings
from task_scheduler.db import asyncpg_dsn, create_engine
from task_scheduler.timers.retention import Housekeeper
from tests.support.app import running_app
from tests.support.polling import WAIT, wait_for_status
from tests.support.receiver import Receiver, always


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus exposition text (0 if absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = "^" + re.escape(name) + (r"\{" + re.escape(wanted) + r"\}" if wanted else "") + r" (\S+)$"
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def test_metrics_count_what_happens(service: Callable[..., Any], receiver: Receiver) -> None:
    async with service(stats_interval_seconds=0.2) as client:
        before = (await client.get("/metrics")).text
        ok = (await client.post("/timer", json={"seconds": 0, "url": receiver.url})).json()["timer_id"]
        await wait_for_status(client, ok, "delivered", 20.0)
        receiver.respond = always(500)
        bad = (await client.post("/timer", json={"url": receiver.url, "retry": {"max_attempts": 1}})).json()
        await wait_for_status(client, bad["timer_id"], "failed", 20.0)
        await client.post("/timer", json={"hours": 1, "url": receiver.url})
        await client.get("/timer/999999")

        def settled(text: str) -> bool:
            # The gauges refresh every 0.2 s here, and the writer counts an outcome a moment after
            # the API can read it: wait (however slow the machine) for what the asserts check below.
            return (
                sample(text, "scheduler_pending_timers") == 1
                and sample(text, "scheduler_overdue_timers") == 0
                and sample(text, "scheduler_deliveries_total", outcome="failed")
                > sample(before, "scheduler_deliveries_total", outcome="failed")
            )

        deadline = time.monotonic() + WAIT
        response = await client.get("/metrics")
        while not settled(response.text) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            response = await client.get("/metrics")
    after = response.text
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")

    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert delta("scheduler_timers_created_total") == 3
    assert delta("scheduler_deliveries_total", outcome="delivered") == 1
    assert delta("scheduler_deliveries_total", outcome="failed") == 1
    assert delta("scheduler_webhook_requests_total", result="2xx") == 1
    assert delta("scheduler_webhook_requests_total", result="5xx") == 1
    assert delta("scheduler_firing_lateness_seconds_count") == 2
    assert delta("scheduler_delivery_duration_seconds_count") == 2
    assert delta("scheduler_timers_claimed_total") == 2
    assert sample(after, "scheduler_pending_timers") == 1
    assert sample(after, "scheduler_overdue_timers") == 0
    assert delta("scheduler_http_requests_total", method="POST", route="/timer", status="201") == 3
    assert delta("scheduler_http_requests_total", method="GET", route="/timer/{timer_id}", status="404") == 1
    assert "scheduler_http_request_duration_seconds_bucket" in after


async def test_retention_deletes_only_old_finished_timers(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    settings = make_settings(retention_seconds=3600, retention_batch_size=2)
    async with running_app(create_app(settings, run_dispatcher=False)) as client:
        ids = [
            (await client.post("/timer", json={"hours": 1, "url": "http://example.com/"})).json()["timer_id"]
            for _ in range(7)
        ]
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        # five finished long ago (one per final status, plus one more), one finished just now, one pending
        await conn.execute(
            "UPDATE timers SET status = s.status, updated_at = now() - interval '2 hours'"
            " FROM (SELECT unnest($1::bigint[]) AS id, unnest($2::text[]) AS status) s WHERE timers.id = s.id",
            ids[:5],
            ["delivered", "failed", "expired", "cancelled", "delivered"],
        )
        await conn.execute("UPDATE timers SET status = 'delivered' WHERE id = $1", ids[5])
        await conn.execute(
            "INSERT INTO timer_attempts (timer_id, attempt, started_at, duration_ms) VALUES ($1, 1, now(), 1)",
            ids[0],
        )
        engine = create_engine(database_url, pool_size=1)
        try:
            deleted = await Housekeeper(engine=engine, settings=settings).apply_retention()
        finally:
            await engine.dispose()
        left = {r["id"]: r["status"] for r in await conn.fetch("SELECT id, status FROM timers")}
        attempts = await conn.fetchval("SELECT count(*) FROM timer_attempts")
    finally:
        await conn.close()
    assert deleted == 5  # in batches of 2: 2 + 2 + 1
    assert left == {ids[5]: "delivered", ids[6]: "pending"}
    assert attempts == 0  # cascaded


async def test_stale_idempotency_keys_are_dropped(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    settings = make_settings(idempotency_window_seconds=60)
    async with running_app(create_app(settings, run_dispatcher=False)) as client:
        for key in ("old", "fresh"):
            await client.post(
                "/timer", json={"hours": 1, "url": "http://example.com/"}, headers={"Idempotency-Key": key}
            )
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await conn.execute(
            "UPDATE idempotency_keys SET created_at = now() - interval '2 minutes' WHERE key = 'old'"
        )
        engine = create_engine(database_url, pool_size=1)
        try:
            await Housekeeper(engine=engine, settings=settings).apply_retention()
        finally:
            await engine.dispose()
        keys = {r["key"] for r in await conn.fetch("SELECT key FROM idempotency_keys")}
    finally:
        await conn.close()
    assert keys == {"fresh"}


async def test_slow_gauge_counts_are_spaced_out(
    make_settings: Callable[..., Settings], database_url: str, monkeypatch: Any
) -> None:
    """Counting pending timers is linear in the table (seconds at 10,000,000 rows): over a million,
    the next count waits 50 times as long as the last took, so the gauges cost at most ~2 %."""
    settings = make_settings(stats_interval_seconds=0.01, retention_interval_seconds=3600)
    engine = create_engine(database_url, pool_size=1)
    keeper = Housekeeper(engine=engine, settings=settings)
    counts = 0
    real_refresh = keeper.refresh_gauges

    async def slow_refresh() -> int:
        nonlocal counts
        counts += 1
        await real_refresh()  # the real count, as if over a big table: 200 ms more, 2,000,000
        await asyncio.sleep(0.2)
        return 2_000_000

    monkeypatch.setattr(keeper, "refresh_gauges", slow_refresh)
    await keeper.start()
    try:
        await asyncio.sleep(1.5)  # every 10 ms without the spacing; one count with it (next in 10 s)
    finally:
        await keeper.stop()
        await engine.dispose()
    assert counts == 1
