"""The claim's cost with destinations (issue 16): median and p90 of one claim of 500 timers, main's
statement (no destination condition) against the service's, on 20,000 due timers, rolled back.

    python -m bench.destinations_claim postgresql://postgres@127.0.0.1:5432/scratch

It drops and recreates the public schema of the database it is given.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncEngine

from task_scheduler.db import create_engine, migrate
from task_scheduler.timers import repository
from task_scheduler.timers.repository import CLAIMED_TIMER, NewTimer, _select_list

WITHOUT_DESTINATIONS = text(f"""
UPDATE timers
SET status = 'firing', attempts = attempts + 1, lease_owner = :owner,
    lease_expires_at = greatest(due_at, now()) + make_interval(secs => CAST(:lease_seconds AS double precision)),
    updated_at = now()
WHERE id = ANY(ARRAY(
    SELECT id FROM timers
    WHERE status = 'pending'
      AND due_at <= now() + make_interval(secs => CAST(:lookahead_seconds AS double precision))
    ORDER BY due_at, id
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
))
RETURNING {_select_list(CLAIMED_TIMER, computed={"attempt": "attempts"})}
""")
PARAMS = {"owner": "bench", "lease_seconds": 60, "lookahead_seconds": 2, "limit": 500}
RUNS = 30
CASES = (
    ("no destination rows (all healthy)", "DELETE FROM destinations"),
    (
        "10,000 held timers of an open destination due first",
        "INSERT INTO destinations (tenant, key, breaker_state, opened_at)"
        " VALUES ('default', 'http://down.example:80', 'open', now())",
    ),
    (
        "and 10 more open destinations",
        "INSERT INTO destinations (tenant, key, breaker_state, opened_at)"
        " SELECT 'default', 'd' || g, 'open', now() FROM generate_series(1, 10) AS g",
    ),
)


async def timed(engine: AsyncEngine, statement: TextClause) -> tuple[float, float]:
    took = []
    for _ in range(RUNS):
        async with engine.connect() as conn:
            transaction = await conn.begin()
            started = time.perf_counter()
            claimed = len((await conn.execute(statement, PARAMS)).all())
            took.append((time.perf_counter() - started) * 1000)
            await transaction.rollback()
        assert claimed == PARAMS["limit"], claimed
    return statistics.median(took), sorted(took)[int(RUNS * 0.9)]


async def main(url: str) -> None:
    engine = create_engine(url, pool_size=2)
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await migrate(engine)
    async with engine.begin() as conn:
        for url_of, due_in in (("http://down.example/x", -60.0), ("http://up.example/x", -1.0)):
            timers = [NewTimer(url=url_of, delay_seconds=due_in)] * 1000
            for _ in range(10):
                await repository.insert_timers(conn, timers=timers, notify_within=0)
        await conn.execute(text("ANALYZE timers"))
    for label, setup in CASES:
        async with engine.begin() as conn:
            await conn.execute(text(setup))
        before = await timed(engine, WITHOUT_DESTINATIONS)
        after = await timed(engine, repository._CLAIM_DUE)
        print(
            f"| {label} | {before[0]:.1f} / {before[1]:.1f} ms | {after[0]:.1f} / {after[1]:.1f} ms |",
            flush=True,
        )
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
