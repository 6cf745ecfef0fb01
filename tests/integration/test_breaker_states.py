"""The breaker's state machine (destinations/models.py) as the SQL makes it: each transition by
its one statement, on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from task_scheduler.db import create_engine
from task_scheduler.destinations import repository
from task_scheduler.destinations.models import BreakerState
from task_scheduler.destinations.repository import Change, Tally

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    made = create_engine(database_url, pool_size=1)
    yield made
    await made.dispose()


async def record(engine: AsyncEngine, *tallies: Tally) -> list[tuple[str, BreakerState, BreakerState, int]]:
    async with engine.begin() as conn:
        changes = await repository.record_outcomes(conn, tallies=tallies, threshold=3)
    return [(c.key, c.before, c.after, c.consecutive_failures) for c in changes]


async def state(db: asyncpg.Connection, key: str) -> tuple[str, int] | None:
    row = await db.fetchrow(
        "SELECT breaker_state, consecutive_failures FROM destinations WHERE key = $1", key
    )
    return None if row is None else (row[0], row[1])


async def test_consecutive_failures_open_and_an_answer_closes(
    engine: AsyncEngine, db: asyncpg.Connection
) -> None:
    assert await record(engine, Tally("t", "a", False, 2)) == []
    assert await state(db, "a") == ("closed", 2)
    assert await record(engine, Tally("t", "a", True, 1)) == []  # answered, then one failure: 1
    assert await state(db, "a") == ("closed", 1)
    assert await record(engine, Tally("t", "a", False, 2)) == [("a", CLOSED, OPEN, 3)]
    assert await db.fetchval("SELECT opened_at IS NOT NULL FROM destinations WHERE key = 'a'")
    assert await record(engine, Tally("t", "a", False, 1)) == []  # open stays open
    assert await record(engine, Tally("t", "a", True, 0)) == [("a", OPEN, CLOSED, 0)]
    assert await record(engine, Tally("t", "healthy", True, 0)) == []
    assert await state(db, "healthy") is None  # a healthy destination gets no row


async def test_one_probe_per_cool_down_and_its_outcome(engine: AsyncEngine, db: asyncpg.Connection) -> None:
    await record(engine, Tally("t", "a", False, 3))
    async with engine.begin() as conn:
        assert await repository.take_probes(conn, cooldown_seconds=3600, probe_seconds=60) == []
    await db.execute("UPDATE destinations SET opened_at = now() - interval '2 hours'")
    async with engine.begin() as conn:
        assert await repository.take_probes(conn, cooldown_seconds=3600, probe_seconds=60) == [("t", "a")]
        assert await repository.take_probes(conn, cooldown_seconds=3600, probe_seconds=60) == []  # taken
    assert await state(db, "a") == ("half_open", 3)
    assert await record(engine, Tally("t", "a", False, 1)) == [("a", HALF_OPEN, OPEN, 4)]  # probe failed
    assert await db.fetchval("SELECT opened_at > now() - interval '1 minute' FROM destinations")
    await db.execute(
        "UPDATE destinations SET breaker_state = 'half_open', probe_until = now() - interval '1 s'"
    )
    async with engine.begin() as conn:  # the probe's time ran out (its instance died): taken again
        assert await repository.take_probes(conn, cooldown_seconds=3600, probe_seconds=60) == [("t", "a")]
    assert await record(engine, Tally("t", "a", True, 0)) == [("a", HALF_OPEN, CLOSED, 0)]


async def test_resume_closes_and_unpauses(engine: AsyncEngine, db: asyncpg.Connection) -> None:
    await record(engine, Tally("t", "a", False, 5))
    async with engine.begin() as conn:
        await repository.update(conn, tenant="t", key="a", change=Change(frozenset({"paused"}), paused=True))
        assert await repository.holding(conn) == {("t", "a")}
        row, before = await repository.resume(conn, tenant="t", key="a")
        assert await repository.holding(conn) == set()
    assert (before, row.breaker_state, row.paused, row.consecutive_failures) == (OPEN, CLOSED, False, 0)
