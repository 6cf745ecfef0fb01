"""Per-host delivery slots: at most `per_host` requests in flight to one host."""

from __future__ import annotations

import asyncio
import bisect
import collections
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

# A destination back from a hold starts at this share of `per_host` (slow start).
RAMP_FLOOR = 0.1


@dataclass(slots=True)
class _Host:
    semaphore: asyncio.Semaphore
    users: int = 0  # timers holding or waiting for one of its slots


@dataclass(slots=True)
class _Ramp:
    """A destination's slow start: requests in flight to it here, and the timers waiting for room."""

    started: float
    in_flight: int = 0
    waiters: collections.deque[asyncio.Future[None]] = field(default_factory=collections.deque)


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
    Its own timers lose nothing: two rounds of them still wait for its slots.

    Slow start (`ramp_up`): a destination whose timers were held (its breaker open, or paused)
    gets, for `slow_start_seconds` after they are let go, at most RAMP_FLOOR of `per_host`
    requests in flight here, rising linearly to `per_host`. A receiver back from an outage is not
    met by its whole backlog at once, and the other destinations keep more of the CPU: 10,000 held
    timers released to 100 requests in flight on each of 3 instances made a healthy destination's
    timers due meanwhile several hundred ms late on 2 cores (bench/destinations_outage.py; the
    figures are in docs/performance.md)."""

    def __init__(self, per_host: int, slow_start_seconds: float = 0.0) -> None:
        self._per_host = per_host
        self._slow_start = slow_start_seconds
        self._hosts: dict[str, _Host] = {}
        # Per host, when each waiting timer began to wait (oldest first, as the semaphore wakes).
        self._waiting: dict[str, collections.deque[float]] = {}
        # Per destination key, how many of its timers wait for a full host (or its slow start).
        self._queued: dict[str, int] = {}
        self._ramps: dict[str, _Ramp] = {}  # per destination key, while it starts slowly

    @property
    def hosts_in_use(self) -> int:
        return len(self._hosts)

    def crowded(self, threshold: int) -> list[str]:
        """The destination keys with at least `threshold` timers waiting for their host here."""
        return sorted(key for key, waiting in self._queued.items() if waiting >= threshold)

    def ramp_up(self, destination: str) -> None:
        """`destination`'s timers are let go after a hold: start it slowly (if slow start is on)."""
        if self._slow_start <= 0:
            return
        ramp = self._ramps.get(destination)
        if ramp is None:
            self._ramps[destination] = _Ramp(time.monotonic())
        else:  # held and let go again while starting: start over, keeping who is in flight
            ramp.started = time.monotonic()

    def ramp_limit(self, destination: str) -> int | None:
        """Requests in flight `destination` may have here during its slow start; None: no limit."""
        ramp = self._ramps.get(destination)
        return None if ramp is None else self._limit(ramp)

    @contextlib.asynccontextmanager
    async def slot(self, url: str, destination: str | None = None) -> AsyncIterator[str]:
        """Hold one of the URL's host's slots; yields the host's name (SendSlots' key)."""
        name = urlsplit(url).hostname or ""
        host = self._hosts.get(name)
        if host is None:
            host = self._hosts[name] = _Host(asyncio.Semaphore(self._per_host))
        host.users += 1
        try:
            # The destination's slow start first, then the host's slot: a timer waiting for its
            # destination's room does not take a slot other destinations on the host could use.
            ramp = self._ramps.get(destination) if destination is not None and self._ramps else None
            if ramp is not None and destination is not None:
                ramp = await self._enter_ramp(name, destination, ramp)
            try:
                await self._acquire(name, host.semaphore, destination)
                try:
                    yield name
                finally:
                    host.semaphore.release()
            finally:
                if ramp is not None and destination is not None:
                    self._leave_ramp(destination, ramp)
        finally:
            host.users -= 1
            if not host.users:
                del self._hosts[name]

    async def _acquire(self, name: str, semaphore: asyncio.Semaphore, destination: str | None) -> None:
        if not semaphore.locked():
            await semaphore.acquire()
            return
        with self._counted(name, destination):
            await semaphore.acquire()

    def _limit(self, ramp: _Ramp) -> int | None:
        elapsed = time.monotonic() - ramp.started
        if elapsed >= self._slow_start:
            return None
        share = RAMP_FLOOR + (1 - RAMP_FLOOR) * elapsed / self._slow_start
        return max(1, int(self._per_host * share))

    async def _enter_ramp(self, name: str, destination: str, ramp: _Ramp) -> _Ramp | None:
        """Wait for room in `destination`'s slow start; returns the ramp whose room was taken
        (to leave it after the request), None once the slow start is over."""
        limit = self._limit(ramp)
        if limit is None:
            if self._ramps.get(destination) is ramp and not ramp.waiters:
                del self._ramps[destination]
            return None
        if ramp.in_flight < limit and not ramp.waiters:
            ramp.in_flight += 1
            return ramp
        room: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        ramp.waiters.append(room)
        with self._counted(name, destination):
            try:
                await room
            except asyncio.CancelledError:
                if room.done() and not room.cancelled():  # given room just as it was cancelled
                    self._leave_ramp(destination, ramp)
                else:
                    with contextlib.suppress(ValueError):
                        ramp.waiters.remove(room)
                raise
        return ramp

    def _leave_ramp(self, destination: str, ramp: _Ramp) -> None:
        """One request of the slow start ended: let in as many waiting as its limit now allows
        (all of them once it is over; the limit only rises, so a release is always enough)."""
        ramp.in_flight -= 1
        limit = self._limit(ramp)
        while ramp.waiters and (limit is None or ramp.in_flight < limit):
            room = ramp.waiters.popleft()
            if not room.done():
                room.set_result(None)
                ramp.in_flight += 1
        if limit is None and not ramp.waiters and not ramp.in_flight and self._ramps.get(destination) is ramp:
            del self._ramps[destination]

    @contextlib.contextmanager
    def _counted(self, name: str, destination: str | None) -> Iterator[None]:
        """Count a timer waiting for `name`'s slots (or its destination's slow start) while it waits."""
        queue = self._waiting.setdefault(name, collections.deque())
        queue.append(time.monotonic())
        if destination is not None:
            self._queued[destination] = self._queued.get(destination, 0) + 1
        try:
            yield
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


class SendSlots:
    """At most `limit` requests in flight in the whole instance, handed out fairly between hosts.

    A slot freed while requests wait goes to the waiting host with the fewest requests in flight
    (first come, first served within a host; between hosts with as many, the one longest at
    that count). With a plain first-come semaphore, two hosts answering slowly (a 2xx just
    inside the request timeout, which never opens a breaker) held every slot of the instance:
    each slot a fast host's request freed went to whichever slow request queued first, so within
    a few rounds the slow hosts held all of them again, and every other timer of the instance
    waited up to a request timeout for each send. Now a fast host, once it has a slot, keeps
    getting the slots it frees (it has fewer in flight), and the next slot freed anywhere goes
    to a host with none.

    The waiting hosts are kept in tiers by their requests in flight, so a hand-off looks at the
    lowest tier, not at every waiting host (a burst to thousands of distinct hosts has thousands
    waiting).
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._in_flight = 0
        self._by_host: dict[str, int] = {}
        self._waiting: dict[str, collections.deque[asyncio.Future[None]]] = {}
        # Waiting hosts by their requests in flight; each tier an insertion-ordered set.
        self._tiers: dict[int, dict[str, None]] = {}

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def in_flight_to(self, host: str) -> int:
        return self._by_host.get(host, 0)

    @contextlib.asynccontextmanager
    async def slot(self, host: str) -> AsyncIterator[None]:
        """One slot, taken inside the host's own slot (HostSlots.slot) and let go two turns of the
        loop after it while requests wait for one: the host's slot is let go right after this
        context, and the host's next timer, woken by that, must be queued here before the slot is
        handed on. Let go at once,
        it went to a slow host's request every time, and a fast host had one request out per
        round of the slow hosts' (measured: 12 fast timers took 4 rounds of 2 s)."""
        await self._acquire(host)
        try:
            yield
        finally:
            if self._waiting:
                loop = asyncio.get_running_loop()
                loop.call_soon(loop.call_soon, self._release, host)
            else:  # nobody to hand it to: the next request takes it as it comes
                self._release(host)

    async def _acquire(self, host: str) -> None:
        if self._in_flight < self._limit and not self._waiting:
            self._take(host)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._waiting.get(host)
        if queue is None:
            queue = self._waiting[host] = collections.deque()
            self._tier(host, self._by_host.get(host, 0))
        queue.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release(host)  # handed the slot as it was cancelled: hand it on
            elif self._waiting.get(host) is queue:
                with contextlib.suppress(ValueError):
                    queue.remove(waiter)
                if not queue:
                    self._stop_waiting(host)
            raise

    def _tier(self, host: str, count: int) -> None:
        self._tiers.setdefault(count, {})[host] = None

    def _untier(self, host: str, count: int) -> None:
        tier = self._tiers[count]
        del tier[host]
        if not tier:
            del self._tiers[count]

    def _stop_waiting(self, host: str) -> None:
        del self._waiting[host]
        self._untier(host, self._by_host.get(host, 0))

    def _count(self, host: str, change: int) -> None:
        before = self._by_host.get(host, 0)
        after = before + change
        if after:
            self._by_host[host] = after
        else:
            del self._by_host[host]
        if host in self._waiting:  # a waiting host moves to its new tier (at the end)
            self._untier(host, before)
            self._tier(host, after)

    def _take(self, host: str) -> None:
        self._in_flight += 1
        self._count(host, 1)

    def _release(self, host: str) -> None:
        self._in_flight -= 1
        self._count(host, -1)
        while self._in_flight < self._limit and self._waiting:
            chosen = next(iter(self._tiers[min(self._tiers)]))
            queue = self._waiting[chosen]
            waiter = queue.popleft()
            if not queue:
                self._stop_waiting(chosen)
            if waiter.done():  # cancelled while queued (its task removes it too)
                continue
            self._take(chosen)
            waiter.set_result(None)
