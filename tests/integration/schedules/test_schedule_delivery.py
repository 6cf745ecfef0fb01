"""Schedules end to end: the whole service (dispatcher included) on a real PostgreSQL, delivering
each occurrence of a schedule to a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from tests.support.app import ServiceFactory
from tests.support.polling import WAIT
from tests.support.receiver import Receiver, headers_of, running


async def assert_no_stray_run(db: asyncpg.Connection, schedule_id: int, stopped_at: datetime) -> None:
    """After a pause or delete at `stopped_at`, no run is pending but (at most) the one an instance
    had claimed already (it fires, or goes back to pending when that instance stops)."""
    pending = await db.fetch(
        "SELECT occurrence_at FROM timers WHERE schedule_id = $1 AND status = 'pending'", schedule_id
    )
    assert len(pending) <= 1
    assert all(r["occurrence_at"] <= stopped_at + timedelta(seconds=2) for r in pending)


async def test_every_second_schedule_delivers_consecutive_occurrences(
    service: ServiceFactory, receiver: Receiver, db: asyncpg.Connection
) -> None:
    async with service() as client:
        # catchup all: a claim that comes late on a busy machine fires the occurrence it missed
        # rather than skipping to the latest (the default), which would leave a gap.
        created = await client.post(
            "/schedules", json={"cron": "* * * * * *", "url": receiver.url, "catchup": "all"}
        )
        assert created.status_code == 201, created.text
        schedule_id = created.json()["schedule_id"]
        assert await receiver.wait_for(lambda: len(receiver.deliveries) >= 4, WAIT)
        await client.delete(f"/schedules/{schedule_id}", params={"cancel_pending": "true"})
        ended_at = await db.fetchval("SELECT now()")

    occurrences = []
    for delivery in receiver.deliveries:
        headers = headers_of(delivery)
        assert headers["x-schedule-id"] == str(schedule_id)
        occurrence = datetime.fromisoformat(headers["x-schedule-occurrence"])
        assert delivery.body["schedule_id"] == schedule_id
        assert datetime.fromisoformat(delivery.body["occurrence_at"]) == occurrence
        # Never early.
        assert delivery.arrived_at >= occurrence.timestamp() - 0.001
        occurrences.append(occurrence)
    # Consecutive seconds, each once, each with its own webhook-id.
    assert len(set(occurrences)) == len(occurrences)
    ordered = sorted(occurrences)
    assert all((b - a).total_seconds() == 1 for a, b in itertools.pairwise(ordered))
    assert len({headers_of(d)["webhook-id"] for d in receiver.deliveries}) == len(receiver.deliveries)
    await assert_no_stray_run(db, schedule_id, ended_at)


async def test_three_instances_deliver_each_occurrence_exactly_once(
    service: ServiceFactory, receiver: Receiver, db: asyncpg.Connection
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(service(instance_id=f"instance-{i}")) for i in range(3)]
        schedule_ids = []
        for i in range(4):
            # catchup all: a late claim on a busy machine fires its occurrence, leaves no gap.
            created = await clients[i % 3].post(
                "/schedules", json={"cron": "* * * * * *", "url": receiver.url, "catchup": "all"}
            )
            assert created.status_code == 201, created.text
            schedule_ids.append(created.json()["schedule_id"])
        assert await receiver.wait_for(lambda: len(receiver.deliveries) >= 16, WAIT)
        for schedule_id in schedule_ids:
            await clients[0].post(f"/schedules/{schedule_id}/pause")
        paused_at = await db.fetchval("SELECT now()")
        # let any run already claimed finish (its webhook is then recorded), however slow the machine
        for _ in range(int(WAIT / 0.1)):
            firing = await db.fetchval(
                "SELECT count(*) FROM timers WHERE status = 'firing' AND schedule_id = ANY($1::bigint[])",
                schedule_ids,
            )
            if not firing:
                break
            await asyncio.sleep(0.1)
        assert not firing

    seen = Counter(
        (headers_of(d)["x-schedule-id"], headers_of(d)["x-schedule-occurrence"]) for d in receiver.deliveries
    )
    assert max(seen.values()) == 1
    owners = await db.fetch("SELECT DISTINCT lease_owner FROM timers WHERE lease_owner IS NOT NULL")
    assert owners == []  # every claimed run was finished by its owner
    for schedule_id in schedule_ids:
        delivered = await db.fetch(
            "SELECT occurrence_at FROM timers WHERE schedule_id = $1 AND status = 'delivered' ORDER BY occurrence_at",
            schedule_id,
        )
        times = [r["occurrence_at"] for r in delivered]
        assert len(times) >= 2
        assert all((b - a).total_seconds() == 1 for a, b in itertools.pairwise(times))  # no gap, no double
        await assert_no_stray_run(db, schedule_id, paused_at)


async def test_max_runs_delivers_that_many_then_ends(service: ServiceFactory, receiver: Receiver) -> None:
    async with service() as client:
        created = await client.post(
            "/schedules", json={"cron": "@every 1s", "url": receiver.url, "max_runs": 2, "labels": {"k": "v"}}
        )
        schedule_id = created.json()["schedule_id"]
        assert await receiver.wait_for(lambda: len(receiver.deliveries) >= 2, WAIT)
        runs: list[dict[str, Any]] = []
        for _ in range(200):  # the receiver sees a delivery a moment before the service records it
            runs = (await client.get(f"/schedules/{schedule_id}/runs")).json()["runs"]
            if [r["status"] for r in runs] == ["delivered", "delivered"]:
                break
            await asyncio.sleep(0.1)
        view = (await client.get(f"/schedules/{schedule_id}")).json()
        metrics = (await client.get("/metrics")).text
    assert (view["status"], view["runs"], view["next_runs"]) == ("ended", 2, [])
    assert [r["status"] for r in runs] == ["delivered", "delivered"]
    assert len(receiver.deliveries) == 2
    assert all(d.body["labels"] == {"k": "v"} for d in receiver.deliveries)
    assert "scheduler_schedule_occurrences_created_total" in metrics
    assert "scheduler_active_schedules" in metrics


async def test_overlap_skip_with_a_slow_receiver(service: ServiceFactory, db: asyncpg.Connection) -> None:
    async with running(Receiver(delay_seconds=1.6)) as slow, service() as client:
        created = await client.post(
            "/schedules",
            json={
                "cron": "* * * * * *",
                "url": slow.url,
                "overlap": "skip",
                "retry": {"timeout_seconds": 3},
                # a late claim on a busy machine is then skipped for overlap only, never for catchup
                "catchup": "all",
            },
        )
        schedule_id = created.json()["schedule_id"]
        assert await slow.wait_for(lambda: len(slow.deliveries) >= 3, WAIT)
        await client.post(f"/schedules/{schedule_id}/pause")
        await asyncio.sleep(2)
        metrics = (await client.get("/metrics")).text
    skipped = await db.fetch(
        "SELECT last_error FROM timers WHERE schedule_id = $1 AND status = 'cancelled' AND last_error LIKE 'skipped%'",
        schedule_id,
    )
    assert skipped
    assert all(r["last_error"].startswith("skipped (overlap)") for r in skipped)
    assert 'scheduler_schedule_occurrences_skipped_total{reason="overlap"}' in metrics
    # No two requests were ever in flight together: each began after the one before was answered.
    arrivals = sorted(d.arrived_at for d in slow.deliveries)
    assert all(b - a >= 1.6 - 0.05 for a, b in itertools.pairwise(arrivals))


POISON_TRIGGER = """
CREATE FUNCTION refuse_poisoned_schedule() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.labels ? 'poisoned' THEN
        RAISE EXCEPTION 'this schedule refuses to be advanced';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_poisoned_schedule BEFORE UPDATE ON schedules
    FOR EACH ROW EXECUTE FUNCTION refuse_poisoned_schedule();
"""


async def test_a_schedule_that_cannot_be_advanced_fails_only_its_own_runs_and_retries_them(
    service: ServiceFactory, receiver: Receiver, db: asyncpg.Connection
) -> None:
    """Regression: when moving one schedule's series on failed in a claim, every schedule run of
    that claim was failed as unprocessable, which ended those series for good, even when the
    failure was passing. Now the schedule is tried alone: its runs are retried after a backoff
    within their retry budget, the others fire."""
    await db.execute(POISON_TRIGGER)  # a real failure, raised by PostgreSQL inside the claim
    quick_retries = {"max_attempts": 50, "backoff_base_seconds": 0.05, "backoff_cap_seconds": 0.1}
    async with service() as client:

        async def create(**fields: Any) -> int:
            body = {"cron": "* * * * * *", "url": receiver.url, **fields}
            created = await client.post("/schedules", json=body)
            assert created.status_code == 201, created.text
            schedule_id: int = created.json()["schedule_id"]
            return schedule_id

        healthy = await create()
        stuck = await create(labels={"poisoned": "yes"}, retry=quick_retries)
        exhausted = await create(labels={"poisoned": "yes"}, retry={"max_attempts": 1})

        def delivered(schedule_id: int) -> list[str]:
            return [
                headers_of(d)["x-schedule-occurrence"]
                for d in receiver.deliveries
                if headers_of(d)["x-schedule-id"] == str(schedule_id)
            ]

        assert await receiver.wait_for(lambda: len(delivered(healthy)) >= 3, WAIT)
        assert delivered(stuck) == []
        assert delivered(exhausted) == []
        retried = await db.fetchrow(
            "SELECT status, attempts, last_error FROM timers WHERE schedule_id = $1", stuck
        )
        assert retried["status"] in {"pending", "firing"}
        assert retried["attempts"] >= 1
        assert "the schedule could not be advanced" in retried["last_error"]
        classes = await db.fetch(
            """SELECT DISTINCT a.error_class FROM timer_attempts AS a JOIN timers AS t ON t.id = a.timer_id
               WHERE t.schedule_id = ANY($1::bigint[])""",
            [stuck, exhausted],
        )
        assert [r["error_class"] for r in classes] == ["schedule_not_advanced"]

        async def exhausted_failed() -> bool:
            status = await db.fetchval("SELECT status FROM timers WHERE schedule_id = $1", exhausted)
            return bool(status == "failed")

        for _ in range(200):
            if await exhausted_failed():
                break
            await asyncio.sleep(0.05)
        assert await exhausted_failed()

        # The failure passes: the next retry moves the series on, and it keeps going.
        await db.execute("DROP TRIGGER refuse_poisoned_schedule ON schedules")
        assert await receiver.wait_for(lambda: len(delivered(stuck)) >= 3, WAIT)
        for schedule_id in (healthy, stuck):
            await client.delete(f"/schedules/{schedule_id}", params={"cancel_pending": "true"})

    for schedule_id in (healthy, stuck):
        occurrences = delivered(schedule_id)
        assert len(occurrences) == len(set(occurrences))  # each occurrence once
    assert delivered(exhausted) == []
