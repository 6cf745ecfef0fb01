"""A timer's attempts come in pages: a timer retried by hand again and again (each retry up to
100 more attempts, each with up to 1.5 KB of error and reply) can have any number of them, and
GET /timer/{id}/attempts answered them all at once."""

from __future__ import annotations

import asyncpg
import httpx

from task_scheduler.db import asyncpg_dsn
from task_scheduler.timers.service import ATTEMPTS_PAGE
from tests.support.api import URL

ATTEMPTS = 2 * ATTEMPTS_PAGE + 500


async def test_attempts_come_in_pages_that_name_the_next(api: httpx.AsyncClient, database_url: str) -> None:
    response = await api.post("/timer", json={"hours": 1, "url": URL})
    assert response.status_code == 201, response.text
    timer_id = response.json()["timer_id"]
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await conn.execute(
            "INSERT INTO timer_attempts (timer_id, attempt, started_at, duration_ms, status_code,"
            " error_class, error_message, response_body)"
            " SELECT $1, i, now(), 1.5, 503, 'http_status', 'HTTP 503', repeat('x', 1024)"
            " FROM generate_series(1, $2) AS i",
            timer_id,
            ATTEMPTS,
        )
    finally:
        await conn.close()
    seen: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        response = await api.get(f"/timer/{timer_id}/attempts", params={"cursor": cursor} if cursor else {})
        assert response.status_code == 200, response.text
        page = response.json()
        pages += 1
        assert len(page["attempts"]) <= ATTEMPTS_PAGE
        seen += [a["attempt"] for a in page["attempts"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert pages < 10
    assert seen == list(range(1, ATTEMPTS + 1))
    assert pages == 3

    small = await api.get(f"/timer/{timer_id}/attempts", params={"limit": 2, "cursor": "10"})
    assert [a["attempt"] for a in small.json()["attempts"]] == [11, 12]
    assert small.json()["next_cursor"] == "12"
    for bad in ("-1", "abc", "99999999999", "1.5", "²"):
        refused = await api.get(f"/timer/{timer_id}/attempts", params={"cursor": bad})
        assert refused.status_code == 422, (bad, refused.text)
        assert refused.json()["error"]["field"] == "cursor"
    assert (await api.get(f"/timer/{timer_id}/attempts", params={"limit": 1001})).status_code == 422
