"""A webhook host whose DNS never answers fails only its own timers.

The service process runs with its own /etc/resolv.conf (a mount namespace) naming a real DNS
server of the test's on a loopback address: one zone answers at once, the other never does, as
when a zone's nameservers are down. Lookups used to run in getaddrinfo on the event loop's small
thread pool (four threads under uvloop), shared by every lookup: a handful of webhooks to the
silent zone held every thread for the system resolver's timeouts (about 10 s each), and every
other host's lookups queued behind them until their own attempts timed out."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from task_scheduler.db import asyncpg_dsn
from tests.support.dns_server import (
    ANSWERED,
    SILENT,
    DnsServer,
    can_swap_resolv_conf,
    loopback_address_for_worker,
    resolv_conf_wrapper,
)
from tests.support.processes import FAST, ServiceProcess
from tests.support.receiver import Receiver, headers_of

pytestmark = pytest.mark.acceptance

_CANNOT = can_swap_resolv_conf()
# CI runs as root: there the test must run, never skip.
if _CANNOT is not None and not os.environ.get("CI"):
    pytestmark = [pytest.mark.acceptance, pytest.mark.skip(reason=_CANNOT)]

SILENT_TIMERS = 24
ANSWERED_TIMERS = 12


@pytest.fixture
async def dns() -> AsyncIterator[DnsServer]:
    server = DnsServer(loopback_address_for_worker())
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def service(dns: DnsServer, database_url: str, tmp_path: Path) -> Iterator[ServiceProcess]:
    assert _CANNOT is None, _CANNOT
    command = [sys.executable, "-m", "task_scheduler", "serve"]
    proc = ServiceProcess(
        database_url=database_url,
        log_path=tmp_path / "service.log",
        # A request timeout far above an answered lookup (a millisecond) and far below the silent
        # zone's (the resolver's 5 s x 2 tries).
        env={
            **FAST,
            "SCHEDULER_REQUEST_TIMEOUT_SECONDS": "5",
            "SCHEDULER_CONNECT_TIMEOUT_SECONDS": "5",
            "SCHEDULER_LEASE_SECONDS": "15",
        },
        command=resolv_conf_wrapper(dns.resolv_conf(tmp_path / "resolv.conf"), command),
    )
    proc.start()
    yield proc
    proc.ensure_stopped()


async def create(session: aiohttp.ClientSession, proc: ServiceProcess, url: str, **fields: object) -> int:
    async with session.post(f"{proc.base_url}/timer", json={"seconds": 0, "url": url, **fields}) as response:
        assert response.status == 201, await response.text()
        timer_id: int = (await response.json())["timer_id"]
        return timer_id


async def test_a_host_whose_dns_never_answers_fails_only_its_own_timers(
    service: ServiceProcess, dns: DnsServer, receiver: Receiver, database_url: str
) -> None:
    await service.wait_ready()
    port = receiver.port
    async with aiohttp.ClientSession() as session:
        # Every silent timer a host of its own (no cache to share), one attempt each.
        silent = [
            await create(session, service, f"http://h{n}.{SILENT}:{port}/hook", retry={"max_attempts": 1})
            for n in range(SILENT_TIMERS)
        ]
        # Their lookups are under way (more names asked than the old pool had threads) before
        # the others come due.
        for _ in range(200):
            if sum(1 for name in dns.queries if name.endswith(SILENT)) >= 4:
                break
            await asyncio.sleep(0.05)
        assert sum(1 for name in dns.queries if name.endswith(SILENT)) >= 4, dns.queries
        answered = [
            await create(session, service, f"http://h{n}.{ANSWERED}:{port}/hook")
            for n in range(ANSWERED_TIMERS)
        ]
        everyone = await receiver.wait_for(lambda: len(receiver.counts()) >= ANSWERED_TIMERS, within=60)
        assert everyone, f"delivered {dict(receiver.counts())} of {answered}\n{service.log_tail(10)}"

    # Each delivered once, on its first attempt: no lookup of theirs waited for the silent zone's.
    assert receiver.counts() == dict.fromkeys(answered, 1)
    assert {headers_of(d)["x-timer-attempt"] for d in receiver.deliveries} == {"1"}

    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        for _ in range(300):  # the silent ones fail on their own timeout (5 s), and only them
            rows = await conn.fetch("SELECT id, status, last_error FROM timers WHERE id = ANY($1)", silent)
            if all(row["status"] == "failed" for row in rows):
                break
            await asyncio.sleep(0.1)
        delivered = await conn.fetchval(
            "SELECT count(*) FROM timers WHERE id = ANY($1) AND status = 'delivered'", answered
        )
    finally:
        await conn.close()
    assert delivered == ANSWERED_TIMERS
    assert {row["status"] for row in rows} == {"failed"}, rows
    assert {name for name in dns.queries if name.endswith(SILENT)} == {
        f"h{n}.{SILENT}" for n in range(SILENT_TIMERS)
    }
    assert all("timeout" in (row["last_error"] or "").lower() for row in rows), [
        r["last_error"] for r in rows
    ]
    assert service.terminate() == 0
