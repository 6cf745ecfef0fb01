"""The schedule engine on a real PostgreSQL: claims racing on the same due runs (the dispatcher's
code path: claim_due, then schedules.engine.advance, in one transaction), catch-up after an
outage, and the end of a series."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from task_scheduler import metrics
from task_scheduler.db import create_engine
from task_scheduler.schedules import engine as schedule_engine
from task_scheduler.timers import repository
from task_scheduler.timers.repository import ClaimedTimer, Outcome
from tests.support.api import URL, when


@pytest.fixture
async def claim_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=8)
    yield engine
    await engine.dispose()


async def claim_and_fire(engine: AsyncEngine, owner: str, *, limit: int = 50) -> list[ClaimedTimer]:
    """One claim as the dispatcher makes it, the fired runs marked delivered at once."""
    async with engine.begin() as conn:
        claim = await repository.claim_due(
            conn, owner=owner, lookahead_seconds=0, lease_seconds=30, limit=limit
        )
        now = await repository.database_clock(conn)
        advanced = await schedule_engine.advance(
            conn, owner=owner, claimed=claim.timers, now=now, notify_within=0
        )
    fired = [t for t in claim.timers if t.id not in advanced.skipped | advanced.deferred]
    if fired:
        async with engine.begin() as conn:
            outcomes = [Outcome(t.id, t.attempt) for t in fired]
            assert await repository.mark_delivered(conn, owner=owner, outcomes=outcomes) == {
                t.id for t in fired
            }
    return fired


async def make_schedule(api: httpx.AsyncClient, **fields: Any) -> int:
    response = await api.post("/schedules", json={"url": URL, **fields})
    assert response.status_code == 201, response.text
    schedule_id: int = response.json()["schedule_id"]
    return schedule_id


async def simulate_outage(db: asyncpg.Connection, schedule_id: int, seconds: float) -> datetime:
    """Move the schedule's pending run (and its cursor) `seconds` into the past, as if no instance
    had run since; returns the occurrence it now stands for."""
    occurrence: datetime = await db.fetchval(
        """UPDATE timers SET occurrence_at = occurrence_at - make_interval(secs => $2),
                             due_at = occurrence_at - make_interval(secs => $2)
           WHERE schedule_id = $1 AND status = 'pending' RETURNING occurrence_at""",
        schedule_id,
        seconds,
    )
    await db.execute("UPDATE schedules SET next_occurrence_at = $2 WHERE id = $1", schedule_id, occurrence)
    return occurrence


async def runs_by_status(db: asyncpg.Connection, schedule_id: int) -> dict[str, list[datetime]]:
    rows = await db.fetch(
        "SELECT status, occurrence_at FROM timers WHERE schedule_id = $1 ORDER BY occurrence_at", schedule_id
    )
    found: dict[str, list[datetime]] = {}
    for row in rows:
        found.setdefault(row["status"], []).append(row["occurrence_at"])
    return found


async def test_racing_claimers_fire_each_occurrence_once_and_make_each_next_once(
    api: httpx.AsyncClient, db: asyncpg.Connection, claim_engine: AsyncEngine
) -> None:
    # Ten schedules, each 30 occurrences behind: catch-up `all` makes every one of them a run that
    # is due at once, one after the other, while six claimers race for them.
    schedule_ids = [
        await make_schedule(api, cron="@every 1s", catchup="all", catchup_window_seconds=600)
        for _ in range(10)
    ]
    starts = {sid: await simulate_outage(db, sid, 30) for sid in schedule_ids}
    fired: list[ClaimedTimer] = []

    async def claimer(owner: str) -> None:
        idle = 0
        while idle < 3:  # a few empty claims in a row: nothing due is left
            got = await claim_and_fire(claim_engine, owner, limit=7)
            fired.extend(got)
            idle = 0 if got else idle + 1
            await asyncio.sleep(0)

    await asyncio.gather(*(claimer(f"claimer-{i}") for i in range(6)))

    per_occurrence = Counter((t.schedule_id, t.occurrence_at) for t in fired)
    assert per_occurrence
    assert max(per_occurrence.values()) == 1  # nothing fired twice
    for sid in schedule_ids:
        occurrences = sorted(o for s, o in per_occurrence if s == sid)
        # Every occurrence from the start on, without a gap, each second once.
        assert occurrences[0] == starts[sid]
        assert len(occurrences) >= 30
        assert all((b - a) == timedelta(seconds=1) for a, b in itertools.pairwise(occurrences))
        runs = await runs_by_status(db, sid)
        # Exactly one next run, pending, right after the last fired one; nothing skipped or doubled.
        assert runs["pending"] == [occurrences[-1] + timedelta(seconds=1)]
        assert runs["delivered"] == occurrences
        assert set(runs) == {"pending", "delivered"}
        assert (
            await db.fetchval("SELECT next_occurrence_at FROM schedules WHERE id = $1", sid)
            == runs["pending"][0]
        )
        assert await db.fetchval("SELECT runs FROM schedules WHERE id = $1", sid) == len(occurrences)


async def test_a_run_claimed_again_does_not_advance_the_series_again(
    api: httpx.AsyncClient, db: asyncpg.Connection, claim_engine: AsyncEngine
) -> None:
    schedule_id = await make_schedule(api, cron="@every 1s", catchup="all")
    await simulate_outage(db, schedule_id, 5)
    async with claim_engine.begin() as conn:
        claim = await repository.claim_due(conn, owner="a", lookahead_seconds=0, lease_seconds=30, limit=1)
        (timer,) = claim.timers
        await schedule_engine.advance(
            conn, owner="a", claimed=claim.timers, now=await repository.database_clock(conn), notify_within=0
        )
    # The owner dies; its lease lapses and the run is pending again (like a retry, it is claimed anew).
    await db.execute(
        "UPDATE timers SET lease_expires_at = now() - interval '1 second' WHERE id = $1", timer.id
    )
    async with claim_engine.begin() as conn:
        await repository.expire_leases(conn, limit=10, max_lapses=5)
    async with claim_engine.begin() as conn:
        claim = await repository.claim_due(conn, owner="b", lookahead_seconds=0, lease_seconds=30, limit=1)
        assert [t.id for t in claim.timers] == [timer.id]
        await schedule_engine.advance(
            conn, owner="b", claimed=claim.timers, now=await repository.database_clock(conn), notify_within=0
        )
    after = await runs_by_status(db, schedule_id)
    assert timer.occurrence_at is not None
    # The run firing again, and the one next run made by its first claim: not a second next.
    assert after == {"firing": [timer.occurrence_at], "pending": [timer.occurrence_at + timedelta(seconds=1)]}


async def test_catchup_latest_fires_the_most_recent_missed_occurrence_once(
    api: httpx.AsyncClient, db: asyncpg.Connection, claim_engine: AsyncEngine
) -> None:
    schedule_id = await make_schedule(api, cron="* * * * *")  # every minute; catchup latest by default
    missed = await simulate_outage(db, schedule_id, 600)
    fired = await claim_and_fire(claim_engine, "a")
    assert fired == []  # the first missed run is skipped...
    fired = await claim_and_fire(claim_engine, "a")  # ...and the latest due one fires at once
    (latest,) = fired
    now = await db.fetchval("SELECT now()")
    assert latest.occurrence_at is not None
    assert missed < latest.occurrence_at <= now
    assert now - latest.occurrence_at < timedelta(minutes=2)
    assert await claim_and_fire(claim_engine, "a") == []
    runs = await runs_by_status(db, schedule_id)
    assert runs["cancelled"] == [missed]
    assert runs["delivered"] == [latest.occurrence_at]
    (upcoming,) = runs["pending"]
    assert upcoming > now
    reason = await db.fetchval("SELECT last_error FROM timers WHERE occurrence_at = $1", missed)
    assert reason.startswith("skipped (catchup)")


def skipped_by_catchup() -> float:
    return float(metrics.SCHEDULE_OCCURRENCES_SKIPPED.labels("catchup")._value.get())


async def test_counting_what_a_claim_skips_has_one_budget_per_claim(
    api: httpx.AsyncClient, db: asyncpg.Connection, claim_engine: AsyncEngine
) -> None:
    """Regression: after a long outage each every-second series counted up to 10,000 skipped
    occurrences, a step of the cadence each, under the claim's locks: many such series in one
    claim held them for seconds. The count now shares one budget per claim (a metric only)."""
    # Hourly, not every second: the latest missed occurrence is up to a period old when the first
    # claim picks it, and must still be the latest when the second claim comes, or that claim
    # rightly skips it too (every second failed 1 run in 6 here, every 10 s 1 in about 20).
    schedule_ids = [await make_schedule(api, cron="@every 1h") for _ in range(3)]
    for schedule_id in schedule_ids:
        await simulate_outage(db, schedule_id, 1_000 * 3600)  # 1,000 missed occurrences each
    before = skipped_by_catchup()
    assert await claim_and_fire(claim_engine, "a") == []  # each missed run is skipped...
    counted = skipped_by_catchup() - before
    # The three skipped runs, and of the 3 x 999 occurrences jumped over, the claim's budget
    # (the metric is the process's: bounds, not equality, so nothing else running can flake it).
    assert (
        schedule_engine.CLAIM_COUNT_BUDGET
        <= counted
        <= len(schedule_ids) + schedule_engine.CLAIM_COUNT_BUDGET
    )
    fired = await claim_and_fire(claim_engine, "a")  # ...and each latest one fires
    assert sorted(t.schedule_id for t in fired) == schedule_ids


async def test_catchup_none_skips_what_was_missed(
    api: httpx.AsyncClient, db: asyncpg.Connection, claim_engine: AsyncEngine
) -> None:
    schedule_id = await make_schedule(api, cron="* * * * *", catchup="none")
    missed = await simulate_outage(db, schedule_id, 600)
    assert await claim_and_fire(claim_engine, "a") == []
    assert await claim_and_fire(claim_engine, "a") == []
    runs = await runs_by_status(db, schedule_id)
    assert runs["cancelled"] == [missed]
    (upcoming,) = runs["pending"]
    assert upcoming > await db.fetchval("SELECT now()")
    assert set(runs) == {"cancelled", "pending"}


async def test_catchup_all_replays_the_window_in_order(
    api: httpx.AsyncClient, db: asyncpg.Connection, claim_engine: AsyncEngine
) -> None:
    schedule_id = await make_schedule(api, cron="* * * * *", catchup="all", catchup_window_seconds=300)
    missed = await simulate_outage(db, schedule_id, 900)
    fired: list[ClaimedTimer] = []
    for _ in range(10):
        fired += await claim_and_fire(claim_engine, "a")
    now = await db.fetchval("SELECT now()")
    occurrences = [t.occurrence_at for t in fired]
    assert occurrences == sorted(occurrences)
    assert 4 <= len(occurrences) <= 6  # the minutes of the last 300 s
    assert all(o is not None and now - timedelta(seconds=360) < o <= now for o in occurrences)
    runs = await runs_by_status(db, schedule_id)
    assert runs["cancelled"] == [missed]  # older than the window: skipped
    (upcoming,) = runs["pending"]
    assert upcoming > now


async def test_max_runs_ends_the_series_without_a_stray_run(
    api: httpx.AsyncClient, db: asyncpg.Connection, claim_engine: AsyncEngine
) -> None:
    schedule_id = await make_schedule(api, cron="@every 1s", catchup="all", max_runs=3)
    await simulate_outage(db, schedule_id, 20)
    fired: list[ClaimedTimer] = []
    for _ in range(6):
        fired += await claim_and_fire(claim_engine, "a")
    assert len(fired) == 3
    view = (await api.get(f"/schedules/{schedule_id}")).json()
    assert (view["status"], view["runs"], view["next_occurrence_at"]) == ("ended", 3, None)
    assert "pending" not in await runs_by_status(db, schedule_id)


async def test_end_at_ends_the_series_without_a_stray_run(
    api: httpx.AsyncClient, db: asyncpg.Connection, claim_engine: AsyncEngine
) -> None:
    schedule_id = await make_schedule(api, cron="@every 1s", catchup="all")
    first = await simulate_outage(db, schedule_id, 20)
    await db.execute(
        "UPDATE schedules SET end_at = $2 WHERE id = $1", schedule_id, first + timedelta(seconds=4)
    )
    fired: list[ClaimedTimer] = []
    for _ in range(8):
        fired += await claim_and_fire(claim_engine, "a")
    assert [t.occurrence_at for t in fired] == [first + timedelta(seconds=s) for s in range(5)]
    assert (await api.get(f"/schedules/{schedule_id}")).json()["status"] == "ended"
    assert "pending" not in await runs_by_status(db, schedule_id)


async def test_resume_after_a_long_pause_catches_up_once(
    api: httpx.AsyncClient, db: asyncpg.Connection, claim_engine: AsyncEngine
) -> None:
    schedule_id = await make_schedule(api, cron="* * * * *")
    assert (await api.post(f"/schedules/{schedule_id}/pause")).status_code == 200
    # Paused for ten minutes: the cursor is ten minutes old when it resumes.
    await db.execute(
        "UPDATE schedules SET next_occurrence_at = next_occurrence_at - interval '10 minutes' WHERE id = $1",
        schedule_id,
    )
    assert (await api.post(f"/schedules/{schedule_id}/resume")).status_code == 200
    fired = await claim_and_fire(claim_engine, "a") + await claim_and_fire(claim_engine, "a")
    assert len(fired) == 1  # catchup latest: one run for the whole pause
    assert len((await runs_by_status(db, schedule_id))["pending"]) == 1


async def test_overlap_skip_and_buffer_one_with_an_unfinished_run(
    api: httpx.AsyncClient, db: asyncpg.Connection, claim_engine: AsyncEngine
) -> None:
    skip = await make_schedule(api, cron="@every 1s", catchup="all", overlap="skip")
    buffer = await make_schedule(api, cron="@every 1s", catchup="all", overlap="buffer_one")
    for schedule_id in (skip, buffer):
        await simulate_outage(db, schedule_id, 10)
    # Claim the first run of each and leave it firing (a slow receiver).
    async with claim_engine.begin() as conn:
        claim = await repository.claim_due(
            conn, owner="slow", lookahead_seconds=0, lease_seconds=60, limit=10
        )
        await schedule_engine.advance(
            conn,
            owner="slow",
            claimed=claim.timers,
            now=await repository.database_clock(conn),
            notify_within=0,
        )
    assert {t.schedule_id for t in claim.timers} == {skip, buffer}
    # The next runs: skip's is skipped; buffer_one's waits (pending again, not sent)...
    assert await claim_and_fire(claim_engine, "b") == []
    skip_runs = await runs_by_status(db, skip)
    assert len(skip_runs["cancelled"]) == 1
    buffer_runs = await runs_by_status(db, buffer)
    assert len(buffer_runs["pending"]) == 2  # the one waiting, and the series' next
    # ...and a third one finds one already waiting: skipped.
    await db.execute(
        # The waiting run is held back a while, so that only the series' next is due.
        """UPDATE timers SET due_at = now() + interval '1 hour'
           WHERE schedule_id = $1 AND status = 'pending' AND attempts = 0 AND occurrence_at = (
               SELECT min(occurrence_at) FROM timers WHERE schedule_id = $1 AND status = 'pending')""",
        buffer,
    )
    await claim_and_fire(claim_engine, "b")
    buffer_runs = await runs_by_status(db, buffer)
    assert len(buffer_runs["cancelled"]) == 1
    skipped = await db.fetch(
        "SELECT last_error FROM timers WHERE schedule_id = ANY($1::bigint[]) AND status = 'cancelled'",
        [skip, buffer],
    )
    assert all(r["last_error"].startswith("skipped (overlap)") for r in skipped)
    # Once the slow run is done, the waiting one fires.
    async with claim_engine.begin() as conn:
        await repository.mark_delivered(
            conn, owner="slow", outcomes=[Outcome(t.id, t.attempt) for t in claim.timers]
        )
    await db.execute(
        "UPDATE timers SET due_at = now() WHERE schedule_id = $1 AND status = 'pending' AND attempts = 0",
        buffer,
    )
    fired = await claim_and_fire(claim_engine, "b")
    assert buffer in {t.schedule_id for t in fired}


async def test_backfilled_runs_are_subject_to_overlap(
    api: httpx.AsyncClient, db: asyncpg.Connection, claim_engine: AsyncEngine
) -> None:
    schedule_id = await make_schedule(api, cron="* * * * *", overlap="skip")
    now = await db.fetchval("SELECT now()")
    start = (now - timedelta(minutes=10)).replace(second=0, microsecond=0)
    span = {"from": start.isoformat(), "to": (start + timedelta(minutes=2)).isoformat()}
    assert len((await api.post(f"/schedules/{schedule_id}/backfill", json=span)).json()["runs"]) == 3
    fired = await claim_and_fire(claim_engine, "a")
    # Claimed together: the earliest fires, the two after it find it unfinished and are skipped.
    assert [t.occurrence_at for t in fired] == [start]
    runs = await runs_by_status(db, schedule_id)
    assert runs["cancelled"] == [start + timedelta(minutes=1), start + timedelta(minutes=2)]
    assert len(runs["pending"]) == 1  # the series' next, untouched


async def test_a_backfill_racing_the_claim_of_the_cursor_run_neither_waits_nor_deadlocks(
    api: httpx.AsyncClient, db: asyncpg.Connection, claim_engine: AsyncEngine
) -> None:
    """Found by the stateful API test (a 500, "deadlock detected"): a claim holds the run it
    claimed, then waits for its schedule's row; a backfill held that row, then its INSERT waited
    for the claimed run (same occurrence, unique index): each waited for the other. A backfill
    leaves out the occurrences that have a run, so it never waits for a run a claim holds."""
    schedule_id = await make_schedule(api, cron="@hourly")
    occurrence = await simulate_outage(db, schedule_id, 3600)
    span = {"from": (occurrence - timedelta(hours=1)).isoformat(), "to": occurrence.isoformat()}
    async with claim_engine.connect() as conn, conn.begin():
        claim = await repository.claim_due(conn, owner="a", lookahead_seconds=0, lease_seconds=30, limit=10)
        assert [t.occurrence_at for t in claim.timers] == [occurrence]
        backfill = asyncio.create_task(api.post(f"/schedules/{schedule_id}/backfill", json=span))
        await asyncio.sleep(0.3)  # the backfill has the schedule's row by now
        now = await repository.database_clock(conn)
        await schedule_engine.advance(conn, owner="a", claimed=claim.timers, now=now, notify_within=0)
    response = await asyncio.wait_for(backfill, 10)
    assert response.status_code == 201, response.text
    made = response.json()
    assert [when(r["occurrence_at"]) for r in made["runs"]] == [occurrence - timedelta(hours=1)]
    assert made["already_run"] == 1
    runs = await runs_by_status(db, schedule_id)
    assert runs["firing"] == [occurrence]
    assert runs["pending"] == [occurrence - timedelta(hours=1), occurrence + timedelta(hours=1)]


@pytest.mark.parametrize("change", [{"url": URL + "/edited"}, {"cron": "0 0-23 * * *"}])
async def test_an_edit_racing_the_claim_of_the_cursor_run_neither_waits_nor_deadlocks(
    api: httpx.AsyncClient, db: asyncpg.Connection, claim_engine: AsyncEngine, change: dict[str, str]
) -> None:
    """Like the backfill's: an edit remakes the pending run at the cursor (a delivery field) or
    at the new expression's next occurrence (the same instant here); the claim holding the cursor's
    run then waits for the schedule's row the edit holds."""
    schedule_id = await make_schedule(api, cron="@hourly")
    (occurrence,) = (await runs_by_status(db, schedule_id))["pending"]
    etag = (await api.get(f"/schedules/{schedule_id}")).headers["etag"]
    async with claim_engine.connect() as conn, conn.begin():
        # the run due within the hour, claimed as a dispatcher whose lookahead reaches it
        claim = await repository.claim_due(
            conn, owner="a", lookahead_seconds=3600, lease_seconds=30, limit=10
        )
        assert [t.occurrence_at for t in claim.timers] == [occurrence]
        edit = asyncio.create_task(
            api.patch(f"/schedules/{schedule_id}", json=change, headers={"If-Match": etag})
        )
        await asyncio.sleep(0.3)  # the edit has the schedule's row by now
        now = await repository.database_clock(conn)
        await schedule_engine.advance(conn, owner="a", claimed=claim.timers, now=now, notify_within=0)
    response = await asyncio.wait_for(edit, 10)
    assert response.status_code == 200, response.text
    runs = await runs_by_status(db, schedule_id)
    assert runs["firing"] == [occurrence]
