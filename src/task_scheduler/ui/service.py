"""What the dashboard shows, shaped for the templates: charts as SVG geometry, destinations per
host, the shared live snapshot, and bulk actions in bounded batches. No FastAPI here."""

from __future__ import annotations

import asyncio
import math
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from task_scheduler.errors import Conflict, NotFoundError
from task_scheduler.timers.models import TimerStatus
from task_scheduler.timers.schemas import TimerPage, TimerView
from task_scheduler.timers.service import TimerService
from task_scheduler.ui import repository
from task_scheduler.ui.repository import RecentAttempt, StatusCounts

T = TypeVar("T")
LIVE_TTL_SECONDS = 3.0
ATTEMPTS_TTL_SECONDS = 10.0
BULK_BATCH = 200
BULK_MAX = 10_000
CHART_WIDTH = 600
CHART_HEIGHT = 120
DURATION_BUCKETS_MS = (10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, math.inf)


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    kind: str  # "ok" or "fail"


@dataclass(frozen=True, slots=True)
class Chart:
    title: str
    bars: list[Bar]
    width: int = CHART_WIDTH
    height: int = CHART_HEIGHT
    peak: int = 0


@dataclass(frozen=True, slots=True)
class Destination:
    host: str
    deliveries: int
    succeeded: int
    p50_ms: float
    p99_ms: float
    failing_now: bool
    last_error: str | None

    @property
    def success_rate(self) -> float:
        return self.succeeded / self.deliveries if self.deliveries else 0.0


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, math.ceil(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def destinations(attempts: list[RecentAttempt]) -> list[Destination]:
    """Per host: deliveries, success rate, p50/p99 duration, and whether its latest attempt failed."""
    by_host: dict[str, list[RecentAttempt]] = defaultdict(list)
    for attempt in attempts:
        by_host[attempt.host].append(attempt)
    found = []
    for host, rows in by_host.items():
        rows.sort(key=lambda a: a.started_at)
        durations = sorted(a.duration_ms for a in rows)
        latest = rows[-1]
        found.append(
            Destination(
                host=host,
                deliveries=len(rows),
                succeeded=sum(a.ok for a in rows),
                p50_ms=percentile(durations, 0.5),
                p99_ms=percentile(durations, 0.99),
                failing_now=not latest.ok,
                last_error=latest.error_class,
            )
        )
    return sorted(found, key=lambda d: (not d.failing_now, d.success_rate, -d.deliveries, d.host))


def _stacked(counts: list[tuple[str, int, int]], title: str) -> Chart:
    """Bars of (label, ok, failed), failures stacked on top, scaled to the tallest."""
    peak = max((ok + fail for _, ok, fail in counts), default=0)
    slot = CHART_WIDTH / max(1, len(counts))
    bars: list[Bar] = []
    for i, (label, ok, fail) in enumerate(counts):
        base = float(CHART_HEIGHT)
        for value, kind in ((ok, "ok"), (fail, "fail")):
            if value and peak:
                height = max(1.0, CHART_HEIGHT * value / peak)
                base -= height
                bars.append(
                    Bar(i * slot + 1, round(base, 1), max(1.0, slot - 2), round(height, 1), label, kind)
                )
    return Chart(title=title, bars=bars, peak=peak)


def deliveries_chart(attempts: list[RecentAttempt], now: datetime) -> Chart:
    minutes = [(now - timedelta(minutes=59 - i)).replace(second=0, microsecond=0) for i in range(60)]
    ok: dict[datetime, int] = defaultdict(int)
    failed: dict[datetime, int] = defaultdict(int)
    for a in attempts:
        minute = a.started_at.astimezone(UTC).replace(second=0, microsecond=0)
        (ok if a.ok else failed)[minute] += 1
    counts = [(f"{m:%H:%M}: {ok[m]} ok, {failed[m]} failed", ok[m], failed[m]) for m in minutes]
    return _stacked(counts, "Attempts per minute, last hour")


def _histogram(values: list[tuple[float, bool]], title: str, unit: str) -> Chart:
    counts: list[tuple[str, int, int]] = []
    low = -math.inf
    for high in DURATION_BUCKETS_MS:
        inside = [ok for v, ok in values if low < v <= high]
        name = f"≤ {high:g} {unit}" if high != math.inf else f"> {low:g} {unit}"
        counts.append((f"{name}: {len(inside)}", sum(inside), len(inside) - sum(inside)))
        low = high
    return Chart(
        title=title, bars=_stacked(counts, title).bars, peak=max((o + f for _, o, f in counts), default=0)
    )


def duration_chart(attempts: list[RecentAttempt]) -> Chart:
    return _histogram([(a.duration_ms, a.ok) for a in attempts], "Attempt duration, last hour", "ms")


def lateness_chart(attempts: list[RecentAttempt]) -> Chart:
    values = [(max(0.0, a.lateness_ms), a.ok) for a in attempts if a.lateness_ms is not None]
    return _histogram(values, "Lateness of first attempts (start - due), last hour", "ms")


@dataclass(frozen=True, slots=True)
class BulkScope:
    """The timers a bulk action applies to: the list's filters, one status, the caller's tenant."""

    tenant: str | None
    status: TimerStatus
    labels: dict[str, str]
    due_after: datetime | None
    due_before: datetime | None


class TtlCache(Generic[T]):
    """Answers kept `ttl` seconds per key (the visible tenant) and shared by every caller of this
    instance; callers that miss together wait for one computation. At most `max_keys` keys."""

    def __init__(self, ttl: float, max_keys: int = 1000) -> None:
        self._ttl, self._max_keys = ttl, max_keys
        self._values: dict[str | None, tuple[float, T]] = {}
        self._locks: defaultdict[str | None, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def get(self, key: str | None, compute: Callable[[], Awaitable[T]]) -> T:
        found = self._values.get(key)
        if found is not None and found[0] > time.monotonic():
            return found[1]
        async with self._locks[key]:
            found = self._values.get(key)
            if found is not None and found[0] > time.monotonic():
                return found[1]
            value = await compute()
            if len(self._values) >= self._max_keys:
                self._values.clear()
                self._locks.clear()
            self._values[key] = (time.monotonic() + self._ttl, value)
            return value


@dataclass
class Dashboard:
    """The dashboard's reads and bulk actions. The live snapshot (`LIVE_TTL_SECONDS`) and the
    recent attempts behind the charts (`ATTEMPTS_TTL_SECONDS`) are cached per visible tenant and
    shared by every tab of this instance: one query per interval, whatever the viewers."""

    engine: AsyncEngine
    timers: TimerService
    _live: TtlCache[dict[str, object]] = field(default_factory=lambda: TtlCache(LIVE_TTL_SECONDS))
    _attempts: TtlCache[list[RecentAttempt]] = field(default_factory=lambda: TtlCache(ATTEMPTS_TTL_SECONDS))

    async def counts(self, *, tenant: str | None) -> StatusCounts:
        async with self.engine.connect() as conn:
            return await repository.status_counts(conn, tenant=tenant)

    async def recent_attempts(self, *, tenant: str | None) -> list[RecentAttempt]:
        async def read() -> list[RecentAttempt]:
            async with self.engine.connect() as conn:
                return await repository.recent_attempts(conn, tenant=tenant)

        return await self._attempts.get(tenant, read)

    async def live(self, *, tenant: str | None) -> dict[str, object]:
        async def read() -> dict[str, object]:
            counts = await self.counts(tenant=tenant)
            return {
                "counts": counts.counts,
                "capped": counts.capped,
                "estimated": counts.estimated,
                "upper_bounds": sorted(counts.upper_bounds),
                "at": datetime.now(UTC).isoformat(),
            }

        return await self._live.get(tenant, read)

    async def _page(self, scope: BulkScope, cursor: str | None, limit: int) -> TimerPage:
        return await self.timers.list(
            tenant=scope.tenant,
            status=scope.status,
            labels=scope.labels,
            due_after=scope.due_after,
            due_before=scope.due_before,
            cursor=cursor,
            limit=limit,
        )

    async def matching(self, scope: BulkScope, *, upto: int = BULK_MAX) -> int:
        """How many timers a bulk action would touch, counted by pages of the list, up to `upto`."""
        total, cursor = 0, None
        while total < upto:
            page = await self._page(scope, cursor, min(1000, upto - total))
            total += len(page.timers)
            cursor = page.next_cursor
            if cursor is None:
                break
        return total

    async def apply(
        self, action: Callable[[int], Awaitable[TimerView]], timer_ids: list[int]
    ) -> tuple[int, int]:
        """(done, skipped): each timer on its own (a 404 or 409 skips it, the others go on)."""
        done = skipped = 0
        for timer_id in timer_ids:
            try:
                await action(timer_id)
                done += 1
            except (NotFoundError, Conflict):
                skipped += 1
        return done, skipped

    async def apply_matching(
        self, action: Callable[[int], Awaitable[TimerView]], scope: BulkScope
    ) -> tuple[int, int]:
        """The action on every timer in scope, in batches of `BULK_BATCH`, at most `BULK_MAX`.
        Acting on a timer moves it out of the scope's status, so each batch reads the first page
        again; a timer skipped (raced) is not tried twice."""
        done = skipped = 0
        seen: set[int] = set()
        while done + skipped < BULK_MAX:
            page = await self._page(scope, None, BULK_BATCH)
            batch = [t.timer_id for t in page.timers if t.timer_id not in seen]
            if not batch:
                break
            seen.update(batch)
            d, s = await self.apply(action, batch)
            done, skipped = done + d, skipped + s
        return done, skipped
