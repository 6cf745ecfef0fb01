"""What a claim holds in memory is about the size of what it claimed.

A webhook body may be 64 KiB of JSON (`SCHEDULER_MAX_WEBHOOK_BODY_BYTES`), and 64 KiB of small
arrays or objects (`[{},{},...]`) parsed into Python objects takes about 1.5 MB. The claim used
to parse every body, and the dispatcher holds up to thousands of claimed timers (more while a
slow receiver keeps them waiting): one tenant's 3,000 such timers took a service process to
3 GB within 20 s and growing, enough for the kernel or a container limit to kill it, and every
instance that claimed them after. A claimed body is now jsonb's text, sent as it is (RawJson);
a schedule's body goes to its next run the same way."""

from __future__ import annotations

import asyncio
import json
import tracemalloc
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from task_scheduler.db import asyncpg_dsn, create_engine
from task_scheduler.schedules import engine as schedule_engine
from task_scheduler.timers import repository
from task_scheduler.timers.shape import RawJson
from tests.support.api import URL
from tests.support.app import ServiceFactory
from tests.support.receiver import Receiver

TIMERS = 40
# 64 KiB of empty objects: the most Python objects per byte a body can hold.
BODY = "[" + ",".join(["{}"] * 21_800) + "]"
PARSED_BYTES = 1_000_000  # what one such body took parsed (measured: ~1.5 MB)


@pytest.fixture
async def claim_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=2)
    yield engine
    await engine.dispose()


async def insert_due(database_url: str, count: int, body: str) -> list[int]:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        rows = await conn.fetch(
            "INSERT INTO timers (url, due_at, body) SELECT $1, now(), $2::jsonb"
            " FROM generate_series(1, $3) RETURNING id",
            URL,
            body,
            count,
        )
    finally:
        await conn.close()
    return [row["id"] for row in rows]


async def test_a_claim_holds_bodies_as_their_text(claim_engine: AsyncEngine, database_url: str) -> None:
    ids = await insert_due(database_url, TIMERS, BODY)
    tracemalloc.start()
    try:
        async with claim_engine.begin() as conn:
            claim = await repository.claim_due(
                conn, owner="memory", lookahead_seconds=0, lease_seconds=30, limit=TIMERS
            )
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sorted(t.id for t in claim.timers) == ids
    # Parsed, the claim held TIMERS x ~1.5 MB (60 MB); as text about 3.5 MB.
    assert held < TIMERS * PARSED_BYTES / 4, f"the claim holds {held:,} bytes"
    assert peak < TIMERS * PARSED_BYTES / 2, f"the claim peaked at {peak:,} bytes"
    text_bytes = sum(len(t.request.body.text) for t in claim.timers if isinstance(t.request.body, RawJson))
    assert text_bytes >= TIMERS * len(BODY)  # every body kept, as text


@pytest.mark.parametrize(
    ("stored", "sent", "content_type"),
    [
        ('{"b": [1, 2.50, 1e2], "a": "\\u00e9"}', '{"a": "é", "b": [1, 2.50, 100]}', "application/json"),
        ('"plain text"', "plain text", "text/plain; charset=utf-8"),
        ("[]", "[]", "application/json"),
        ("null", None, "application/json"),  # JSON null: the default body, as before
    ],
    ids=["object", "string", "array", "null"],
)
async def test_a_claimed_body_is_sent_as_jsonb_gives_it(
    claim_engine: AsyncEngine, database_url: str, stored: str, sent: str | None, content_type: str
) -> None:
    from task_scheduler.delivery.client import WebhookRequest, encode_body

    (timer_id,) = await insert_due(database_url, 1, stored)
    async with claim_engine.begin() as conn:
        claim = await repository.claim_due(
            conn, owner="memory", lookahead_seconds=0, lease_seconds=30, limit=1
        )
    (timer,) = claim.timers
    webhook = WebhookRequest(
        url=timer.url,
        timer_id=timer.id,
        delivery_id=timer.delivery_id,
        attempt=timer.attempt,
        due_at=timer.due_at,
        request=timer.request,
    )
    body, kind = encode_body(webhook)
    assert kind == content_type
    if sent is None:
        assert json.loads(body)["timer_id"] == timer_id
    else:
        assert body.decode() == sent


async def test_a_schedules_body_goes_to_its_next_run_unparsed(
    api: httpx.AsyncClient, claim_engine: AsyncEngine, database_url: str
) -> None:
    schedule_ids = []
    for _ in range(TIMERS // 2):
        response = await api.post(
            "/schedules", json={"cron": "@every 1h", "url": URL, "body": json.loads(BODY)}
        )
        assert response.status_code == 201, response.text
        schedule_ids.append(response.json()["schedule_id"])
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await conn.execute("UPDATE timers SET due_at = now() WHERE schedule_id = ANY($1)", schedule_ids)
        tracemalloc.start()
        try:
            async with claim_engine.begin() as sa:
                claim = await repository.claim_due(
                    sa, owner="memory", lookahead_seconds=0, lease_seconds=30, limit=TIMERS
                )
                now = await repository.database_clock(sa)
                await schedule_engine.advance(
                    sa, owner="memory", claimed=claim.timers, now=now, notify_within=0
                )
            held, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert len(claim.timers) == len(schedule_ids)
        next_runs = await conn.fetch(
            "SELECT t.body = s.body AS same FROM timers AS t JOIN schedules AS s ON s.id = t.schedule_id"
            " WHERE t.schedule_id = ANY($1) AND t.status = 'pending'",
            schedule_ids,
        )
    finally:
        await conn.close()
    assert len(next_runs) == len(schedule_ids)
    assert all(row["same"] for row in next_runs)
    runs = len(schedule_ids)
    assert held < runs * PARSED_BYTES / 4, f"claim and advance hold {held:,} bytes"
    assert peak < runs * PARSED_BYTES, f"claim and advance peaked at {peak:,} bytes"


async def page_through(api: httpx.AsyncClient, path: str, items: str, key: str) -> tuple[list[int], int]:
    """Every page of `path` (limit 1,000) by next_cursor: the ids in order and the tracemalloc
    peak; each page holds one item at least and no more than PAGE_BYTES of BODY allow."""
    seen: list[int] = []
    cursor: str | None = None
    tracemalloc.start()
    try:
        for _ in range(40):
            response = await api.get(path, params={"limit": 1000, **({"cursor": cursor} if cursor else {})})
            assert response.status_code == 200, response.text
            page = response.json()
            assert 1 <= len(page[items]) <= repository.PAGE_BYTES // len(BODY) + 1
            seen += [item[key] for item in page[items]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return seen, peak


async def test_a_page_of_big_bodies_stops_at_its_bytes_and_the_cursor_goes_on(
    api: httpx.AsyncClient, database_url: str
) -> None:
    """Regression: GET /timers?limit=1000 over 1,000 such bodies took a service process 15 s of
    CPU (its event loop, and so every delivery of the process, blocked 12 s: /healthz waited as
    long) and 400 MB. A page now carries at most PAGE_BYTES of timer text (at least one timer)."""
    big = await insert_due(database_url, 60, BODY)
    small = await insert_due(database_url, 5, '{"n": 1}')
    seen, peak = await page_through(api, "/timers", "timers", "timer_id")
    assert seen == big + small  # every timer once, in order, across the pages
    # One page of 1,000 (here all 60) parsed ~90 MB, and the answer copied it a few times over.
    assert peak < 60 * PARSED_BYTES, f"a page peaked at {peak:,} bytes"


async def test_a_search_stops_at_its_bytes_and_says_more_match(
    claim_engine: AsyncEngine, database_url: str
) -> None:
    ids = await insert_due(database_url, 30, BODY)
    async with claim_engine.connect() as conn:
        found, few = [
            await repository.scan_timers(
                conn,
                tenant=None,
                status=None,
                labels=None,
                due_after=None,
                due_before=None,
                after=None,
                host="example.com",
                error_class=None,
                window=2000,
                limit=51,
                max_bytes=max_bytes,
            )
            for max_bytes in (repository.PAGE_BYTES, 10 * repository.PAGE_BYTES)
        ]
    assert 1 <= len(found.rows) <= repository.PAGE_BYTES // len(BODY) + 1
    assert [r.id for r in found.rows] == ids[: len(found.rows)]
    assert found.cut
    assert [r.id for r in few.rows] == ids
    assert not few.cut


async def test_a_page_of_schedules_stops_at_its_bytes_and_the_cursor_goes_on(api: httpx.AsyncClient) -> None:
    made = []
    for _ in range(60):
        response = await api.post(
            "/schedules", json={"cron": "@every 1h", "url": URL, "body": json.loads(BODY)}
        )
        assert response.status_code == 201, response.text
        made.append(response.json()["schedule_id"])
    seen, peak = await page_through(api, "/schedules", "schedules", "schedule_id")
    assert seen == made
    # Parsed and answered, a schedule took ~3 MB: all 60 on one page about 190 MB.
    assert peak < 60 * PARSED_BYTES, f"a page of schedules peaked at {peak:,} bytes"


async def test_a_schedules_runs_are_listed_without_their_bodies(
    api: httpx.AsyncClient, database_url: str
) -> None:
    response = await api.post("/schedules", json={"cron": "@every 1h", "url": URL, "body": json.loads(BODY)})
    assert response.status_code == 201, response.text
    schedule_id = response.json()["schedule_id"]
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await conn.execute(
            "INSERT INTO timers (url, due_at, body, schedule_id, occurrence_at, status)"
            " SELECT $1, now() - make_interval(hours => i), $2::jsonb, $3, now() - make_interval(hours => i),"
            " 'delivered' FROM generate_series(1, 40) AS i",
            URL,
            BODY,
            schedule_id,
        )
    finally:
        await conn.close()
    tracemalloc.start()
    try:
        runs = await api.get(f"/schedules/{schedule_id}/runs", params={"limit": 1000})
        listed = await api.get("/ui/schedules")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert runs.status_code == 200, runs.text
    assert len(runs.json()["runs"]) == 41  # the pending next run too
    assert listed.status_code in (200, 303), listed.text
    # Each run's body parsed took ~1.5 MB (60 MB for these); the list shows no request.
    assert peak < 10 * PARSED_BYTES, f"listing the runs peaked at {peak:,} bytes"


async def test_the_requests_held_stay_within_max_held_bytes(
    service: ServiceFactory, receiver: Receiver
) -> None:
    """Before SCHEDULER_MAX_HELD_BYTES only counts bounded what an instance holds (up to five
    times SCHEDULER_MAX_IN_FLIGHT while a slow receiver keeps them waiting): with 400 KB of
    headers allowed per timer, gigabytes. Now no claim while the held requests take the budget:
    at most the budget and one claim's timers, and every timer is still delivered once."""
    receiver.delay_seconds = 0.4
    headers = {f"X-Pad-{n}": "p" * 8000 for n in range(12)}  # ~96 KB per timer
    budget = 250_000
    limits = {"max_held_bytes": budget, "claim_batch_size": 2, "max_concurrent_per_host": 2}
    async with service(**limits, request_timeout_seconds=10, lease_seconds=30) as client:
        ids = []
        for _ in range(16):
            response = await client.post(
                "/timer", json={"seconds": 0, "url": receiver.url, "headers": headers}
            )
            assert response.status_code == 201, response.text
            ids.append(response.json()["timer_id"])
        most = 0.0
        for _ in range(400):
            text = (await client.get("/metrics")).text
            (line,) = [x for x in text.splitlines() if x.startswith("scheduler_held_bytes")]
            most = max(most, float(line.split()[-1]))
            if len(receiver.counts()) == len(ids):
                break
            await asyncio.sleep(0.05)
    assert receiver.counts() == dict.fromkeys(ids, 1)
    one_timer = 12 * (len("X-Pad-10") + 8000) + len(receiver.url) + 2_000
    assert most >= budget  # the budget was reached, so it was what stopped the claims
    assert most <= budget + 2 * one_timer, f"held {most:,.0f} bytes, budget {budget:,}"
