"""POST /timers/bulk on a real PostgreSQL: dry runs, cancel, retry and reschedule by filter, run in
the background in short batches by the service's own runner (real receivers where timers fire),
tenants and roles, bad input, a job that cannot run failing alone, and a job taken over after the
instance running it stopped mid-way."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from task_scheduler.bulk.runner import SCAN_WINDOW_BATCHES, Batch, BulkRunner
from task_scheduler.config import Settings
from task_scheduler.db import create_engine
from tests.support.api import assert_envelope, create, settled, view
from tests.support.app import ServiceFactory
from tests.support.databases import set_status
from tests.support.keys import ADMIN_KEY, SECURED_SETTINGS, bearer, make_key
from tests.support.polling import wait_for_job
from tests.support.receiver import Receiver

URL = "http://example.com/hook"
# Tiny batches, so that every job here takes several; the runner looks for jobs often.
BULK = {"bulk_batch_size": 2, "bulk_poll_interval_seconds": 0.05}


async def start_job(client: httpx.AsyncClient, body: dict[str, Any], **kwargs: Any) -> int:
    response = await client.post("/timers/bulk", json=body, **kwargs)
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/timers/bulk/{job['job_id']}"
    assert (job["state"], job["matched"], job["done"], job["last_timer_id"]) == ("queued", 0, 0, 0)
    job_id: int = job["job_id"]
    return job_id


async def statuses_of(db: asyncpg.Connection, ids: list[int]) -> list[str]:
    rows = await db.fetch("SELECT status FROM timers WHERE id = ANY($1::bigint[]) ORDER BY id", ids)
    return [r["status"] for r in rows]


async def test_a_dry_run_counts_and_changes_nothing(api: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    ours = [await create(api, hours=1, labels={"batch": "a"}) for _ in range(5)]
    others = [await create(api, hours=1, labels={"batch": "b"}) for _ in range(3)]
    await set_status(db, ours[0], "cancelled")
    await set_status(db, ours[1], "failed")
    await set_status(db, others[0], "expired")
    before = await db.fetch("SELECT * FROM timers ORDER BY id")

    async def count(body: dict[str, Any]) -> int:
        response = await api.post("/timers/bulk", json={**body, "dry_run": True})
        assert response.status_code == 200, response.text
        assert response.json()["dry_run"] is True
        matched: int = response.json()["matched"]
        return matched

    assert await count({"action": "cancel", "filter": {"labels": {"batch": "a"}}}) == 3
    assert (
        await count({"action": "reschedule", "offset_seconds": 60, "filter": {"labels": {"batch": "b"}}}) == 2
    )
    assert await count({"action": "retry", "filter": {"labels": {"batch": "a"}}}) == 1
    assert await count({"action": "retry", "filter": {"status": "expired"}}) == 1
    assert await count({"action": "cancel", "filter": {"host": "EXAMPLE.com"}}) == 5
    assert await count({"action": "cancel", "filter": {"host": "example.org"}}) == 0
    due_before = (datetime.now(UTC) + timedelta(minutes=30)).isoformat()
    assert await count({"action": "cancel", "filter": {"due_before": due_before}}) == 0
    assert await db.fetch("SELECT * FROM timers ORDER BY id") == before
    assert await db.fetchval("SELECT count(*) FROM bulk_jobs") == 0


async def test_cancel_by_label_in_batches(service: ServiceFactory, db: asyncpg.Connection) -> None:
    async with service(**BULK) as client:
        ours = [await create(client, hours=1, labels={"batch": "a", "n": str(i)}) for i in range(5)]
        others = [await create(client, hours=1, labels={"batch": "b"}) for _ in range(3)]
        job_id = await start_job(client, {"action": "cancel", "filter": {"labels": {"batch": "a"}}})
        later = await create(client, hours=1, labels={"batch": "a"})  # after the job: not its business
        job = await wait_for_job(client, job_id)
        assert (job["state"], job["matched"], job["done"], job["skipped"]) == ("done", 5, 5, 0)
        assert job["last_timer_id"] == job["max_timer_id"] == others[-1]  # every id looked at
        assert job["filter"] == {"labels": {"batch": "a"}}
    assert await statuses_of(db, ours) == ["cancelled"] * 5
    assert await statuses_of(db, [*others, later]) == ["pending"] * 4


async def test_retry_by_error_class_and_the_timers_are_delivered(
    service: ServiceFactory, db: asyncpg.Connection, receiver: Receiver
) -> None:
    async with service(**BULK) as client:
        timed_out = [await create(client, url=receiver.url, hours=1) for _ in range(3)]
        refused = [await create(client, url=receiver.url, hours=1) for _ in range(2)]
        for timer_id in [*timed_out, *refused]:
            await set_status(db, timer_id, "failed")
            error_class = "timeout" if timer_id in timed_out else "http_status"
            await db.execute("UPDATE timers SET attempts = 1 WHERE id = $1;", timer_id)
            await db.execute(
                "INSERT INTO timer_attempts (timer_id, attempt, started_at, duration_ms, error_class)"
                " VALUES ($1, 1, now(), 5, $2)",
                timer_id,
                error_class,
            )
        job_id = await start_job(
            client, {"action": "retry", "filter": {"status": "failed", "error_class": "timeout"}}
        )
        job = await wait_for_job(client, job_id)
        assert (job["state"], job["matched"], job["done"]) == ("done", 3, 3)
        for timer_id in timed_out:
            shown = await settled(client, timer_id, "delivered")
            assert shown["attempts"] == 2
        assert await statuses_of(db, refused) == ["failed", "failed"]
    assert sorted(d.timer_id for d in receiver.deliveries) == timed_out


async def test_reschedule_by_host_and_due_range(service: ServiceFactory, db: asyncpg.Connection) -> None:
    async with service(**BULK) as client:
        soon = [
            await create(client, url="http://api.example.com/x", hours=1, max_lateness_seconds=60)
            for _ in range(3)
        ]
        late = await create(client, url="http://api.example.com/x", hours=5)
        elsewhere = await create(client, url="http://other.example.com/x", hours=1)
        before = {r["id"]: r for r in await db.fetch("SELECT id, due_at, deliver_before FROM timers")}
        due_before = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
        job_id = await start_job(
            client,
            {
                "action": "reschedule",
                "offset_seconds": -1800,
                "filter": {"host": "API.example.com", "due_before": due_before},
            },
        )
        job = await wait_for_job(client, job_id)
        assert (job["state"], job["matched"], job["done"], job["offset_seconds"]) == ("done", 3, 3, -1800.0)
        after = {r["id"]: r for r in await db.fetch("SELECT id, due_at, deliver_before FROM timers")}
        for timer_id in soon:
            assert after[timer_id]["due_at"] == before[timer_id]["due_at"] - timedelta(minutes=30)
            assert after[timer_id]["deliver_before"] == before[timer_id]["deliver_before"] - timedelta(
                minutes=30
            )
            assert (await view(client, timer_id))["status"] == "pending"
        for timer_id in (late, elsewhere):
            assert after[timer_id] == before[timer_id]


async def test_by_destination_dry_run_cancel_reschedule_and_retry(
    service: ServiceFactory, db: asyncpg.Connection, receiver: Receiver
) -> None:
    """The destination key matches exactly: a key given on create, or the URL's origin."""
    async with service(**BULK) as client:
        billing = [await create(client, hours=1, destination="billing") for _ in range(3)]
        api_host = [await create(client, url="http://api.example.com/x", hours=1) for _ in range(2)]
        plain = await create(client, hours=1)
        assert (await view(client, api_host[0]))["destination"] == "http://api.example.com:80"

        async def count(action: str, destination: str) -> int:
            body: dict[str, Any] = {"action": action, "filter": {"destination": destination}, "dry_run": True}
            if action == "reschedule":
                body["offset_seconds"] = 60
            response = await client.post("/timers/bulk", json=body)
            assert response.status_code == 200, response.text
            matched: int = response.json()["matched"]
            return matched

        assert await count("cancel", "billing") == 3
        assert await count("reschedule", "http://api.example.com:80") == 2
        assert await count("cancel", "BILLING") == 0  # exact, unlike host
        assert await count("cancel", "http://api.example.com") == 0
        assert await count("retry", "billing") == 0

        before = {r["id"]: r["due_at"] for r in await db.fetch("SELECT id, due_at FROM timers")}
        body = {
            "action": "reschedule",
            "offset_seconds": 600,
            "filter": {"destination": "http://api.example.com:80"},
        }
        job = await wait_for_job(client, await start_job(client, body))
        assert (job["state"], job["matched"], job["done"]) == ("done", 2, 2)
        assert job["filter"] == {"destination": "http://api.example.com:80"}
        after = {r["id"]: r["due_at"] for r in await db.fetch("SELECT id, due_at FROM timers")}
        assert [after[i] - before[i] for i in api_host] == [timedelta(minutes=10)] * 2
        assert all(after[i] == before[i] for i in [*billing, plain])

        job_id = await start_job(client, {"action": "cancel", "filter": {"destination": "billing"}})
        job = await wait_for_job(client, job_id)
        assert (job["state"], job["matched"], job["done"]) == ("done", 3, 3)
        assert await statuses_of(db, billing) == ["cancelled"] * 3
        assert await statuses_of(db, [*api_host, plain]) == ["pending"] * 3

        failed = [await create(client, url=receiver.url, hours=1, destination="hooks") for _ in range(2)]
        aside = await create(client, url=receiver.url, hours=1, destination="aside")
        for timer_id in [*failed, aside]:
            await set_status(db, timer_id, "failed")
        job_id = await start_job(client, {"action": "retry", "filter": {"destination": "hooks"}})
        job = await wait_for_job(client, job_id)
        assert (job["state"], job["matched"], job["done"]) == ("done", 2, 2)
        for timer_id in failed:
            await settled(client, timer_id, "delivered")
        assert await statuses_of(db, [aside]) == ["failed"]
    assert sorted(d.timer_id for d in receiver.deliveries) == failed


async def test_a_rare_match_is_found_in_short_windows_of_ids(
    custom_api: ServiceFactory,
    make_settings: Any,
    database_url: str,
    db: asyncpg.Connection,
) -> None:
    """No index holds a destination: each batch walks at most SCAN_WINDOW_BATCHES batch sizes of
    ids past its cursor (one short statement each), however few timers match."""
    settings: Settings = make_settings(bulk_batch_size=2)
    window = 2 * SCAN_WINDOW_BATCHES
    await db.execute(
        "INSERT INTO timers (url, due_at, destination)"
        " SELECT $1, now() + interval '1 hour', CASE WHEN i IN (7, 450, 451, 452) THEN 'rare' ELSE 'crowd' END"
        " FROM generate_series(1, 1000) AS i",
        URL,
    )
    rare = [r["id"] for r in await db.fetch("SELECT id FROM timers WHERE destination = 'rare' ORDER BY id")]
    async with custom_api() as client:
        job_id = await start_job(client, {"action": "cancel", "filter": {"destination": "rare"}})
    engine = create_engine(database_url, pool_size=1)
    runner = BulkRunner(engine=engine, settings=settings, owner="walker")
    cursors = []
    try:
        assert await runner.take() is not None
        while (batch := await runner.run_batch(job_id)) is Batch.MORE:
            cursors.append(await db.fetchval("SELECT last_timer_id FROM bulk_jobs WHERE id = $1", job_id))
        assert batch is Batch.FINISHED
    finally:
        await engine.dispose()
    # a full batch stops at its last id; one that found fewer moves on by the whole window
    first = rare[0] - 7
    assert cursors == [first + window, first + 2 * window, rare[2], rare[2] + window, rare[2] + 2 * window]
    job = await db.fetchrow("SELECT state, matched, done, last_timer_id FROM bulk_jobs WHERE id = $1", job_id)
    assert dict(job) == {"state": "done", "matched": 4, "done": 4, "last_timer_id": first + 1000}
    assert await statuses_of(db, rare) == ["cancelled"] * 4
    assert await db.fetchval("SELECT count(*) FROM timers WHERE status = 'pending'") == 996


async def test_tenants_and_roles(service: ServiceFactory, db: asyncpg.Connection) -> None:
    async with service(**BULK, **SECURED_SETTINGS) as client:
        acme_writer = await make_key(client, "acme", "writer")
        acme_reader = await make_key(client, "acme", "reader")
        globex_writer = await make_key(client, "globex", "writer")
        body = {"action": "cancel", "filter": {"labels": {"kind": "reminder"}}}
        timer = {"hours": 1, "url": URL, "labels": {"kind": "reminder"}}
        acme = [
            (await client.post("/timer", json=timer, headers=bearer(acme_writer))).json()["timer_id"]
            for _ in range(2)
        ]
        globex = (await client.post("/timer", json=timer, headers=bearer(globex_writer))).json()["timer_id"]

        assert_envelope(await client.post("/timers/bulk", json=body, headers=bearer(acme_reader)), 403)
        counted = await client.post(
            "/timers/bulk", json={**body, "dry_run": True}, headers=bearer(acme_writer)
        )
        assert counted.json()["matched"] == 2
        job_id = await start_job(client, body, headers=bearer(acme_writer))
        job = await wait_for_job(client, job_id, headers=bearer(acme_reader))
        assert (job["state"], job["done"]) == ("done", 2)
        for key in (globex_writer,):
            response = await client.get(f"/timers/bulk/{job_id}", headers=bearer(key))
            assert assert_envelope(response, 404)["field"] == "job_id"
            assert_envelope(await client.delete(f"/timers/bulk/{job_id}", headers=bearer(key)), 404)
        assert (await client.get(f"/timers/bulk/{job_id}", headers=bearer(ADMIN_KEY))).status_code == 200
        assert await statuses_of(db, [*acme, globex]) == ["cancelled", "cancelled", "pending"]
        # an admin's job acts on every tenant's timers, and only an admin sees it
        everyone = await start_job(client, body, headers=bearer(ADMIN_KEY))
        assert (await wait_for_job(client, everyone, headers=bearer(ADMIN_KEY)))["done"] == 1
        assert (await client.get(f"/timers/bulk/{everyone}", headers=bearer(acme_reader))).status_code == 404
    assert await statuses_of(db, [globex]) == ["cancelled"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"action": "delete", "filter": {"labels": {"a": "b"}}}, "action"),
        ({"filter": {"labels": {"a": "b"}}}, "action"),
        ({"action": "cancel"}, "filter"),
        ({"action": "cancel", "filter": {}}, "filter"),
        ({"action": "cancel", "filter": {"labels": {}}}, "filter"),
        ({"action": "cancel", "filter": {"colour": "red"}}, "filter.colour"),
        ({"action": "cancel", "filter": {"status": "sleeping"}}, "filter.status"),
        ({"action": "cancel", "filter": {"status": "failed"}}, "filter.status"),
        ({"action": "retry", "filter": {"status": "pending"}}, "filter.status"),
        ({"action": "cancel", "filter": {"due_after": "tomorrow"}}, "filter.due_after"),
        ({"action": "cancel", "filter": {"labels": {"a": 1}}}, "filter.labels.a"),
        ({"action": "cancel", "filter": {"host": ""}}, "filter.host"),
        ({"action": "cancel", "filter": {"destination": ""}}, "filter.destination"),
        ({"action": "cancel", "filter": {"destination": "x" * 301}}, "filter.destination"),
        ({"action": "cancel", "filter": {"destination": "a\u0000b"}}, "filter.destination"),
        ({"action": "cancel", "filter": {"destination": 7}}, "filter.destination"),
        ({"action": "reschedule", "filter": {"host": "example.com"}}, "offset_seconds"),
        ({"action": "reschedule", "offset_seconds": 0, "filter": {"host": "example.com"}}, "offset_seconds"),
        (
            {"action": "reschedule", "offset_seconds": 1.5, "filter": {"host": "example.com"}},
            "offset_seconds",
        ),
        (
            {"action": "reschedule", "offset_seconds": 10**11, "filter": {"host": "example.com"}},
            "offset_seconds",
        ),
        ({"action": "cancel", "offset_seconds": 60, "filter": {"host": "example.com"}}, "offset_seconds"),
        ({"action": "cancel", "filter": {"host": "example.com"}, "dry_run": "yes"}, "dry_run"),
    ],
)
async def test_bad_input_is_a_422_naming_the_field(
    api: httpx.AsyncClient, db: asyncpg.Connection, body: dict[str, Any], field: str
) -> None:
    error = assert_envelope(await api.post("/timers/bulk", json=body), 422)
    assert error["field"] == field, error
    assert await db.fetchval("SELECT count(*) FROM bulk_jobs") == 0


async def test_a_queued_job_can_be_cancelled(api: httpx.AsyncClient) -> None:
    job_id = await start_job(api, {"action": "cancel", "filter": {"host": "example.com"}})  # no runner here
    response = await api.delete(f"/timers/bulk/{job_id}")
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "cancelled"
    error = assert_envelope(await api.delete(f"/timers/bulk/{job_id}"), 409)
    assert "cancelled" in error["message"]
    assert (await api.get(f"/timers/bulk/{job_id}")).json()["state"] == "cancelled"
    assert assert_envelope(await api.get("/timers/bulk/999999"), 404)["field"] == "job_id"


async def test_a_job_that_cannot_run_fails_alone(service: ServiceFactory, db: asyncpg.Connection) -> None:
    async with service(**BULK) as client:
        ids = [await create(client, hours=1, labels={"batch": "a"}) for _ in range(3)]
        bad = await db.fetchval(
            "INSERT INTO bulk_jobs (tenant, action, filter, max_timer_id)"
            " VALUES ('default', 'cancel', '{\"status\": \"sleeping\"}', 1000) RETURNING id"
        )
        good = await start_job(client, {"action": "cancel", "filter": {"labels": {"batch": "a"}}})
        failed = await wait_for_job(client, bad)
        assert failed["state"] == "failed"
        assert "filter" in failed["error"]
        assert (await wait_for_job(client, good))["done"] == 3
        assert (await client.get("/readyz")).status_code == 200
    assert await statuses_of(db, ids) == ["cancelled"] * 3


async def test_a_job_survives_the_instance_running_it(
    service: ServiceFactory,
    custom_api: ServiceFactory,
    make_settings: Any,
    database_url: str,
    db: asyncpg.Connection,
) -> None:
    """Instance one runs two batches of a reschedule and stops holding the lease; instance two
    takes the job over once the lease lapses and finishes it: each timer moved exactly once."""
    settings: Settings = make_settings(
        bulk_batch_size=3, bulk_lease_seconds=1.0, bulk_poll_interval_seconds=0.05
    )
    async with custom_api() as client:
        ids = [await create(client, hours=1, labels={"move": "yes"}) for _ in range(10)]
        body = {"action": "reschedule", "offset_seconds": 600, "filter": {"labels": {"move": "yes"}}}
        job_id = await start_job(client, body)
    before = {r["id"]: r["due_at"] for r in await db.fetch("SELECT id, due_at FROM timers")}

    engine = create_engine(database_url, pool_size=1)
    first = BulkRunner(engine=engine, settings=settings, owner="instance-one")
    try:
        taken = await first.take()
        assert taken is not None
        assert taken.id == job_id
        assert [await first.run_batch(job_id), await first.run_batch(job_id)] == [Batch.MORE, Batch.MORE]
    finally:
        await engine.dispose()  # the instance is gone; its lease stays until it lapses
    halfway = await db.fetchrow(
        "SELECT state, lease_owner, last_timer_id, done FROM bulk_jobs WHERE id = $1", job_id
    )
    assert dict(halfway) == {
        "state": "running",
        "lease_owner": "instance-one",
        "last_timer_id": ids[5],
        "done": 6,
    }

    async with service(**{**BULK, "bulk_batch_size": 3, "bulk_lease_seconds": 1.0}) as client:
        job = await wait_for_job(client, job_id)
    assert (job["state"], job["matched"], job["done"], job["skipped"]) == ("done", 10, 10, 0)
    after = {r["id"]: r["due_at"] for r in await db.fetch("SELECT id, due_at FROM timers")}
    assert all(after[i] - before[i] == timedelta(minutes=10) for i in ids), (before, after)

    # the first instance, back, finds the job no longer its own and changes nothing
    engine = create_engine(database_url, pool_size=1)
    try:
        assert (
            await BulkRunner(engine=engine, settings=settings, owner="instance-one").run_batch(job_id)
            is Batch.LOST
        )
    finally:
        await engine.dispose()
    assert {r["id"]: r["due_at"] for r in await db.fetch("SELECT id, due_at FROM timers")} == after


async def test_a_locked_timer_is_skipped_not_waited_for(
    service: ServiceFactory, db: asyncpg.Connection
) -> None:
    async with service(**BULK) as client:
        ids = [await create(client, hours=1, labels={"batch": "a"}) for _ in range(4)]
        async with db.transaction():  # an edit (or a claim) holding one row
            await db.execute("SELECT 1 FROM timers WHERE id = $1 FOR UPDATE", ids[1])
            job_id = await start_job(client, {"action": "cancel", "filter": {"labels": {"batch": "a"}}})
            job = await wait_for_job(client, job_id)
        assert (job["state"], job["matched"], job["done"], job["skipped"]) == ("done", 4, 3, 1)
    assert await statuses_of(db, ids) == ["cancelled", "pending", "cancelled", "cancelled"]


async def test_a_cancelled_schedule_run_lets_its_series_go_on(service: ServiceFactory) -> None:
    async with service(**BULK) as client:
        created = await client.post(
            "/schedules", json={"cron": "@hourly", "url": URL, "labels": {"team": "ops"}}
        )
        assert created.status_code == 201, created.text
        schedule = created.json()
        job_id = await start_job(client, {"action": "cancel", "filter": {"labels": {"team": "ops"}}})
        assert (await wait_for_job(client, job_id))["done"] == 1
        runs = (await client.get(f"/schedules/{schedule['schedule_id']}/runs")).json()["runs"]
        assert [run["status"] for run in runs] == ["pending", "cancelled"]
        after = (await client.get(f"/schedules/{schedule['schedule_id']}")).json()
        assert after["next_occurrence_at"] > schedule["next_occurrence_at"]
