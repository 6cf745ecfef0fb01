"""What flow control's two partial indexes on timers cost the unlimited path (issue 16): median
and p90 of inserting 1,000 timers (the repository's insert, one statement) and of one claim of
500 among 20,000 due, with the indexes and without them (dropped), alternating, rolled back.

    python -m bench.destinations_flow_cost postgresql://postgres@127.0.0.1:5432/scratch

It drops and recreates the public schema of the database it is given.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from task_scheduler.db import create_engine, migrate
from task_scheduler.timers import repository
from task_scheduler.timers.repository import NewTimer

RUNS = 15
INDEXES = {
    "ix_timers_pending_destination": "ON timers (tenant, destination, due_at, id)"
    " WHERE status = 'pending' AND destination IS NOT NULL",
    "ix_timers_firing_destination": "ON timers (tenant, destination) WHERE status = 'firing' AND flow_claimed",
}
BATCH = [NewTimer(url="http://up.example/x", delay_seconds=-1.0)] * 1000


async def once(engine: AsyncEngine) -> tuple[float, float]:
    async with engine.connect() as conn:
        transaction = await conn.begin()
        started = time.perf_counter()
        await repository.insert_timers(conn, timers=BATCH, notify_within=0)
        inserted = time.perf_counter()
        claim = await repository.claim_due(
            conn, owner="bench", lookahead_seconds=2, lease_seconds=60, limit=500
        )
        claimed = time.perf_counter()
        await transaction.rollback()
    assert len(claim.timers) == 500
    return (inserted - started) * 1000, (claimed - inserted) * 1000


async def main(url: str) -> None:
    engine = create_engine(url, pool_size=2)
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await migrate(engine)
    async with engine.begin() as conn:
        for _ in range(20):
            await repository.insert_timers(conn, timers=BATCH, notify_within=0)
        await conn.execute(text("ANALYZE timers"))
    took: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    for run in range(2 * RUNS):
        with_indexes = run % 2 == 0
        async with engine.begin() as conn:
            for name, definition in INDEXES.items():
                if with_indexes:
                    await conn.execute(text(f"CREATE INDEX IF NOT EXISTS {name} {definition}"))
                else:
                    await conn.execute(text(f"DROP INDEX IF EXISTS {name}"))
        took[with_indexes].append(await once(engine))
    for with_indexes in (False, True):
        inserts = sorted(t[0] for t in took[with_indexes])
        claims = sorted(t[1] for t in took[with_indexes])
        print(
            f"| {'with' if with_indexes else 'without'} the two indexes | "
            f"{statistics.median(inserts):.1f} / {inserts[int(RUNS * 0.9)]:.1f} ms | "
            f"{statistics.median(claims):.1f} / {claims[int(RUNS * 0.9)]:.1f} ms |"
        )
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
