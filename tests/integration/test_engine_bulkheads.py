"""Bulkheads of the engine on a real PostgreSQL: one bad row, outcome or timer fails only itself;
lapsing leases have a limit; a crashed background task is restarted; /readyz tells the truth."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from task_scheduler import metrics
from task_scheduler.app import create_app
from task_scheduler.config import Settings
from task_scheduler.db import asyncpg_dsn, create_engine
from task_scheduler.delivery.client import DeliveryResult
from task_scheduler.delivery.verdict import Decision, Verdict, decide
from task_scheduler.delivery.writer import OutcomeWriter
from task_scheduler.supervision import Supervisor
from task_scheduler.timers import repository
from task_scheduler.timers.repository import AttemptRecord, ClaimedTimer, NewTimer, Outcome
from tests.support.app import running_app
from tests.support.polling import wait_for_status
from tests.support.receiver import Receiver

WAIT = 20.0
OWNER = "engine-test"


async def insert_and_claim(
    engine: AsyncEngine, count: int, *, lease_seconds: float = 60.0
) -> list[ClaimedTimer]:
    async with engine.begin() as conn:
        new = [NewTimer(url="http://127.0.0.1:9/hook", delay_seconds=0.0) for _ in range(count)]
        await repository.insert_timers(conn, timers=new, notify_within=0.0)
    async with engine.begin() as conn:
        claim = await repository.claim_due(
            conn, owner=OWNER, lookahead_seconds=1.0, lease_seconds=lease_seconds, limit=count
        )
    assert len(claim.timers) == count
    assert not claim.unprocessable
    return claim.timers


async def statuses(engine: AsyncEngine) -> dict[int, tuple[str, str | None]]:
    async with engine.connect() as conn:
        rows = await conn.exec_driver_sql("SELECT id, status, last_error FROM timers")
        return {row.id: (row.status, row.last_error) for row in rows}


def delivered(timer: ClaimedTimer, settings: Settings) -> Decision:
    result = DeliveryResult(ok=True, status_code=200, error=None, retryable=False, duration_ms=1.0)
    return decide(timer, result, settings, late_ms=0.0, instance=OWNER)


def poisoned(timer: ClaimedTimer) -> Decision:
    """An outcome PostgreSQL refuses (NUL in text), made directly: as if sanitising had missed it."""
    error = "attempt 1: HTTP 500 abc\x00def"
    record = AttemptRecord(
        timer_id=timer.id,
        attempt=timer.attempt,
        started_at=datetime.now(UTC),
        duration_ms=1.0,
        status_code=500,
        error_class="http_status",
        error_message="abc\x00def",
        response_body="abc\x00def",
    )
    outcome = Outcome(timer.id, timer.attempt, error, retry_in_seconds=600.0, record=record)
    return Decision(Verdict.RETRY, outcome, {"timer_id": timer.id})


async def test_the_writer_splits_a_refused_batch_and_writes_the_culprit_in_a_safe_form(
    database_url: str, make_settings: Callable[..., Settings]
) -> None:
    """Regression: a NUL in a reply made the writer retry the same batch forever; every later
    outcome of the instance queued behind it."""
    settings = make_settings()
    engine = create_engine(database_url, pool_size=2)
    try:
        first, second, bad, third, later = await insert_and_claim(engine, 5)
        writer = OutcomeWriter(engine=engine, owner=OWNER, lookahead_seconds=1.0, wake=lambda: None)
        running = asyncio.create_task(writer.run())
        try:
            for decision in (delivered(first, settings), delivered(second, settings), poisoned(bad)):
                writer.put(decision)
            writer.put(delivered(third, settings))
            await asyncio.wait_for(writer.join(), timeout=WAIT)
            writer.put(delivered(later, settings))  # the writer keeps going
            await asyncio.wait_for(writer.join(), timeout=WAIT)
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
        assert writer.oldest_unwritten_age() == 0.0
        found = await statuses(engine)
        for timer in (first, second, third, later):
            assert found[timer.id] == ("delivered", None)
        status, error = found[bad.id]
        assert status == "pending"  # the retry it was, in a safe form
        assert error == "unstorable outcome: CharacterNotInRepertoireError (SQLSTATE 22021)"
        async with engine.connect() as conn:
            (record,) = await repository.list_attempts(conn, timer_id=bad.id)
        assert record.error_class == "unstorable"
        assert record.response_body is None
    finally:
        await engine.dispose()


async def insert_poison_row(database_url: str, url: str) -> int:
    """A timer with due_at = -infinity, written past the API as the year-1 fire_at bug did. The
    CHECK constraint of migration 0006 forbids it now: dropped here, as in a database restored
    from before it, so the claim's own bulkhead is still what is tested."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await conn.execute("ALTER TABLE timers DROP CONSTRAINT ck_timers_due_at_storable")
        timer_id: int = await conn.fetchval(
            "INSERT INTO timers (url, due_at) VALUES ($1, '-infinity') RETURNING id", url
        )
    finally:
        await conn.close()
    return timer_id


async def test_a_row_the_claim_cannot_handle_is_quarantined_and_the_others_fire(
    database_url: str, service: Callable[..., Any], receiver: Receiver
) -> None:
    """Regression: a due_at of -infinity (read back as a naive datetime.min) made every claim
    raise: no timer of any tenant fired while it existed; reading it answered 500."""
    poison = await insert_poison_row(database_url, receiver.url)
    async with service() as client:
        ordinary = []
        for _ in range(3):
            created = await client.post("/timer", json={"seconds": 0, "url": receiver.url})
            ordinary.append(created.json()["timer_id"])
        assert await receiver.wait_for(lambda: all(receiver.counts()[t] == 1 for t in ordinary), WAIT)
        view = await wait_for_status(client, poison, "failed", WAIT)
        assert view["status"] == "failed", view
        assert view["last_error"].startswith("unprocessable: cannot be claimed: ValueError('due_at is not")
        attempts = (await client.get(f"/timer/{poison}/attempts")).json()["attempts"]
        assert [a["error_class"] for a in attempts] == ["unprocessable"]
        listed = await client.get("/timers")
        assert listed.status_code == 200
        assert poison in [t["timer_id"] for t in listed.json()["timers"]]
        assert (await client.get("/readyz")).status_code == 200
    assert receiver.counts()[poison] == 0


async def lapse(engine: AsyncEngine, *, max_lapses: int) -> repository.LapsedLeases:
    """Wait (bounded) for the ghost owner's lease to lapse, then run lease expiry."""
    for _ in range(200):
        async with engine.begin() as conn:
            lapsed = await repository.expire_leases(conn, limit=10, max_lapses=max_lapses)
        if lapsed.returned or lapsed.failed:
            return lapsed
        await asyncio.sleep(0.02)
    raise AssertionError("the lease never lapsed")


async def test_a_timer_whose_lease_keeps_lapsing_is_failed(database_url: str) -> None:
    """Regression: lease expiry had no limit: a timer that crashed or stalled every instance
    firing it was claimed again forever."""
    engine = create_engine(database_url, pool_size=2)
    try:
        (timer,) = await insert_and_claim(engine, 1, lease_seconds=0.01)
        assert await lapse(engine, max_lapses=3) == repository.LapsedLeases(returned=1, failed=0)
        for _ in range(2):
            async with engine.begin() as conn:
                claim = await repository.claim_due(
                    conn, owner=OWNER, lookahead_seconds=1.0, lease_seconds=0.01, limit=1
                )
            assert [t.id for t in claim.timers] == [timer.id]
            last = await lapse(engine, max_lapses=3)
        assert last == repository.LapsedLeases(returned=0, failed=1)
        status, error = (await statuses(engine))[timer.id]
        assert status == "failed"
        assert error is not None
        assert error.startswith("unprocessable: lease_expired: the lease lapsed 3 times")
    finally:
        await engine.dispose()


def restarts(task: str) -> float:
    return metrics.BACKGROUND_TASK_RESTARTS.labels(task)._value.get()


async def test_a_killed_background_task_is_restarted_and_counted(
    make_settings: Callable[..., Settings], receiver: Receiver
) -> None:
    app = create_app(make_settings())
    async with running_app(app) as client:
        supervisor: Supervisor = app.state.supervisor
        before = {name: restarts(name) for name in ("writer", "claim", "gauges")}
        killed = {name: supervisor.task(name) for name in before}
        for task in killed.values():
            assert task is not None
            task.cancel()
        for _ in range(200):
            current = {name: supervisor.task(name) for name in before}
            if all(current[n] is not None and current[n] is not killed[n] for n in before):
                break
            await asyncio.sleep(0.05)
        assert all(restarts(name) - before[name] == 1 for name in before)
        created = await client.post("/timer", json={"seconds": 0, "url": receiver.url})
        timer_id = created.json()["timer_id"]
        assert (await wait_for_status(client, timer_id, "delivered", WAIT))["status"] == "delivered"
        assert (await client.get("/readyz")).status_code == 200
        text = (await client.get("/metrics")).text
        assert 'scheduler_background_task_restarts_total{task="writer"}' in text


async def test_a_graceful_stop_is_not_counted_as_a_crash(
    make_settings: Callable[..., Settings], receiver: Receiver
) -> None:
    """Regression: stop() told the claim loop to stop before cancelling it; the loop returned on
    its own first, and its supervisor logged, counted and restarted it as a crash."""
    names = ("claim", "flow", "listen", "writer", "heartbeat", "signers", "retention", "gauges")
    before = {name: restarts(name) for name in names}
    for _ in range(3):
        async with running_app(create_app(make_settings())) as client:
            created = await client.post("/timer", json={"seconds": 0, "url": receiver.url})
            await wait_for_status(client, created.json()["timer_id"], "delivered", WAIT)
    assert {name: restarts(name) - before[name] for name in names} == dict.fromkeys(names, 0)


async def readiness(client: httpx.AsyncClient, *, status: int) -> httpx.Response:
    """Poll /readyz (bounded) until it answers `status`."""
    deadline = time.monotonic() + WAIT
    while True:
        response = await client.get("/readyz")
        if response.status_code == status or time.monotonic() > deadline:
            return response
        await asyncio.sleep(0.1)


async def test_readyz_tells_when_the_writer_makes_no_progress(
    make_settings: Callable[..., Settings], receiver: Receiver, database_url: str
) -> None:
    """Regression: /readyz checked only the claim task; a stuck writer still reported ready."""
    # The timer is claimed (firing) 5 s before it is sent: time enough, on a busy machine, to see
    # it firing and lock its row before the send. The lease outlasts due time plus the wait below.
    settings = make_settings(readiness_stall_seconds=1.0, lookahead_seconds=5.0, lease_seconds=60.0)
    async with running_app(create_app(settings)) as client:
        # Connected before the timer exists, so that locking its row takes one statement.
        jam = await asyncpg.connect(asyncpg_dsn(database_url))
        try:
            created = await client.post("/timer", json={"seconds": 6, "url": receiver.url})
            timer_id = created.json()["timer_id"]
            assert (await wait_for_status(client, timer_id, "firing", WAIT))["status"] == "firing"
            locked = jam.transaction()
            await locked.start()
            # The outcome's UPDATE waits behind this row lock: the writer makes no progress.
            await jam.execute("SELECT 1 FROM timers WHERE id = $1 FOR UPDATE", timer_id)
            assert await receiver.wait_for(lambda: receiver.counts()[timer_id] == 1, WAIT)
            stuck = await readiness(client, status=503)
            assert stuck.status_code == 503
            assert "outcome writer: the oldest unwritten outcome waits" in stuck.json()["error"]["message"]
            await locked.rollback()
        finally:
            await jam.close()
        assert (await readiness(client, status=200)).status_code == 200
        assert (await wait_for_status(client, timer_id, "delivered", WAIT))["status"] == "delivered"
    assert receiver.counts()[timer_id] == 1
