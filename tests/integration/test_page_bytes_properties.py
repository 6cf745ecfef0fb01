"""Pages bounded by their timers' text (timers.repository.PAGE_BYTES), as hypothesis draws them:
any mix of small and large timers, ties in due time, any limit, bound and search window. Paging
on as the service does, every timer comes exactly once and in order, no page is empty while
more match, and a page passes its bound by one timer at most. FUZZ_RANDOM=1 draws new cases."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from task_scheduler.db import create_engine
from task_scheduler.timers import repository

PAGE_SETTINGS = settings(
    max_examples=int(os.environ.get("PAGE_EXAMPLES", "40")),
    deadline=None,
    database=None,
    derandomize=not os.environ.get("FUZZ_RANDOM"),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
BASE = datetime(2030, 1, 1, tzinfo=UTC)

timer_shapes = st.lists(
    st.tuples(
        st.integers(0, 4),  # due second: ties are common
        st.one_of(st.just(-1), st.integers(0, 3000), st.sampled_from([0, 1, 60_000])),  # body chars; -1: none
        st.sampled_from(["a.example", "b.example"]),
    ),
    max_size=30,
)


@contextmanager
def engine_and_loop(database_url: str) -> Iterator[tuple[AsyncEngine, asyncio.AbstractEventLoop]]:
    """An engine and a loop of this test's own: hypothesis runs each example synchronously."""
    loop = asyncio.new_event_loop()
    engine = create_engine(database_url, pool_size=1)
    try:
        yield engine, loop
    finally:
        loop.run_until_complete(engine.dispose())
        loop.close()


async def fill(engine: AsyncEngine, shapes: list[tuple[int, int, str]]) -> tuple[list[int], dict[int, int]]:
    """Insert the drawn timers; their ids in list order and each one's text as a page counts it."""
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM timers"))
        for tick, chars, host in shapes:
            await conn.execute(
                text(
                    "INSERT INTO timers (url, due_at, body) VALUES (:url, :due,"
                    " CASE WHEN :chars < 0 THEN NULL ELSE to_jsonb(repeat('x', :chars)) END)"
                ),
                {"url": f"http://{host}/hook", "due": BASE + timedelta(seconds=tick), "chars": chars},
            )
        rows = (
            await conn.execute(
                text(f"SELECT id, url, {repository.ROW_BYTES} AS size FROM timers ORDER BY due_at, id")
            )
        ).all()
    return [row.id for row in rows], {row.id: row.size for row in rows}


def check_page(rows: list[Any], sizes: dict[int, int], limit: int, max_bytes: int) -> None:
    assert len(rows) <= limit
    before_last = sum(sizes[row.id] for row in rows[:-1])
    assert before_last < max_bytes, (before_last, max_bytes)  # only the last may pass the bound
    assert [(r.due_at, r.id) for r in rows] == sorted((r.due_at, r.id) for r in rows)


def test_the_list_pages_every_timer_once_in_order(database_url: str) -> None:
    @PAGE_SETTINGS
    @given(shapes=timer_shapes, limit=st.integers(1, 8), max_bytes=st.integers(1, 70_000))
    def run(shapes: list[tuple[int, int, str]], limit: int, max_bytes: int) -> None:
        async def example(engine: AsyncEngine) -> None:
            ids, sizes = await fill(engine, shapes)
            seen: list[int] = []
            after: tuple[datetime, int] | None = None
            async with engine.connect() as conn:
                for _ in range(len(ids) + 2):
                    found = await repository.list_slice(
                        conn, tenant=None, after=after, limit=limit, max_bytes=max_bytes
                    )
                    check_page(found.rows, sizes, limit, max_bytes)
                    seen += [row.id for row in found.rows]
                    if not found.more:
                        break
                    assert found.rows, "an empty page while more timers match"
                    after = (found.rows[-1].due_at, found.rows[-1].id)
            assert seen == ids

        loop.run_until_complete(example(engine))

    with engine_and_loop(database_url) as (engine, loop):
        run()


def test_a_search_pages_every_match_once_in_order(database_url: str) -> None:
    @PAGE_SETTINGS
    @given(
        shapes=timer_shapes,
        limit=st.integers(1, 8),
        max_bytes=st.integers(1, 70_000),
        window=st.integers(1, 12),
    )
    def run(shapes: list[tuple[int, int, str]], limit: int, max_bytes: int, window: int) -> None:
        async def example(engine: AsyncEngine) -> None:
            ids, sizes = await fill(engine, shapes)
            wanted = [
                i for i, (_, _, host) in zip(ids, _in_list_order(shapes), strict=True) if host == "a.example"
            ]
            seen: list[int] = []
            after: tuple[datetime, int] | None = None
            async with engine.connect() as conn:
                for _ in range(2 * len(ids) + 3):
                    found = await repository.scan_timers(
                        conn,
                        tenant=None,
                        status=None,
                        labels=None,
                        due_after=None,
                        due_before=None,
                        after=after,
                        host="a.example",
                        error_class=None,
                        window=window,
                        limit=limit + 1,
                        max_bytes=max_bytes,
                    )
                    page = found.rows[:limit]
                    check_page(page, sizes, limit, max_bytes)
                    seen += [row.id for row in page]
                    after = found.goes_on_after(limit, window)  # where TimerService.search goes on
                    if after is None:
                        break
            assert seen == wanted

        loop.run_until_complete(example(engine))

    with engine_and_loop(database_url) as (engine, loop):
        run()


def _in_list_order(shapes: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """The drawn timers in the list's order: by due second, then insertion (ids increase)."""
    return [shape for _, shape in sorted(enumerate(shapes), key=lambda item: (item[1][0], item[0]))]
