"""Per-host delivery slots: at most `per_host` requests in flight to one host."""

from __future__ import annotations

import asyncio
import bisect
import collections
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(slots=True)
class _Host:
    semaphore: asyncio.Semaphore
    users: int = 0  # timers holding or waiting for one of its slots


class HostSlots:
    """At most `per_host` requests in flight to one host (by URL host name).

    A host is forgotten as soon as no timer holds or waits for one of its slots, so the table
    holds only hosts in use (bounded by the timers held) and never drops a semaphore in use
    (evicting one with slots taken let a host get more than `per_host` requests at once).

    Timers waiting for a full host are counted, with the time each began to wait: the claim loop
    does not charge the instance's budget of held timers for those that have waited longer than
    a second, so a slow host's growing backlog cannot stop other hosts' timers from being claimed
    (it did: with one host answering in 10 s, the backlog filled the budget within seconds and
    the other hosts' timers waited for its slots). A busy but fast host's queue turns over within
    the second and stays charged, which keeps the memory of a plain burst where it was.

    They are also counted per destination (`crowded`): the claim passes by a destination that
    already has more timers waiting here than its host's slots can take in two rounds, so that a
    backlog released at once (a breaker that closed, a paused destination resumed) cannot fill
    every claim ahead of other destinations' timers due now (it did: earlier due, the 10,000
    held timers of a destination back from a 60 s outage were claimed before a healthy
    destination's timers due meanwhile, which came up to 3 s late: bench/destinations_outage.py).
    Its own timers lose nothing: two rounds of them still wait for its slots."""

    def __init__(self, per_host: int) -> None:
        self._per_host = per_host
        self._hosts: dict[str, _Host] = {}
        # Per host, when each waiting timer began to wait (oldest first, as the semaphore wakes).
        self._waiting: dict[str, collections.deque[float]] = {}
        # Per destination key, how many of its timers wait for a full host.
        self._queued: dict[str, int] = {}

    @property
    def hosts_in_use(self) -> int:
        return len(self._hosts)

    def crowded(self, threshold: int) -> list[str]:
        """The destination keys with at least `threshold` timers waiting for their host here."""
        return sorted(key for key, waiting in self._queued.items() if waiting >= threshold)

    @contextlib.asynccontextmanager
    async def slot(self, url: str, destination: str | None = None) -> AsyncIterator[None]:
        name = urlsplit(url).hostname or ""
        host = self._hosts.get(name)
        if host is None:
            host = self._hosts[name] = _Host(asyncio.Semaphore(self._per_host))
        host.users += 1
        try:
            await self._acquire(name, host.semaphore, destination)
            try:
                yield
            finally:
                host.semaphore.release()
        finally:
            host.users -= 1
            if not host.users:
                del self._hosts[name]

    async def _acquire(self, name: str, semaphore: asyncio.Semaphore, destination: str | None) -> None:
        if not semaphore.locked():
            await semaphore.acquire()
            return
        queue = self._waiting.setdefault(name, collections.deque())
        queue.append(time.monotonic())
        if destination is not None:
            self._queued[destination] = self._queued.get(destination, 0) + 1
        try:
            await semaphore.acquire()
        finally:
            queue.popleft()
            if not queue:
                del self._waiting[name]
            if destination is not None:
                if self._queued[destination] > 1:
                    self._queued[destination] -= 1
                else:
                    del self._queued[destination]

    def waiting_longer_than(self, seconds: float) -> int:
        """How many timers have waited for a full host for more than `seconds`."""
        since = time.monotonic() - seconds
        # Each queue is in ascending order (the oldest time leaves first, whichever timer left).
        return sum(bisect.bisect_right(queue, since) for queue in self._waiting.values())
