"""The bulk-cancel benchmark end to end, scaled down (the real one takes minutes: `python -m
bench --full --only bulk_cancel`): a service, a few hundred labelled timers, three short load
windows; the row reports every labelled timer cancelled, nothing else touched, nothing lost, and
the scenario drops its database."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from bench import bulk_cancel, harness
from task_scheduler.db import asyncpg_dsn


async def test_a_small_run_cancels_the_labelled_timers_and_drops_its_database(
    pg_server_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk_cancel, "RATE", 20)
    monkeypatch.setattr(bulk_cancel, "SECONDS", 1)
    monkeypatch.setattr(bulk_cancel, "CHUNK", 200)  # two fill transactions
    created: list[str] = []

    async def fresh_database(server_url: str) -> str:
        url = await harness.fresh_database(server_url)
        created.append(make_url(url).database or "")
        return url

    monkeypatch.setattr(bulk_cancel, "fresh_database", fresh_database)
    row = await bulk_cancel.bulk_cancel(pg_server_url, tmp_path, rows=300)
    admin = await asyncpg.connect(asyncpg_dsn(pg_server_url))
    try:
        left = await admin.fetchval(
            "SELECT count(*) FROM pg_database WHERE datname = ANY($1::text[])", created
        )
    finally:
        await admin.close()
    assert (len(created), left) == (1, 0)
    assert row.details["job"] == {"state": "done", "matched": 300, "done": 300, "skipped": 0}
    assert "lost 0, duplicates 0, early 0; create errors 0; job done, done 300, skipped 0" in row.correctness
    assert "cancelled 300; created meanwhile and changed 0" in row.correctness
    assert row.details["lateness"]["timers"] == 60  # 20 fires/s for 1 s, three windows
