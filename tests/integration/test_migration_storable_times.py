"""Migration 0006: a database that already holds poison rows (-infinity times, from before the API
refused them) upgrades without failing; the rows are quarantined with the reason and the CHECK
constraints then keep any new one out."""

from __future__ import annotations

import asyncpg
import pytest

from task_scheduler.db import asyncpg_dsn, create_engine, migrate
from tests.support.migrations import schema_at


async def test_upgrade_quarantines_poison_rows_then_constrains(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=1)
    await schema_at(engine, "0005")
    db = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        insert = "INSERT INTO timers (url, due_at, status, lease_owner, lease_expires_at, deliver_before)"
        poison = await db.fetchval(
            f"{insert} VALUES ('http://a/', '-infinity', 'pending', NULL, NULL, NULL) RETURNING id"
        )
        firing = await db.fetchval(
            f"{insert} VALUES ('http://b/', '1900-01-01Z', 'firing', 'old', now(), 'infinity') RETURNING id"
        )
        cutoff = await db.fetchval(
            f"{insert} VALUES ('http://c/', now(), 'pending', NULL, NULL, 'infinity') RETURNING id"
        )
        done = await db.fetchval(
            f"{insert} VALUES ('http://d/', '-infinity', 'delivered', NULL, NULL, NULL) RETURNING id"
        )
        fine = await db.fetchval(
            f"{insert} VALUES ('http://e/', now(), 'pending', NULL, NULL, NULL) RETURNING id"
        )
        fine_before = await db.fetchrow("SELECT * FROM timers WHERE id = $1", fine)

        await migrate(engine)

        rows = {r["id"]: r for r in await db.fetch("SELECT * FROM timers")}
        assert rows[poison]["status"] == "failed"
        assert rows[poison]["last_error"] == "unprocessable: due_at was -infinity"
        assert rows[firing]["status"] == "failed"
        assert rows[firing]["last_error"].startswith("unprocessable: due_at was 1900-01-01")
        assert rows[firing]["last_error"].endswith("; deliver_before was infinity")
        assert rows[firing]["lease_owner"] is None
        assert rows[firing]["lease_expires_at"] is None
        assert rows[cutoff]["status"] == "failed"
        assert rows[cutoff]["last_error"] == "unprocessable: deliver_before was infinity"
        assert rows[done]["status"] == "delivered"  # finished: only the time is repaired
        assert rows[done]["last_error"] is None
        for row in rows.values():
            assert row["due_at"].tzinfo is not None  # finite: asyncpg reads it back as an aware time
            assert row["deliver_before"] is None or row["deliver_before"].tzinfo is not None
        # Later migrations add columns: the row keeps every column it had, unchanged.
        before = dict(fine_before)
        assert {name: rows[fine][name] for name in before} == before
        constraints = set(
            await db.fetchval(
                "SELECT array_agg(conname) FROM pg_constraint WHERE conrelid = 'timers'::regclass"
            )
        )
        assert {"ck_timers_due_at_storable", "ck_timers_deliver_before_storable"} <= constraints
        with pytest.raises(asyncpg.CheckViolationError):
            await db.execute("INSERT INTO timers (url, due_at) VALUES ('http://f/', '-infinity')")
        with pytest.raises(asyncpg.CheckViolationError):
            await db.execute("UPDATE timers SET deliver_before = '1969-12-31Z' WHERE id = $1", fine)
    finally:
        await db.close()
        await engine.dispose()
