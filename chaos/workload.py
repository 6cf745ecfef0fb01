"""Creating timers through the HTTP API, as a client would: batches of up to 1,000 (`POST
/timers/batch`) and single timers (`POST /timer`), retried on another instance when an instance or
the database is down.

Each timer carries its intended due time in its labels (`due`: the RFC 3339 `fire_at`, or `secs`
for a duration), so that its first due time is known from its row alone, even when the service
has since moved `due_at` for a retry, and even for a batch whose answer was lost (the rows exist,
the client never heard of them: they must fire all the same).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp

log = logging.getLogger("chaos")

BATCH_LIMIT = 1000
_RETRYABLE = frozenset({429, 500, 502, 503, 504})


def rfc3339(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).isoformat()


def timed(wall: float, url: str) -> dict[str, Any]:
    """A timer due at the wall time `wall` (fire_at), labelled with that due time."""
    at = rfc3339(wall)
    return {"fire_at": at, "url": url, "labels": {"due": at}}


def spread_due_times(count: int, *, start: float, spread: float, burst: float = 0.0) -> list[float]:
    """`count` due times evenly over [start, start + spread); a `burst` share all due at once,
    in the middle."""
    in_burst = round(count * burst)
    steady = count - in_burst
    times = [start + spread * i / max(1, steady) for i in range(steady)]
    times += [start + spread / 2] * in_burst
    return sorted(times)


@dataclass
class Creator:
    """Creates timers on whichever instance is ready; counts what it did."""

    urls: Callable[[], list[str]]
    session: aiohttp.ClientSession
    deadline: float  # monotonic; nothing is retried after it
    acked: set[int] = field(default_factory=set)
    stats: Counter[str] = field(default_factory=Counter)
    _turn: itertools.count[int] = field(default_factory=itertools.count)

    async def _post(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any] | None:
        """POST until a 2xx, another instance on each try; None if the deadline passes first."""
        delay = 0.1
        while time.monotonic() < self.deadline:
            urls = self.urls()
            if not urls:
                await asyncio.sleep(0.2)
                continue
            base = urls[next(self._turn) % len(urls)]
            try:
                async with self.session.post(f"{base}{path}", json=body, headers=headers) as response:
                    if response.status < 300:
                        answer: dict[str, Any] = await response.json()
                        return answer
                    text = await response.text()
                    if response.status not in _RETRYABLE:
                        raise RuntimeError(f"POST {path} answered {response.status}: {text[:300]}")
                    self.stats[f"http_{response.status}"] += 1
            except (aiohttp.ClientError, TimeoutError) as exc:
                self.stats[type(exc).__name__] += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
        self.stats["gave_up"] += 1
        return None

    async def batch(self, timers: list[dict[str, Any]]) -> None:
        """One batch; after an unanswered try the batch is sent again (its rows, if committed,
        are timers like any other, so both copies must fire)."""
        answer = await self._post("/timers/batch", {"timers": timers}, {})
        if answer is not None:
            self.acked.update(t["timer_id"] for t in answer["timers"])
            self.stats["batch_acked"] += 1

    async def single(self, timer: dict[str, Any]) -> None:
        """One timer with an Idempotency-Key, so that a retry after a lost answer is the same timer."""
        answer = await self._post("/timer", timer, {"Idempotency-Key": uuid.uuid4().hex})
        if answer is not None:
            self.acked.add(answer["timer_id"])
            self.stats["single_acked"] += 1

    async def schedule(self, schedule: dict[str, Any]) -> int | None:
        """One recurring schedule (sent before any fault: a lost answer would make a second one)."""
        answer = await self._post("/schedules", schedule, {})
        if answer is None:
            return None
        self.stats["schedule_acked"] += 1
        schedule_id: int = answer["schedule_id"]
        return schedule_id


async def feed(creator: Creator, url: str, due_times: list[float], *, concurrency: int = 2) -> None:
    """Create timers at these due times, in due order, `concurrency` batches at a time."""
    batches = [due_times[i : i + BATCH_LIMIT] for i in range(0, len(due_times), BATCH_LIMIT)]
    queue: asyncio.Queue[list[float]] = asyncio.Queue()
    for chunk in batches:
        queue.put_nowait(chunk)

    async def worker() -> None:
        while not queue.empty():
            chunk = queue.get_nowait()
            await creator.batch([timed(t, url) for t in chunk])

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def flood(
    creator: Creator,
    url: str,
    *,
    until: float,
    batches: int,
    batch_size: int,
    singles: int,
    single_workers: int = 24,
) -> None:
    """Until the wall time `until` (or the counts are reached): `batches` batches of `batch_size`
    timers due 1-10 s ahead, and `singles` single timers of 1-5 s, from many clients at once."""
    rng = random.Random(7)
    left = {"batches": batches, "singles": singles}

    async def batch_worker() -> None:
        while left["batches"] > 0 and time.time() < until:
            left["batches"] -= 1
            now = time.time()
            await creator.batch([timed(now + rng.uniform(1, 10), url) for _ in range(batch_size)])

    async def single_worker() -> None:
        while left["singles"] > 0 and time.time() < until:
            left["singles"] -= 1
            secs = rng.randint(1, 5)
            await creator.single({"seconds": secs, "url": url, "labels": {"secs": str(secs)}})

    await asyncio.gather(
        *(batch_worker() for _ in range(2)), *(single_worker() for _ in range(single_workers))
    )
