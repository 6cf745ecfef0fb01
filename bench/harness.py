"""Building blocks of the benchmarks: PostgreSQL, service processes, receiver processes, SQL
loading, open- and closed-loop load (on bench.loadgen), and statistics."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import make_url

from bench.loadgen import FAILURES, Client, Response
from task_scheduler.db import EmbeddedPostgres, asyncpg_dsn
from tests.support.processes import ServiceProcess, free_port

# Benchmarks measure the service as installed (`make run` defaults); rows marked "tuned" add
# these settings (an INFO line per request and per delivery costs some throughput). The tests'
# ServiceProcess runs one process unless told otherwise; here the default, auto (one per CPU),
# unless SCHEDULER_WORKERS is set. Rows that measure one process say so.
SERVICE_ENV: dict[str, str] = {"SCHEDULER_WORKERS": os.environ.get("SCHEDULER_WORKERS", "auto")}
ONE_PROCESS = {"SCHEDULER_WORKERS": "1"}
TUNED_ENV = {"SCHEDULER_LOG_LEVEL": "WARNING"}


@contextmanager
def postgres_server() -> Iterator[str]:
    """DATABASE_URL's server, or an embedded PostgreSQL for the duration."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    # The server `make run` starts, with the settings it sizes to this machine.
    with tempfile.TemporaryDirectory(prefix="bench-pg-") as tmp:
        server = EmbeddedPostgres(Path(tmp))
        try:
            yield server.start()
        finally:
            server.stop()


async def fresh_database(server_url: str) -> str:
    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(asyncpg_dsn(server_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


async def connect(database_url: str) -> asyncpg.Connection:
    return await asyncpg.connect(asyncpg_dsn(database_url))


class Receiver:
    """bench.receiver in its own process."""

    def __init__(self, workdir: Path, delay: float = 0.0, host: str = "127.0.0.1") -> None:
        self.port = free_port()
        self.host = host
        self.out = workdir / f"arrivals-{self.port}.jsonl"
        self.delay = delay
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/hook"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.receiver",
                "--port",
                str(self.port),
                "--out",
                str(self.out),
                "--delay",
                str(self.delay),
                "--host",
                self.host,
            ],
            stdout=subprocess.PIPE,
        )
        assert self.process.stdout is not None
        self.process.stdout.readline()  # "ready"

    async def count(self, client: Client) -> int:
        response = await client.request(client.encode(method="GET", path="/count"))
        return int(response.body)

    async def wait_for(self, count: int, within: float) -> float:
        """Wait until `count` requests arrived (polling); returns the seconds waited."""
        started = time.monotonic()
        async with Client(self.url, timeout=10.0) as client:
            while time.monotonic() - started < within:
                if await self.count(client) >= count:
                    break
                await asyncio.sleep(0.05)
        return time.monotonic() - started

    def stop(self) -> list[tuple[int, float, str]]:
        assert self.process is not None
        self.process.terminate()
        self.process.wait(timeout=30)
        return [tuple(json.loads(line)) for line in self.out.read_text().splitlines()]  # type: ignore[misc]


def start_service(database_url: str, workdir: Path, name: str, **env: str) -> ServiceProcess:
    proc = ServiceProcess(
        database_url=database_url, log_path=workdir / f"{name}.log", env={**SERVICE_ENV, **env}
    )
    proc.start()
    return proc


def start_instances(
    database_url: str, workdir: Path, prefix: str, count: int, **env: str
) -> list[ServiceProcess]:
    """`count` service processes on one database (one process each, unless `env` says otherwise),
    instance ids (and log names) `prefix`-0, -1, ..."""
    return [
        start_service(
            database_url,
            workdir,
            f"{prefix}-{i}",
            SCHEDULER_INSTANCE_ID=f"{prefix}-{i}",
            **{**ONE_PROCESS, **env},
        )
        for i in range(count)
    ]


async def insert_due(conn: asyncpg.Connection, url: str, count: int, start_in: float, spread: float) -> None:
    """`count` timers due from `start_in` seconds from now, evenly over `spread` seconds."""
    await conn.execute(
        "INSERT INTO timers (url, due_at)"
        " SELECT $1, now() + make_interval(secs => $2::float8 + $3::float8 * i / $4::int)"
        " FROM generate_series(0, $4::int - 1) AS i",
        url,
        start_in,
        spread,
        count,
    )


async def due_times(conn: asyncpg.Connection) -> dict[int, float]:
    rows = await conn.fetch("SELECT id, extract(epoch FROM due_at)::float8 AS due FROM timers")
    return {r["id"]: r["due"] for r in rows}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class Delivered:
    """Correctness and lateness of what a receiver recorded against what was due."""

    expected: int
    lost: int
    duplicates: int
    early: int
    lateness_ms: list[float] = field(default_factory=list)
    first_arrival: float = 0.0
    last_arrival: float = 0.0

    @classmethod
    def check(cls, records: list[tuple[int, float, str]], due: dict[int, float]) -> Delivered:
        counts = Counter(r[0] for r in records)
        first_seen: dict[int, float] = {}
        for timer_id, arrived, _ in records:
            first_seen.setdefault(timer_id, arrived)
        lateness = [(arrived - due[t]) * 1000 for t, arrived in first_seen.items() if t in due]
        return cls(
            expected=len(due),
            lost=sum(1 for t in due if counts[t] == 0),
            duplicates=sum(n - 1 for n in counts.values() if n > 1),
            early=sum(1 for v in lateness if v < 0),
            lateness_ms=lateness,
            first_arrival=min((r[1] for r in records), default=0.0),
            last_arrival=max((r[1] for r in records), default=0.0),
        )

    def summary(self) -> dict[str, Any]:
        return {
            "timers": self.expected,
            "lost": self.lost,
            "duplicates": self.duplicates,
            "early": self.early,
            "lateness_p50_ms": round(percentile(self.lateness_ms, 0.5), 1),
            "lateness_p99_ms": round(percentile(self.lateness_ms, 0.99), 1),
            "lateness_max_ms": round(max(self.lateness_ms, default=float("nan")), 1),
        }


def _outcome(future: asyncio.Future[Response]) -> int | str:
    """The status of an answer, or the name of the failure."""
    failure = future.exception()
    return type(failure).__name__ if failure else future.result().status


async def open_loop(
    url: str,
    rate: float,
    seconds: float,
    body: dict[str, Any],
    max_outstanding: int = 1024,
    request_timeout: float = 30.0,
) -> dict[str, Any]:
    """Send `rate` requests per second for `seconds` on a fixed schedule, whatever the answers;
    each latency counts from the request's scheduled time (no coordinated omission). Each request
    waits on its own connection, at most `max_outstanding` of them. Times are perf_counter's:
    uvloop's loop.time() moves in whole milliseconds."""
    latencies: list[float] = []
    statuses: Counter[int | str] = Counter()
    pending: set[asyncio.Future[Response]] = set()

    def answered(scheduled: float, future: asyncio.Future[Response]) -> None:
        pending.discard(future)
        latencies.append((time.perf_counter() - scheduled) * 1000)
        statuses[_outcome(future)] += 1

    async with Client(url, max_connections=max_outstanding, timeout=request_timeout) as client:
        payload = client.encode(json.dumps(body).encode())
        start = time.perf_counter() + 0.1
        total = int(rate * seconds)
        for i in range(total):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            future = client.submit(payload)
            if future is None:
                statuses["dropped"] += 1  # the generator itself would block: count, never wait
                continue
            pending.add(future)
            future.add_done_callback(partial(answered, scheduled))
        if pending:
            await asyncio.wait(pending)
    return {
        "requests": total,
        "p50_ms": round(percentile(latencies, 0.5), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
        "max_ms": round(max(latencies, default=float("nan")), 2),
        "errors": sum(n for s, n in statuses.items() if s != 201),
        "statuses": {str(k): v for k, v in statuses.items()},
    }


async def closed_loop(
    url: str,
    concurrency: int,
    seconds: float,
    body: dict[str, Any],
    request_timeout: float = 30.0,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """As many requests as `concurrency` clients can send back to back: the peak rate. `requests`
    counts answers; `errors` counts answers >= 300 and failed requests."""
    done = 0
    errors = 0
    async with Client(url, max_connections=concurrency, timeout=request_timeout) as client:
        payload = client.encode(json.dumps(body).encode(), headers=headers)
        stop = time.monotonic() + seconds

        async def one_client() -> None:
            nonlocal done, errors
            while time.monotonic() < stop:
                try:
                    response = await client.request(payload)
                except FAILURES:
                    errors += 1
                    await asyncio.sleep(0.01)  # a refused connection fails at once: do not spin
                    continue
                done += 1
                errors += response.status >= 300

        started = time.monotonic()
        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        elapsed = time.monotonic() - started
    return {"requests": done, "per_second": round(done / elapsed), "errors": errors}


async def ordinary_closed_loop(
    url: str,
    connections: int,
    seconds: float,
    body: dict[str, Any],
    *,
    stop_after: int | None = None,
    id_key: str = "timer_id",
) -> dict[str, Any]:
    """What a user's backend does: one aiohttp session with `connections` keep-alive connections,
    that many tasks sending back to back (bounded by `seconds` and `stop_after` requests).
    Returns the rate, the statuses and the ids created (`id_key` of each 201 answer)."""
    import aiohttp

    statuses: Counter[int | str] = Counter()
    ids: list[int] = []
    sent = 0
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        stop = time.monotonic() + seconds

        async def one_client() -> None:
            nonlocal sent
            while time.monotonic() < stop and (stop_after is None or sent < stop_after):
                sent += 1
                try:
                    async with session.post(url, json=body) as response:
                        statuses[response.status] += 1
                        if response.status == 201:
                            ids.append((await response.json())[id_key])
                        else:
                            await response.read()
                except (aiohttp.ClientError, TimeoutError) as exc:
                    statuses[type(exc).__name__] += 1
                    await asyncio.sleep(0.01)

        started = time.monotonic()
        await asyncio.gather(*(one_client() for _ in range(connections)))
        elapsed = time.monotonic() - started
    created = statuses[201]
    return {
        "requests": sum(statuses.values()),
        "created": created,
        "per_second": round(created / elapsed),
        "errors": sum(n for k, n in statuses.items() if k != 201),
        "statuses": {str(k): v for k, v in statuses.items()},
        "ids": ids,
    }
