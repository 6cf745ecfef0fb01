"""What the dashboard shows, shaped for the templates: charts as SVG geometry, destinations per
host, the shared live snapshot, and bulk actions in bounded batches. No FastAPI here."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from task_scheduler.delivery import failures
from task_scheduler.delivery.verdict import UNPROCESSABLE
from task_scheduler.errors import Conflict, NotFoundError
from task_scheduler.timers.models import TimerStatus
from task_scheduler.timers.schemas import TimerView
from task_scheduler.timers.service import TimerService
from task_scheduler.ui import repository
from task_scheduler.ui.repository import DURATION_EDGES_MS, AttemptRollup, StatusCounts

T = TypeVar("T")
LIVE_TTL_SECONDS = 3.0
ATTEMPTS_TTL_SECONDS = 10.0
BULK_BATCH = 200
BULK_MAX = 10_000
SEARCH_WINDOW = 2_000
# A bulk action by host or error class looks through at most about this many timers of the list.
BULK_SEARCH_ROWS = 100_000
CHART_WIDTH = 600
CHART_HEIGHT = 120


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


def destinations(rollup: AttemptRollup) -> list[Destination]:
    """Per host: attempts, success rate, p50/p99 duration, and whether its latest attempt failed;
    the failing first, then the least successful."""
    found = [
        Destination(
            host=h.authority,
            deliveries=h.attempts,
            succeeded=h.succeeded,
            p50_ms=h.p50_ms,
            p99_ms=h.p99_ms,
            failing_now=not h.last_ok,
            last_error=h.last_error,
        )
        for h in rollup.hosts
    ]
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


def deliveries_chart(rollup: AttemptRollup, now: datetime) -> Chart:
    minutes = [(now - timedelta(minutes=59 - i)).replace(second=0, microsecond=0) for i in range(60)]
    counts = []
    for minute in minutes:
        ok, failed = rollup.per_minute.get(minute, (0, 0))
        counts.append((f"{minute:%H:%M}: {ok} ok, {failed} failed", ok, failed))
    return _stacked(counts, "Attempts per minute, last hour")


def hourly_chart(rollup: AttemptRollup, now: datetime) -> Chart:
    hours = [(now - timedelta(hours=23 - i)).replace(minute=0, second=0, microsecond=0) for i in range(24)]
    counts = []
    for hour in hours:
        ok, failed = rollup.per_hour.get(hour, (0, 0))
        counts.append((f"{hour:%H}:00: {ok} ok, {failed} failed", ok, failed))
    return _stacked(counts, "Attempts per hour, last day")


def _bucket_name(index: int, unit: str) -> str:
    edges = DURATION_EDGES_MS
    if index == 0:
        return f"< {edges[0]:g} {unit}"
    if index >= len(edges):
        return f"≥ {edges[-1]:g} {unit}"
    return f"{edges[index - 1]:g}-{edges[index]:g} {unit}"


def _histogram(buckets: dict[int, tuple[int, int]], title: str) -> Chart:
    counts = []
    for index in range(len(DURATION_EDGES_MS) + 1):
        ok, failed = buckets.get(index, (0, 0))
        counts.append((f"{_bucket_name(index, 'ms')}: {ok + failed}", ok, failed))
    return _stacked(counts, title)


def duration_chart(rollup: AttemptRollup) -> Chart:
    return _histogram(rollup.durations, "Attempt duration, last hour")


def lateness_chart(rollup: AttemptRollup) -> Chart:
    return _histogram(rollup.lateness, "Lateness of first attempts (start - due), last hour")


def lateness_day_chart(rollup: AttemptRollup) -> Chart:
    return _histogram(rollup.lateness_day, "Lateness of first attempts (start - due), last day")


@dataclass(frozen=True, slots=True)
class TimerScope:
    """The timers a list shows or a bulk action applies to (which then names one status): the
    caller's tenant and the list's filters. `host` and `error_class` no index serves: a list by
    them reads windows of `SEARCH_WINDOW` timers (timers/repository.py: scan_timers)."""

    tenant: str | None
    status: TimerStatus | None
    labels: dict[str, str]
    due_after: datetime | None
    due_before: datetime | None
    host: str | None = None
    error_class: str | None = None

    @property
    def searched(self) -> bool:
        return self.host is not None or self.error_class is not None


@dataclass(frozen=True, slots=True)
class ListedPage:
    timers: list[TimerView]
    next_cursor: str | None
    scanned: int | None  # timers read for a searched scope (None: the list's own index order)


# What timer_attempts.error_class holds: the failures table's classes, an HTTP answer's (client.py:
# judge), and the outcome writer's own. Offered as suggestions; any other class can be typed.
ERROR_CLASSES = tuple(
    sorted(
        {f.error_class for f in vars(failures).values() if isinstance(f, failures.Failure)}
        | {"http_status", "redirect", "unstorable", UNPROCESSABLE}
    )
)


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
    shared by every tab of this instance: one query per interval, whatever the viewers. The charts
    read the rollups (ui/rollups.py), never the timers or attempt tables."""

    engine: AsyncEngine
    timers: TimerService
    _live: TtlCache[dict[str, object]] = field(default_factory=lambda: TtlCache(LIVE_TTL_SECONDS))
    _attempts: TtlCache[AttemptRollup] = field(default_factory=lambda: TtlCache(ATTEMPTS_TTL_SECONDS))

    async def counts(self, *, tenant: str | None) -> StatusCounts:
        async with self.engine.connect() as conn:
            return await repository.status_counts(conn, tenant=tenant)

    async def attempts(self, *, tenant: str | None) -> AttemptRollup:
        async def read() -> AttemptRollup:
            async with self.engine.connect() as conn:
                return await repository.attempt_rollup(conn, tenant=tenant)

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

    async def next_due(self, *, tenant: str | None, limit: int = 10) -> list[TimerView]:
        """The next pending timers by due time. Every tenant's: from the pending partial index
        (overdue ones first). One tenant's: the timers due from now on, from its (tenant, due_at,
        id) index, of which the pending ones (no index holds a tenant's pending timers in order)."""
        if tenant is None:
            scope = TimerScope(None, TimerStatus.PENDING, {}, None, None)
            return (await self.page(scope, None, limit)).timers
        page = await self.timers.list(
            tenant=tenant,
            status=None,
            labels={},
            due_after=datetime.now(UTC),
            due_before=None,
            cursor=None,
            limit=5 * limit,
        )
        return [t for t in page.timers if t.status == TimerStatus.PENDING][:limit]

    async def page(self, scope: TimerScope, cursor: str | None, limit: int) -> ListedPage:
        """A page of the list; a searched scope's may hold fewer than `limit` (or none) with a
        next cursor: its window was read to the end."""
        if not scope.searched:
            found = await self.timers.list(
                tenant=scope.tenant,
                status=scope.status,
                labels=scope.labels,
                due_after=scope.due_after,
                due_before=scope.due_before,
                cursor=cursor,
                limit=limit,
            )
            return ListedPage(found.timers, found.next_cursor, None)
        searched = await self.timers.search(
            tenant=scope.tenant,
            status=scope.status,
            labels=scope.labels,
            due_after=scope.due_after,
            due_before=scope.due_before,
            host=scope.host,
            error_class=scope.error_class,
            cursor=cursor,
            limit=limit,
            window=SEARCH_WINDOW,
        )
        return ListedPage(searched.timers, searched.next_cursor, searched.scanned)

    async def matching(self, scope: TimerScope, *, upto: int = BULK_MAX) -> tuple[int, bool]:
        """How many timers a bulk action would touch, up to `upto`, and whether a searched scope
        was cut short by `BULK_SEARCH_ROWS` (the action then stops at the same place)."""
        total = scanned = 0
        cursor: str | None = None
        while total < upto:
            # a searched scope in the action's pages: its windows then end where the action's do
            page = await self.page(scope, cursor, BULK_BATCH if scope.searched else min(1000, upto - total))
            total += len(page.timers)
            scanned += page.scanned or 0
            cursor = page.next_cursor
            if cursor is None:
                return min(total, upto), False
            if scanned >= BULK_SEARCH_ROWS:
                return min(total, upto), True
        return min(total, upto), False

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
        self, action: Callable[[int], Awaitable[TimerView]], scope: TimerScope
    ) -> tuple[int, int]:
        """The action on every timer in scope, in pages of `BULK_BATCH` (as `matching` counted
        them), at most `BULK_MAX`. Acting moves a timer out of the scope's status, behind the
        cursor; a timer seen once (acted on, or skipped: raced) is not tried again."""
        done = skipped = 0
        seen: set[int] = set()
        cursor: str | None = None
        scanned = 0
        while done + skipped < BULK_MAX:
            page = await self.page(scope, cursor, BULK_BATCH)
            batch = [t.timer_id for t in page.timers if t.timer_id not in seen][: BULK_MAX - done - skipped]
            seen.update(batch)
            d, s = await self.apply(action, batch)
            done, skipped = done + d, skipped + s
            scanned += page.scanned or 0
            cursor = page.next_cursor
            if cursor is None or scanned >= BULK_SEARCH_ROWS:
                break
        return done, skipped
