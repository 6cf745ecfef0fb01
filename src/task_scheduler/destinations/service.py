"""Reading and steering a tenant's destinations (pause, resume); their breakers are driven by the
outcome writer (delivery/writer.py) and the claim (delivery/dispatcher.py)."""

from __future__ import annotations

import base64
import binascii
import logging
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from task_scheduler import metrics
from task_scheduler.config import Settings
from task_scheduler.delivery.notifications import destination_event_timers
from task_scheduler.destinations import repository
from task_scheduler.destinations.flow import default_burst
from task_scheduler.destinations.health import WINDOW_MINUTES, health_of
from task_scheduler.destinations.keys import MAX_LOOKUP_LENGTH, key_problem, rollup_hosts
from task_scheduler.destinations.models import BreakerState
from task_scheduler.destinations.repository import DestinationRow, Transition
from task_scheduler.destinations.schemas import (
    DestinationHistoryEntry,
    DestinationPage,
    DestinationUpdate,
    DestinationView,
)
from task_scheduler.errors import ValidationFailed
from task_scheduler.logs import log_event
from task_scheduler.timers import repository as timer_repository

logger = logging.getLogger(__name__)


class DestinationService:
    def __init__(self, *, engine: AsyncEngine, settings: Settings) -> None:
        self._engine = engine
        self._notify_within = settings.lookahead_seconds
        self._slow_start = settings.slow_start_seconds

    async def get(self, key: str, *, tenant: str) -> DestinationView:
        """Its state (a destination never paused nor failing is closed), its waiting timers, its
        timers in flight and its recent health (destinations/health.py)."""
        _check_key(key)
        async with self._engine.connect() as conn:
            row = await repository.get_destination(conn, tenant=tenant, key=key)
            waiting = await repository.count_waiting(conn, tenant=tenant, key=key)
            in_flight = await repository.count_in_flight(conn, tenant=tenant, keys=[key])
            rollups = await repository.recent_rollups(
                conn, tenant=tenant, hosts=rollup_hosts(key), minutes=WINDOW_MINUTES
            )
        view = _healthy(key) if row is None else _view(row, self._slow_start)
        return view.model_copy(
            update={"waiting": waiting, "in_flight": in_flight.get(key, 0), "health": health_of(key, rollups)}
        )

    async def list(self, *, tenant: str, cursor: str | None, limit: int) -> DestinationPage:
        """A page of the tenant's destinations with a row, each with its in-flight timers and
        health (one statement each for the whole page)."""
        after = None if cursor is None else _decode_cursor(cursor)
        async with self._engine.connect() as conn:
            rows = await repository.list_destinations(conn, tenant=tenant, after=after, limit=limit + 1)
            more = len(rows) > limit
            rows = rows[:limit]
            keys = [r.key for r in rows]
            in_flight = await repository.count_in_flight(conn, tenant=tenant, keys=keys) if keys else {}
            hosts = sorted({host for key in keys for host in rollup_hosts(key)})
            rollups = await repository.recent_rollups(
                conn, tenant=tenant, hosts=hosts, minutes=WINDOW_MINUTES
            )
        next_cursor = _encode_cursor(rows[-1].key) if more else None
        views = [
            _view(r, self._slow_start).model_copy(
                update={"in_flight": in_flight.get(r.key, 0), "health": health_of(r.key, rollups)}
            )
            for r in rows
        ]
        return DestinationPage(destinations=views, next_cursor=next_cursor)

    async def update(self, key: str, change: DestinationUpdate, *, tenant: str) -> DestinationView:
        """Pause, unpause, set or lift limits (the fields given); the dispatchers are woken for
        any change but a pause (a lifted pause or limit may release timers at once)."""
        _check_key(key)
        given = frozenset(change.model_fields_set)
        if not given:
            raise ValidationFailed(
                "give at least one of paused, rate_per_second, burst, parallelism", field=None
            )
        if change.burst is not None and "rate_per_second" in given and change.rate_per_second is None:
            raise ValidationFailed("burst: a burst needs a rate_per_second", field="burst")
        update = repository.Change(
            given,
            paused=bool(change.paused),
            rate_per_second=change.rate_per_second,
            burst=change.burst,
            parallelism=change.parallelism,
        )
        async with self._engine.begin() as conn:
            row = await repository.update(conn, tenant=tenant, key=key, change=update)
            if change.paused is not True:
                await _wake_dispatchers(conn)
        if "paused" in given:
            action = "destination.paused" if change.paused else "destination.unpaused"
            log_event(logger, action, tenant=tenant, destination=key)
        limits = given - {"paused"}
        if limits:
            log_event(
                logger,
                "destination.limited",
                tenant=tenant,
                destination=key,
                rate_per_second=row.rate_per_second,
                burst=_burst(row),
                parallelism=row.parallelism,
            )
        return _view(row, self._slow_start)

    async def resume(self, key: str, *, tenant: str) -> DestinationView:
        """Unpause and close the breaker (its failures forgotten): its timers go out again."""
        _check_key(key)
        async with self._engine.begin() as conn:
            row, before = await repository.resume(conn, tenant=tenant, key=key)
            if before is not BreakerState.CLOSED:
                change = Transition(tenant, key, before, BreakerState.CLOSED, 0)
                events = await destination_event_timers(conn, [change])
                if events:
                    await timer_repository.insert_timers(
                        conn, timers=events, notify_within=self._notify_within
                    )
                metrics.BREAKER_TRANSITIONS.labels(BreakerState.CLOSED.value).inc()
            await _wake_dispatchers(conn)
        log_event(logger, "destination.resumed", tenant=tenant, destination=key, was=before.value)
        return _view(row, self._slow_start)


async def _wake_dispatchers(conn: AsyncConnection) -> None:
    """Tell every dispatcher (on commit) that timers may be claimable now."""
    await conn.execute(text(f"SELECT pg_notify('{timer_repository.NOTIFY_CHANNEL}', '')"))


def _check_key(key: str) -> None:
    problem = key_problem(key, limit=MAX_LOOKUP_LENGTH)
    if problem is not None:
        raise ValidationFailed(f"key: {problem}", field="key")


def _encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str:
    try:
        key = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValidationFailed("cursor: not a cursor this service issued", field="cursor") from None
    if key_problem(key, limit=MAX_LOOKUP_LENGTH) is not None:
        raise ValidationFailed("cursor: not a cursor this service issued", field="cursor")
    return key


def _healthy(key: str) -> DestinationView:
    return DestinationView(
        key=key, paused=False, breaker_state="closed", consecutive_failures=0, opened_at=None, updated_at=None
    )


def _view(row: DestinationRow, slow_start_seconds: float) -> DestinationView:
    history = _history(row.history)
    return DestinationView(
        key=row.key,
        paused=row.paused,
        breaker_state=row.breaker_state.value,
        consecutive_failures=row.consecutive_failures,
        opened_at=row.opened_at,
        failing_since=row.failing_since,
        disabled_at=row.disabled_at,
        updated_at=row.updated_at,
        slow_start_until=_slow_start_until(row, history, slow_start_seconds),
        history=history,
        rate_per_second=row.rate_per_second,
        burst=_burst(row),
        parallelism=row.parallelism,
    )


# The history events after which the dispatchers let a destination's timers go (delivery/host_slots.py).
_LET_GO = frozenset({"closed", "resumed", "unpaused"})


def _slow_start_until(
    row: DestinationRow, history: list[DestinationHistoryEntry], seconds: float
) -> datetime | None:
    """When the slow start the dispatchers began as its timers were let go ends, if it has not:
    from its newest history entry (each instance starts within a poll interval of it)."""
    if seconds <= 0 or row.paused or row.breaker_state is not BreakerState.CLOSED or not history:
        return None
    newest = history[0]
    if newest.event not in _LET_GO:
        return None
    at = newest.at if newest.at.tzinfo is not None else newest.at.replace(tzinfo=UTC)
    try:
        until = at + timedelta(seconds=seconds)
    except OverflowError:  # a stored time at the end of the calendar (a row from outside)
        return None
    return until if until > datetime.now(UTC) else None


def _history(stored: object) -> list[DestinationHistoryEntry]:
    """The stored history's well-formed entries (a row written from outside may hold anything)."""
    entries: list[DestinationHistoryEntry] = []
    for item in stored if isinstance(stored, list) else []:
        try:
            entries.append(DestinationHistoryEntry.model_validate(item))
        except ValidationError:
            continue
    return entries


def _burst(row: DestinationRow) -> int | None:
    """The bucket's size in force: the one set, or by default one second's worth."""
    if row.rate_per_second is None:
        return None
    return row.burst if row.burst is not None else default_burst(row.rate_per_second)
