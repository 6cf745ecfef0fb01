"""Bulk cancel by label at scale (issue 16): with BENCH_BULK_ROWS (1,000,000) pending timers
carrying one label, `POST /timers/bulk` cancels them all while creates and firing go on.
Measured: create p99 (open loop) while the job runs against the same load before it and after
it (target: within 2x of their mean), the time the job takes, and correctness: every labelled
timer cancelled, no timer created meanwhile touched, every timer due meanwhile delivered once."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy.engine import make_url

from bench.common import BODY, Row, correctness
from bench.harness import (
    Delivered,
    Receiver,
    closed_loop,
    connect,
    fresh_database,
    insert_due,
    open_loop,
    start_service,
)

RATE = 200  # creates/s, and as many fires/s, before, during and after the job
SECONDS = 10
CHUNK = 250_000  # rows per fill transaction
LABEL = {"campaign": "spring"}

# Due from tomorrow over 30 days, all with the label the job cancels by; creates and fires go on
# beside them with no label.
_FILL = """
INSERT INTO timers (url, due_at, labels)
SELECT 'https://hooks.example.com/reminder/' || i, now() + interval '1 day' + random() * interval '30 days',
       '{"campaign": "spring"}'::jsonb
FROM generate_series($1::bigint, $2::bigint - 1) AS i
"""


async def bulk_cancel(server_url: str, workdir: Path, rows: int | None = None) -> Row:
    rows = rows or int(os.environ.get("BENCH_BULK_ROWS", "1000000"))
    database_url = await fresh_database(server_url)
    # The million rows are the default tenant's, as the creates are: its pending cap (1,000,000 by
    # default) raised by as many.
    cap = str(rows + 1_000_000)
    proc = start_service(database_url, workdir, "bulk-cancel", SCHEDULER_MAX_PENDING_PER_TENANT=cap)
    receiver = Receiver(workdir)
    receiver.start()
    conn = await connect(database_url)
    try:
        await proc.wait_ready()
        fill_s = await _fill(conn, rows)
        await closed_loop(f"{proc.base_url}/timer", 16, 1.0, BODY)  # warm up
        before, before_ids = await _load(conn, proc.base_url, receiver.url)
        async with aiohttp.ClientSession() as session:
            body = {"action": "cancel", "filter": {"labels": LABEL}}
            async with session.post(f"{proc.base_url}/timers/bulk", json=body) as response:
                assert response.status == 202, await response.text()
                job_id = (await response.json())["job_id"]
            started = time.monotonic()
            watch = asyncio.create_task(
                _wait_for_job(session, f"{proc.base_url}/timers/bulk/{job_id}", within=3600)
            )
            during, during_ids = await _load(conn, proc.base_url, receiver.url)
            ran_during = not watch.done()  # the whole measured window fell inside the job
            job, job_s = await watch
            job_s -= started
        # the same load after the job: the baseline is the mean of before and after (a shared
        # machine's speed drifts)
        after, after_ids = await _load(conn, proc.base_url, receiver.url)
        await receiver.wait_for(3 * RATE * SECONDS, within=120)
        await asyncio.sleep(1.0)  # late duplicates would arrive by now
        due = {
            r["id"]: r["due"]
            for r in await conn.fetch(
                "SELECT id, extract(epoch FROM due_at)::float8 AS due FROM timers WHERE url = $1",
                receiver.url,
            )
        }
        cancelled = await conn.fetchval(
            "SELECT count(*) FROM timers WHERE status = 'cancelled' AND labels @> $1::jsonb",
            '{"campaign": "spring"}',
        )
        created_touched = await conn.fetchval(
            "SELECT count(*) FROM timers WHERE id = ANY($1::bigint[]) AND status <> 'pending'",
            [*before_ids, *during_ids, *after_ids],
        )
    finally:
        await conn.close()
        proc.terminate()
        records = receiver.stop()
        await _drop(server_url, database_url)  # a million rows are not worth keeping
    delivered = Delivered.check(records, due)
    without = (before["create"]["p99_ms"] + after["create"]["p99_ms"]) / 2
    ratio = during["create"]["p99_ms"] / max(without, 0.001)
    job_ok = job["state"] == "done" and job["done"] == rows and cancelled == rows and created_touched == 0
    create_errors = sum(run["create"]["errors"] for run in (before, during, after))
    return Row(
        f"bulk cancel by label of {rows:,} pending timers, creates and fires at {RATE}/s each beside it"
        " (pending cap per tenant raised above them)",
        f"create p99 {during['create']['p99_ms']:.1f} ms during vs {without:.1f} ms without, mean of"
        f" before and after (x{ratio:.2f}); job done in {job_s:.0f} s ({rows / job_s:,.0f} timers/s);"
        f" first-attempt lateness p99 {during['lateness_p99_ms']:.0f} ms during vs"
        f" {before['lateness_p99_ms']:.0f} / {after['lateness_p99_ms']:.0f} ms before / after",
        "create p99 within 2x; every labelled timer cancelled, nothing else; 0 lost",
        ratio <= 2.0 and job_ok and create_errors == 0 and delivered.lost == 0 and delivered.duplicates == 0,
        correctness(delivered) + f"; create errors {create_errors}; job {job['state']}, done {job['done']:,},"
        f" skipped {job['skipped']}; cancelled {cancelled:,}; created meanwhile and changed {created_touched}"
        + ("" if ran_during else "; the job ended before the measured window did"),
        {
            "fill_s": fill_s,
            "before": before,
            "during": during,
            "after": after,
            "job": {k: job[k] for k in ("state", "matched", "done", "skipped")},
            "job_s": round(job_s, 1),
            "lateness": delivered.summary(),
        },
    )


async def _drop(server_url: str, database_url: str) -> None:
    admin = await connect(server_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{make_url(database_url).database}" WITH (FORCE)')
    finally:
        await admin.close()


async def _fill(conn: Any, rows: int) -> float:
    started = time.monotonic()
    for start in range(0, rows, CHUNK):
        await conn.execute(_FILL, start, min(start + CHUNK, rows))
        print(f"[bulk_cancel] filled {min(start + CHUNK, rows):,} of {rows:,} rows", flush=True)
    await conn.execute("VACUUM ANALYZE timers")
    return round(time.monotonic() - started, 1)


async def _load(conn: Any, base_url: str, receiver_url: str) -> tuple[dict[str, Any], list[int]]:
    """RATE fires/s due over the next SECONDS (inserted by SQL) while RATE creates/s go through
    the API (open loop); the create figures, the fires' lateness once delivered, and the ids of
    the timers created."""
    after_id = await conn.fetchval("SELECT coalesce(max(id), 0) FROM timers")
    await insert_due(conn, receiver_url, RATE * SECONDS, 0.5, SECONDS)
    fires_from = await conn.fetchval("SELECT coalesce(max(id), 0) FROM timers")
    create = await open_loop(f"{base_url}/timer", RATE, SECONDS, BODY)
    created = [
        r["id"]
        for r in await conn.fetch("SELECT id FROM timers WHERE id > $1 AND url = $2", fires_from, BODY["url"])
    ]
    await asyncio.sleep(2.0)  # the last fires go out
    late = await conn.fetchval(
        "SELECT percentile_disc(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM a.started_at - t.due_at) * 1000)"
        " FROM timers t JOIN timer_attempts a ON a.timer_id = t.id AND a.attempt = 1"
        " WHERE t.id > $1 AND t.id <= $2",
        after_id,
        fires_from,
    )
    return {"create": create, "lateness_p99_ms": float(late or 0.0)}, created


async def _wait_for_job(
    session: aiohttp.ClientSession, url: str, *, within: float
) -> tuple[dict[str, Any], float]:
    """The job once finished (or after `within` seconds), and the monotonic time it was seen so."""
    deadline = time.monotonic() + within
    while True:
        async with session.get(url) as response:
            job: dict[str, Any] = await response.json()
        if job["state"] not in ("queued", "running") or time.monotonic() > deadline:
            return job, time.monotonic()
        await asyncio.sleep(0.5)
