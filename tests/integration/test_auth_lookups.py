"""The key lookups behind every authenticated request: an answer is read from the database once
for all the requests that need it at the same time (each used to read it again when the cached
answer expired under load, and the pool opened extra connections for them), and a change of the
keys is never hidden by a read that was in flight."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from task_scheduler.auth.models import Role
from task_scheduler.auth.service import AuthService
from task_scheduler.config import Settings
from task_scheduler.db import create_engine
from task_scheduler.errors import Unauthorized


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=2)
    yield engine
    await engine.dispose()


def count_reads(engine: AsyncEngine) -> list[str]:
    """The statements that read api_keys, as they are sent."""
    reads: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "api_keys" in statement:
            reads.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    return reads


async def test_concurrent_requests_share_one_read_of_a_key(
    engine: AsyncEngine, make_settings: Callable[..., Settings]
) -> None:
    auth = AuthService(engine=engine, settings=make_settings(api_key_cache_seconds=60))
    raw, row = await auth.create_key(name="k", tenant="t1", role=Role.WRITER)
    reads = count_reads(engine)
    principals = await asyncio.gather(*(auth.authenticate(raw, "10.0.0.1") for _ in range(200)))
    assert {(p.tenant, p.role, p.key_id) for p in principals} == {("t1", Role.WRITER, row.key_id)}
    assert len(reads) == 1  # one read for 200 requests, with a pool of 2 (+2) connections
    await asyncio.gather(*(auth.authenticate(raw, "10.0.0.1") for _ in range(50)))
    assert len(reads) == 1  # then cached


async def test_concurrent_requests_without_a_key_share_one_read_of_whether_keys_exist(
    engine: AsyncEngine, make_settings: Callable[..., Settings]
) -> None:
    auth = AuthService(engine=engine, settings=make_settings())
    reads = count_reads(engine)
    principals = await asyncio.gather(*(auth.authenticate(None, "127.0.0.1") for _ in range(200)))
    assert {p.role for p in principals} == {Role.ADMIN}  # open mode: no key exists
    assert len(reads) == 1


async def test_a_revoke_during_a_read_in_flight_is_not_hidden_by_it(
    engine: AsyncEngine, make_settings: Callable[..., Settings]
) -> None:
    auth = AuthService(engine=engine, settings=make_settings(api_key_cache_seconds=60))
    raw, row = await auth.create_key(name="k", tenant="t1", role=Role.WRITER)
    in_flight = asyncio.ensure_future(auth.authenticate(raw, "10.0.0.1"))
    await asyncio.sleep(0)  # the read has started
    await auth.revoke_key(row.key_id)
    with contextlib.suppress(Unauthorized):
        await in_flight  # asked before the revoke: it may see the key or the revoke
    with pytest.raises(Unauthorized):
        await auth.authenticate(raw, "10.0.0.1")  # asked after it: never a cached stale answer


async def test_a_caller_cancelled_while_waiting_does_not_cancel_the_others(
    engine: AsyncEngine, make_settings: Callable[..., Settings]
) -> None:
    auth = AuthService(engine=engine, settings=make_settings())
    raw, row = await auth.create_key(name="k", tenant="t1", role=Role.READER)
    first = asyncio.ensure_future(auth.authenticate(raw, "10.0.0.1"))
    second = asyncio.ensure_future(auth.authenticate(raw, "10.0.0.1"))
    await asyncio.sleep(0)
    first.cancel()
    assert (await second).key_id == row.key_id
    with pytest.raises(asyncio.CancelledError):
        await first
