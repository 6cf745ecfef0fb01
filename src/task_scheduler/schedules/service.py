"""Schedule use cases: validate against the settings, change the schedule and its pending run in
one transaction (under the schedule's row lock, see engine.py), shape the answer."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from task_scheduler import metrics
from task_scheduler.config import Settings
from task_scheduler.delivery.client import delivery_header_id
from task_scheduler.delivery.ssrf import AddressPolicy
from task_scheduler.errors import Conflict, NotFoundError, PreconditionFailed, ValidationFailed
from task_scheduler.group_commit import GroupCommit
from task_scheduler.logs import log_event
from task_scheduler.schedules import cron, engine
from task_scheduler.schedules import repository as repo
from task_scheduler.schedules.models import Catchup, Overlap, ScheduleStatus
from task_scheduler.schedules.repository import SCHEDULE_ROW, SCHEDULE_SPEC, ScheduleRow, ScheduleSpec
from task_scheduler.schedules.schemas import (
    MAX_BACKFILL,
    NEXT_RUNS,
    BackfillCreated,
    NextRun,
    RunPage,
    RunView,
    ScheduleBackfill,
    ScheduleCreate,
    SchedulePage,
    ScheduleUpdate,
    ScheduleView,
    _ScheduleFields,
)
from task_scheduler.timers import repository as timer_repository
from task_scheduler.timers.capacity import PendingCap
from task_scheduler.timers.repository import TimerRow
from task_scheduler.timers.schemas import EffectiveRetryPolicy
from task_scheduler.timers.service import (
    check_delivery,
    etag_of,
    parse_if_match,
    redact_headers,
    retry_defaults,
    shown_object,
)
from task_scheduler.timers.shape import RequestSpec, RetrySpec

logger = logging.getLogger(__name__)

# Fields whose change replaces the pending run (it was made from the old values).
_REMAKES_RUN = frozenset(
    {"cron", "timezone", "end_at", "jitter_seconds", "method", "headers", "body", "labels"}
    | {"max_lateness_seconds", "retry", "url"}
)
_NEW_CURSOR = frozenset({"cron", "timezone"})
# An edit's null leaves these as they are; any other null takes the default.
_NULL_KEEPS = frozenset({"cron", "url", "method", "timezone"})


class ScheduleService:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        settings: Settings,
        pending_cap: PendingCap,
        creator: ScheduleCreator | None = None,
    ) -> None:
        self._engine = engine
        self._settings = settings
        # Creates share commits (group_commit.py); without a started creator, each commits alone.
        self._creator = creator or ScheduleCreator(engine=engine, notify_within=settings.lookahead_seconds)
        # A schedule keeps one run pending (its next), and trigger and backfill add runs: each is
        # a pending timer of the tenant, counted against the same cap as the timers it creates.
        self._pending_cap = pending_cap
        self._address_policy = AddressPolicy.parse_allowed(settings.webhook_allowed_networks)
        self._retry_defaults = retry_defaults(settings)

    def _check(self, fields: _ScheduleFields) -> None:
        check_delivery(
            url=getattr(fields, "url", None),
            body=fields.body,
            retry=fields.retry,
            settings=self._settings,
            policy=self._address_policy,
        )

    async def create(self, new: ScheduleCreate, *, tenant: str) -> ScheduleView:
        self._check(new)
        spec = ScheduleSpec(
            expression=new.cron,
            cron=cron.parse(new.cron).normalised,
            timezone=new.timezone or "UTC",
            start_at=new.start_at,
            end_at=new.end_at,
            max_runs=new.max_runs,
            jitter_seconds=new.jitter_seconds or 0.0,
            overlap=new.overlap or Overlap.ALLOW,
            catchup=new.catchup or Catchup.LATEST,
            catchup_window_seconds=new.catchup_window_seconds or 3600.0,
            url=new.url,
            request=RequestSpec(method=new.method or "POST", headers=new.headers or {}, body=new.body),
            labels=new.labels or {},
            max_lateness_seconds=new.max_lateness_seconds,
            retry=_retry_spec(new),
        )
        now = datetime.now(UTC)
        first = self._first_occurrence(spec, now)
        async with self._reserved(tenant, 1):
            row = await self._creator.submit(NewSchedule(spec, tenant, first, now))
        log_event(logger, "schedule.created", schedule_id=row.id, cron=row.cron, timezone=row.timezone)
        return self._view(row)

    @contextlib.asynccontextmanager
    async def _reserved(self, tenant: str, runs: int) -> AsyncIterator[None]:
        """Count `runs` new pending runs against the tenant's cap (429 past it) for the block;
        given back if the block fails."""
        await self._pending_cap.reserve(tenant, runs)
        try:
            yield
        except BaseException:
            self._pending_cap.release(tenant, runs)
            raise

    def _first_occurrence(self, spec: ScheduleSpec, now: datetime) -> datetime:
        """The first occurrence, which must exist and be within the service's horizon."""
        first = engine.first_occurrence(spec, now)
        if first is None:
            field = (
                "end_at" if spec.end_at is not None else "start_at" if spec.start_at is not None else "cron"
            )
            raise ValidationFailed(f"{field}: the schedule would have no occurrence", field=field)
        horizon = self._settings.max_horizon_seconds
        if (first - now).total_seconds() > horizon:
            field = "start_at" if spec.start_at is not None and spec.start_at > now else "cron"
            raise ValidationFailed(
                f"{field}: the first occurrence is more than the maximum of {horizon} seconds ahead",
                field=field,
            )
        return first

    async def _make_run(
        self, conn: AsyncConnection, row: ScheduleRow, occurrence: datetime, now: datetime
    ) -> None:
        """The run at `occurrence` under the schedule's lock (an edit, a resume), unless it has one:
        inserting it beside a run a claim holds (claimed, then waiting for this schedule's row)
        would wait for that claim: a deadlock."""
        if await timer_repository.occurrences_with_runs(conn, schedule_id=row.id, occurrences=[occurrence]):
            return
        await make_first_run(conn, row, occurrence, now, notify_within=self._settings.lookahead_seconds)

    async def get(self, schedule_id: int, *, tenant: str | None) -> ScheduleView:
        async with self._engine.connect() as conn:
            row = await repo.get_schedule(conn, schedule_id=schedule_id, tenant=tenant)
        if row is None:
            raise _not_found(schedule_id)
        return self._view(row)

    async def list(
        self,
        *,
        tenant: str | None,
        labels: dict[str, str],
        status: ScheduleStatus | None,
        cursor: str | None,
        limit: int,
    ) -> SchedulePage:
        after = _decode_cursor(cursor)
        async with self._engine.connect() as conn:
            page, more = await repo.list_schedules(
                conn, tenant=tenant, labels=labels, status=status, after_id=after, limit=limit
            )
        next_cursor = str(page[-1].id) if more and page else None
        return SchedulePage(schedules=[self._view(r) for r in page], next_cursor=next_cursor)

    async def update(
        self, schedule_id: int, changes: ScheduleUpdate, *, tenant: str | None, if_match: str | None
    ) -> ScheduleView:
        self._check(changes)
        expected = None if if_match is None else parse_if_match(if_match)
        if expected == []:
            raise PreconditionFailed("If-Match does not name a version of this schedule", field="If-Match")
        columns = _changed_columns(changes)
        given = changes.model_fields_set
        now = datetime.now(UTC)
        async with self._engine.begin() as conn:
            current = await self._locked(conn, schedule_id, tenant)
            if expected is not None and current.updated_at not in expected:
                raise PreconditionFailed(
                    f"schedule {schedule_id} changed since that ETag (now {_etag(current)})", field="If-Match"
                )
            if current.status is ScheduleStatus.ENDED:
                raise _conflict(schedule_id, current.status, "edited")
            edited = SCHEDULE_ROW.build({**SCHEDULE_ROW.flatten(current), **columns})
            cursor: datetime | None
            if given & _NEW_CURSOR:
                cursor = self._first_occurrence(edited, now)
            else:  # the same series; it may end sooner now
                cursor = engine.within_end(edited, current.next_occurrence_at)
            if given & _REMAKES_RUN:
                await timer_repository.cancel_occurrences(
                    conn, schedule_id=schedule_id, reason="cancelled: the schedule was edited"
                )
            row = await repo.update_schedule(
                conn, schedule_id=schedule_id, changes=columns, next_occurrence_at=cursor
            )
            if cursor is None:
                row = await repo.end(conn, schedule_id=schedule_id) or row
            elif row.status is ScheduleStatus.ACTIVE and given & _REMAKES_RUN:
                await self._make_run(conn, row, cursor, now)
            view = self._view(row)
        log_event(logger, "schedule.updated", schedule_id=schedule_id, fields=sorted(given))
        return view

    async def _locked(self, conn: AsyncConnection, schedule_id: int, tenant: str | None) -> ScheduleRow:
        row = await repo.lock_schedule(conn, schedule_id=schedule_id, tenant=tenant)
        if row is None:
            raise _not_found(schedule_id)
        return row

    async def pause(self, schedule_id: int, *, tenant: str | None) -> ScheduleView:
        async with self._engine.begin() as conn:
            current = await self._locked(conn, schedule_id, tenant)
            row = await repo.pause(conn, schedule_id=schedule_id)
            if row is None:
                raise _conflict(schedule_id, current.status, "paused")
            await timer_repository.cancel_occurrences(
                conn, schedule_id=schedule_id, reason="cancelled: the schedule was paused"
            )
            view = self._view(row)
        log_event(logger, "schedule.paused", schedule_id=schedule_id)
        return view

    async def resume(self, schedule_id: int, *, tenant: str | None) -> ScheduleView:
        async with self._engine.begin() as conn:
            current = await self._locked(conn, schedule_id, tenant)
            row = await repo.resume(conn, schedule_id=schedule_id)
            if row is None:
                raise _conflict(schedule_id, current.status, "resumed")
            if row.next_occurrence_at is not None:
                # The run at the cursor again; its claim applies the catch-up rule to the pause.
                await self._make_run(conn, row, row.next_occurrence_at, datetime.now(UTC))
            view = self._view(row)
        log_event(logger, "schedule.resumed", schedule_id=schedule_id)
        return view

    async def end(self, schedule_id: int, *, tenant: str | None, cancel_pending: bool) -> ScheduleView:
        """End the schedule (its past runs stay); ending an ended one changes nothing."""
        async with self._engine.begin() as conn:
            current = await self._locked(conn, schedule_id, tenant)
            row = await repo.end(conn, schedule_id=schedule_id) or current
            if cancel_pending:
                await timer_repository.cancel_occurrences(
                    conn, schedule_id=schedule_id, reason="cancelled: the schedule was deleted"
                )
            view = self._view(row)
        log_event(logger, "schedule.ended", schedule_id=schedule_id, cancel_pending=cancel_pending)
        return view

    async def trigger(self, schedule_id: int, *, tenant: str | None) -> RunView:
        """One extra run now, outside the series (no occurrence, not counted in runs)."""
        now = datetime.now(UTC)
        async with self._engine.begin() as conn:
            current = await self._locked(conn, schedule_id, tenant)
            if current.status is ScheduleStatus.ENDED:
                raise _conflict(schedule_id, current.status, "triggered")
            async with self._reserved(current.tenant, 1):
                (created,) = await timer_repository.insert_timers(
                    conn,
                    timers=[engine.run_of(current, None, now=now)],
                    notify_within=self._settings.lookahead_seconds,
                )
            timer = await timer_repository.get_timer(conn, timer_id=created.id, tenant=None)
            assert timer is not None
        log_event(logger, "schedule.triggered", schedule_id=schedule_id, timer_id=created.id)
        return _run_view(timer)

    async def backfill(
        self, schedule_id: int, request: ScheduleBackfill, *, tenant: str | None
    ) -> BackfillCreated:
        """A run, due now, for each occurrence in [from, to] that has none (at most MAX_BACKFILL);
        they are runs of the series for `overlap` (but not counted in runs, nor moving the cursor)."""
        now = datetime.now(UTC)
        if request.to > now:
            raise ValidationFailed("to: must not be in the future (the series runs the future)", field="to")
        async with self._engine.begin() as conn:
            current = await self._locked(conn, schedule_id, tenant)
            if current.status is ScheduleStatus.ENDED:
                raise _conflict(schedule_id, current.status, "backfilled")
            occurrences = current.cadence().between(
                request.from_ - timedelta(microseconds=1), request.to, limit=MAX_BACKFILL + 1
            )
            if len(occurrences) > MAX_BACKFILL:
                raise ValidationFailed(
                    f"from: the range holds more than {MAX_BACKFILL} occurrences; backfill it in parts",
                    field="from",
                )
            # Only the occurrences without a run, as _make_run: a deadlock otherwise.
            have_runs = await timer_repository.occurrences_with_runs(
                conn, schedule_id=schedule_id, occurrences=occurrences
            )
            runs = [
                dataclasses.replace(engine.run_of(current, o, now=now), fire_at=now)
                for o in occurrences
                if o not in have_runs
            ]
            async with self._reserved(current.tenant, len(runs)):
                made = await timer_repository.insert_runs(
                    conn, timers=runs, notify_within=self._settings.lookahead_seconds
                )
            self._pending_cap.release(current.tenant, len(runs) - len(made))  # those already run
            rows = [
                await timer_repository.get_timer(conn, timer_id=timer_id, tenant=None) for timer_id in made
            ]
        log_event(logger, "schedule.backfilled", schedule_id=schedule_id, runs_created=len(made))
        if made:
            metrics.SCHEDULE_OCCURRENCES_CREATED.inc(len(made))
        views = sorted((_run_view(r) for r in rows if r is not None), key=lambda v: v.occurrence_at or now)
        return BackfillCreated(runs=views, already_run=len(occurrences) - len(made))

    async def runs(self, schedule_id: int, *, tenant: str | None, cursor: str | None, limit: int) -> RunPage:
        before = _decode_cursor(cursor)
        async with self._engine.connect() as conn:
            if await repo.get_schedule(conn, schedule_id=schedule_id, tenant=tenant) is None:
                raise _not_found(schedule_id)
            rows = await timer_repository.list_runs(
                conn, schedule_id=schedule_id, before_id=before, limit=limit + 1
            )
        page = rows[:limit]
        next_cursor = str(page[-1].id) if len(rows) > limit else None
        return RunPage(runs=[_run_view(r) for r in page], next_cursor=next_cursor)

    async def latest_outcomes(self, schedule_ids: Sequence[int], *, tenant: str | None) -> dict[int, RunView]:
        """Each schedule's newest run that is no longer pending (none yet: left out)."""
        async with self._engine.connect() as conn:
            rows = await timer_repository.latest_outcomes(conn, schedule_ids=schedule_ids, tenant=tenant)
        return {row.schedule_id: _run_view(row) for row in rows if row.schedule_id is not None}

    def _view(self, row: ScheduleRow) -> ScheduleView:
        retry = row.retry.or_defaults(self._retry_defaults)
        return ScheduleView.model_validate(
            {
                **SCHEDULE_ROW.flatten(row),
                "schedule_id": row.id,
                **_plan(row),
                "headers": redact_headers(row.request.headers),
                "labels": shown_object(row.labels),
                "retry": EffectiveRetryPolicy.model_validate(retry, from_attributes=True),
            }
        )


def _plan(row: ScheduleRow) -> dict[str, Any]:
    """The view's description and next runs. A row written from outside the API may hold an
    expression or a time zone that cannot be planned (the engine ends such a schedule when its
    run is claimed): it is shown as stored, with the reason and no next runs, never a 500."""
    try:
        return {"description": _description(row.cron, row.timezone), "next_runs": next_runs(row)}
    except Exception as exc:  # noqa: BLE001 - one bad row fails only itself
        return {"description": f"cannot be planned: {exc}", "next_runs": []}


def next_runs(row: ScheduleRow) -> list[NextRun]:
    """The next occurrences from the cursor, within end_at and max_runs, in UTC and local time."""
    if row.status is ScheduleStatus.ENDED or row.next_occurrence_at is None:
        return []
    count = NEXT_RUNS if row.max_runs is None else max(0, min(NEXT_RUNS, row.max_runs - row.runs))
    found = _upcoming(row.cron, row.timezone, row.start_at, row.end_at, row.next_occurrence_at, count)
    return [NextRun(utc=utc, local=local) for utc, local in found]


@functools.lru_cache(maxsize=4096)
def _upcoming(
    expression: str,
    timezone: str,
    start_at: datetime | None,
    end_at: datetime | None,
    first: datetime,
    count: int,
) -> tuple[tuple[datetime, datetime], ...]:
    """`count` occurrences from `first` (within `end_at`), in UTC and local time. Cached: a pure
    function of its arguments, and schedules answered together often share them (the same
    expression created, listed or edited in the same second): 31 µs each time otherwise."""
    cadence = ScheduleSpec(
        expression=expression, cron=expression, timezone=timezone, url="", start_at=start_at
    ).cadence()
    found: list[datetime] = []
    current: datetime | None = first
    while current is not None and len(found) < count and (end_at is None or current <= end_at):
        found.append(current)
        current = cadence.after(current)
    return tuple((moment.astimezone(UTC), moment.astimezone(cadence.zone)) for moment in found)


@functools.lru_cache(maxsize=1024)
def _description(expression: str, timezone: str) -> str:
    return cron.describe(cron.parse(expression), timezone)


def _retry_spec(fields: _ScheduleFields) -> RetrySpec:
    retry = fields.retry
    if retry is None:
        return RetrySpec()
    return RetrySpec(**retry.model_dump())


def _changed_columns(changes: ScheduleUpdate) -> dict[str, Any]:
    """The schedule columns an edit sets (the API's field → its column, or the value object's)."""
    given = changes.model_fields_set
    columns: dict[str, Any] = {}
    for name in given:
        value = getattr(changes, name)
        if value is None and name in _NULL_KEEPS:
            continue
        if name == "cron":
            columns.update(expression=value, cron=cron.parse(value).normalised)
        elif name == "retry":
            columns.update(dataclasses.asdict(_retry_spec(changes)))
        elif name in ("method", "headers", "body"):
            columns[name] = SCHEDULE_SPEC.default(name) if value is None and name != "body" else value
        elif name in SCHEDULE_SPEC.columns:
            columns[name] = SCHEDULE_SPEC.default(name) if value is None else value
    return columns


def _run_view(row: TimerRow) -> RunView:
    return RunView(
        timer_id=row.id,
        occurrence_at=row.occurrence_at,
        status=row.status,
        due_at=row.due_at,
        attempts=row.attempts,
        last_error=row.last_error,
        delivered_at=row.delivered_at,
        delivery_id=delivery_header_id(row.delivery_id),
    )


def _decode_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not (cursor.isascii() and cursor.isdigit()) or len(cursor) > 19 or int(cursor) >= 2**63:
        raise ValidationFailed("cursor: not a cursor this API returned", field="cursor")
    return int(cursor)


def _etag(row: ScheduleRow) -> str:
    return etag_of(row.updated_at)


def _not_found(schedule_id: int) -> NotFoundError:
    return NotFoundError(f"schedule {schedule_id} does not exist", field="schedule_id")


def _conflict(schedule_id: int, status: ScheduleStatus, verb: str) -> Conflict:
    return Conflict(f"schedule {schedule_id} is {status} and cannot be {verb}", status=status)


async def make_first_run(
    conn: AsyncConnection, row: ScheduleRow, occurrence: datetime, now: datetime, *, notify_within: float
) -> None:
    """The run of the series' cursor, in the transaction that made or moved the schedule."""
    await engine.insert_runs(
        conn, runs=[engine.run_of(row, occurrence, now=now)], notify_within=notify_within
    )


@dataclasses.dataclass(frozen=True, slots=True)
class NewSchedule:
    spec: ScheduleSpec
    tenant: str
    first: datetime  # its first occurrence: the run made with it
    now: datetime


class ScheduleCreator(GroupCommit[NewSchedule, ScheduleRow]):
    """Group commit of `POST /schedules`: concurrent creates share one transaction (one statement
    for the schedules, one for their first runs); if the database refuses the batch, each create
    is written again in a transaction of its own, so the one it refuses fails alone."""

    name = "schedule-creator"
    unwritten_message = "the service is shutting down; the schedule was not created"
    alone_on_failure = True

    def __init__(self, *, engine: AsyncEngine, notify_within: float) -> None:
        super().__init__(engine=engine)
        self._notify_within = notify_within

    async def write(self, conn: AsyncConnection, items: list[NewSchedule]) -> list[ScheduleRow | Exception]:
        return list(await self._insert_all(conn, items))

    def refused(self, count: int, error: Exception) -> None:
        log_event(logger, "schedule.create_batch_refused", logging.WARNING, count=count, error=repr(error))

    async def _insert_all(self, conn: AsyncConnection, items: list[NewSchedule]) -> list[ScheduleRow]:
        rows = await repo.insert_schedules_with_runs(
            conn,
            new=[
                (i.spec, i.tenant, i.first, engine.new_run(i.spec, i.tenant, None, i.first, now=i.now))
                for i in items
            ],
            notify_within=self._notify_within,
        )
        metrics.SCHEDULE_OCCURRENCES_CREATED.inc(len(rows))
        return rows
