"""Migration 0016: `destinations` gets nullable `failing_since` and `disabled_at`, and an empty
`history`; a breaker open
at the upgrade counts as failing since it last opened, a closed one as not failing; the downgrade
drops only what it added."""

from __future__ import annotations

import asyncpg

from task_scheduler.db import asyncpg_dsn, create_engine, migrate, schema_is_current
from tests.support.migrations import column_names, downgrade_to, schema_at

NEW_COLUMNS = {"failing_since", "disabled_at", "history"}


async def test_upgrade_dates_open_breakers_failing_and_downgrade_removes_the_columns(
    database_url: str,
) -> None:
    engine = create_engine(database_url, pool_size=1)
    db = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await schema_at(engine, "0015")
        assert not NEW_COLUMNS & await column_names(db, "destinations")
        await db.execute(
            "INSERT INTO destinations (tenant, key, breaker_state, consecutive_failures, opened_at) VALUES"
            " ('t', 'open', 'open', 7, now() - interval '1 hour'),"
            " ('t', 'probing', 'half_open', 9, now() - interval '2 hours'),"
            " ('t', 'closed', 'closed', 1, now() - interval '3 hours')"
        )
        before = {r["key"]: dict(r) for r in await db.fetch("SELECT * FROM destinations")}

        await migrate(engine)

        assert await schema_is_current(engine)
        after = {r["key"]: dict(r) for r in await db.fetch("SELECT * FROM destinations")}
        assert {
            k: (row.pop("failing_since"), row.pop("disabled_at"), row.pop("history"))
            for k, row in after.items()
        } == {
            "open": (before["open"]["opened_at"], None, "[]"),
            "probing": (before["probing"]["opened_at"], None, "[]"),
            "closed": (None, None, "[]"),
        }
        assert after == before

        await downgrade_to(engine, "0015")
        assert not NEW_COLUMNS & await column_names(db, "destinations")
        assert {r["key"]: dict(r) for r in await db.fetch("SELECT * FROM destinations")} == before
    finally:
        await db.close()
        await engine.dispose()
