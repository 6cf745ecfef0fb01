"""The schedule engine: how a series of runs moves on, exactly once per occurrence.

Each run of a schedule is an ordinary timer (`timers.schedule_id`, `timers.occurrence_at`), so
delivery, retries, signatures, the attempt log, cancellation and metrics are the timer engine's.

The next occurrence always exists as a pending timer while the schedule is active:
  * `POST /schedules` inserts the schedule and its first run in one transaction;
  * the claim of a run creates the one after it, in the claim's own transaction (`advance`, called
    by the dispatcher between the claim statement and its commit): if that transaction is lost
    (a crash, kill -9, a lost connection), the claim is lost with it, the run is pending again and
    its next claim advances the series then. Nothing can commit one without the other.
  * pause, resume, an edit of the expression or time zone, and delete change the schedule's row
    and its pending run in one transaction;
  * a pending run cancelled through the timer API (DELETE /timer/{id}) skips that occurrence: the
    cancel creates the next run in its transaction (`skip_cancelled`).

Exactly once, in three locks and one index:
  * the schedule's row holds the cursor `next_occurrence_at`: the occurrence of its pending run.
    A claim advances the series only when the run it claimed is the cursor's, under the row's lock
    (`SELECT ... FOR UPDATE`, schedules locked in id order so claimers never wait in a cycle), and
    moves the cursor in the same transaction; a run claimed again later (a retry, a lapsed lease,
    a returned lease) no longer matches and advances nothing;
  * API changes lock the same row first, then cancel the pending run with `SKIP LOCKED`: a run a
    claim holds at that moment is already firing (the claim then waits for the row and sees the
    change), and waiting for it could deadlock;
  * the partial UNIQUE index on (schedule_id, occurrence_at) over runs not cancelled makes a
    second run of one occurrence impossible whatever the code above gets wrong
    (`ON CONFLICT DO NOTHING`).

Catch-up (`catchup`), decided when the cursor's run is claimed, at the database's `now`. A run is
*overdue* when a later occurrence is due too; *missed* when it is overdue or more than
MISSED_AFTER_SECONDS late.
  * `latest` (default): an overdue run is skipped and the series jumps to the latest occurrence
    due, which fires at once (one run for the whole outage or pause);
  * `all`: every occurrence within `catchup_window_seconds` before now fires, one after another;
    an older one is skipped and the series jumps to the first occurrence inside the window;
  * `none`: a missed run is skipped and the series jumps to the first occurrence after now.
Resuming a paused schedule recreates the run at its cursor; its claim applies the same rules.

Overlap (`overlap`), decided when a run is claimed for its first attempt, among the schedule's
unfinished runs (pending, firing, or waiting for a retry) of earlier occurrences or triggered:
  * `allow` (default): runs are independent;
  * `skip`: a run is skipped while an earlier one is unfinished;
  * `buffer_one`: a run waits (back to pending, DEFER_SECONDS later, attempt undone) while an
    earlier one is unfinished; at most one waits: a run finding another already waiting is skipped.
A skipped run ends `cancelled` with the reason in last_error, unsent; it is counted in
`scheduler_schedule_occurrences_skipped_total{reason}`.

Jitter: a run is due at its occurrence plus a uniform random delay below
min(jitter_seconds, the time to the next occurrence); the occurrence time it carries is exact.
The end: the run that reaches `max_runs`, or an occurrence after `end_at`, ends the schedule
(status `ended`) and no further run is created.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from task_scheduler import metrics
from task_scheduler.logs import log_event
from task_scheduler.schedules import repository as schedule_repository
from task_scheduler.schedules.models import Catchup, Overlap, ScheduleStatus
from task_scheduler.schedules.repository import Advance, ScheduleRow
from task_scheduler.timers import repository as timer_repository
from task_scheduler.timers.models import TimerStatus
from task_scheduler.timers.repository import ActiveRun, ClaimedTimer, NewTimer, Outcome, TimerRow

logger = logging.getLogger(__name__)

MISSED_AFTER_SECONDS = 60.0
DEFER_SECONDS = 1.0
_SKIP_MESSAGES = {
    "catchup": "skipped (catchup): a later occurrence was due too, or this one was missed",
    "overlap": "skipped (overlap): an earlier run of the schedule was unfinished",
}
# Occurrences a claim counts as skipped when series jump (a metric only): each costs a step of the
# cadence (~5 µs), under the locks of the claim, so one claim counts at most this many in all (a
# claim after a long outage of many every-second schedules would otherwise hold them for seconds).
# Past it the metric undercounts.
CLAIM_COUNT_BUDGET = 2_000


@dataclass(frozen=True, slots=True)
class Step:
    """What the claim of the cursor's run does: fire it or skip it (why), and where the series goes."""

    fire: bool
    next_occurrence: datetime | None
    skipped_unmade: int = 0  # occurrences jumped over that never had a run


def catch_up(
    schedule: ScheduleRow, occurrence: datetime, now: datetime, *, count_limit: int = CLAIM_COUNT_BUDGET
) -> Step:
    """The catch-up rule for the claimed run of `occurrence` (see the module docstring); the
    occurrences jumped over are counted up to `count_limit`."""
    cadence = schedule.cadence()
    following = cadence.after(occurrence)
    overdue = following is not None and following <= now
    if schedule.catchup is Catchup.LATEST and overdue:
        latest = cadence.latest(now)
        return Step(False, latest, _count_between(schedule, occurrence, latest, count_limit))
    if schedule.catchup is Catchup.NONE and (
        overdue or (now - occurrence).total_seconds() > MISSED_AFTER_SECONDS
    ):
        upcoming = cadence.after(now)
        return Step(False, upcoming, _count_between(schedule, occurrence, upcoming, count_limit))
    if schedule.catchup is Catchup.ALL:
        window_start = now - timedelta(seconds=schedule.catchup_window_seconds)
        if occurrence < window_start:
            first_inside = cadence.after(window_start - timedelta(microseconds=1))
            return Step(False, first_inside, _count_between(schedule, occurrence, first_inside, count_limit))
    return Step(True, following)


def _count_between(
    schedule: ScheduleRow, occurrence: datetime, jumped_to: datetime | None, limit: int
) -> int:
    """Occurrences strictly between the skipped run's and the one the series jumps to (at most
    `limit`)."""
    if jumped_to is None or jumped_to <= occurrence or limit <= 0:
        return 0
    between = schedule.cadence().between(occurrence, jumped_to - timedelta(microseconds=1), limit=limit)
    return len(between)


def first_occurrence(schedule_spec: schedule_repository.ScheduleSpec, now: datetime) -> datetime | None:
    """The first occurrence at or after the start (or after now), if before the end."""
    cadence = schedule_spec.cadence()
    start = schedule_spec.start_at
    found = (
        cadence.after(now)
        if start is None or start <= now
        else cadence.after(start - timedelta(microseconds=1))
    )
    return within_end(schedule_spec, found)


def within_end(
    schedule_spec: schedule_repository.ScheduleSpec, occurrence: datetime | None
) -> datetime | None:
    if occurrence is None or (schedule_spec.end_at is not None and occurrence > schedule_spec.end_at):
        return None
    return occurrence


def run_of(schedule: ScheduleRow, occurrence: datetime | None, *, now: datetime) -> NewTimer:
    """The timer that stands for `occurrence` of the schedule (None: a run triggered now)."""
    return new_run(schedule, schedule.tenant, schedule.id, occurrence, now=now)


def new_run(
    schedule: schedule_repository.ScheduleSpec,
    tenant: str,
    schedule_id: int | None,
    occurrence: datetime | None,
    *,
    now: datetime,
) -> NewTimer:
    """The run of `occurrence` of a schedule given by its spec (`schedule_id` None: the schedule
    is being inserted in the same statement, which sets it)."""
    due = now if occurrence is None else occurrence + timedelta(seconds=_jitter(schedule, occurrence))
    return NewTimer(
        url=schedule.url,
        request=schedule.request,
        labels=schedule.labels,
        retry=schedule.retry,
        tenant=tenant,
        fire_at=due,
        max_lateness_seconds=schedule.max_lateness_seconds,
        schedule_id=schedule_id,
        occurrence_at=occurrence,
    )


def _jitter(schedule: schedule_repository.ScheduleSpec, occurrence: datetime) -> float:
    if schedule.jitter_seconds <= 0:
        return 0.0
    following = schedule.cadence().after(occurrence)
    room = (
        schedule.jitter_seconds
        if following is None
        else min(schedule.jitter_seconds, (following - occurrence).total_seconds())
    )
    return random.random() * room


async def insert_runs(conn: AsyncConnection, *, runs: Sequence[NewTimer], notify_within: float) -> int:
    """Insert series runs; one that already exists for its occurrence is left alone (the unique
    index). Returns how many were created."""
    if not runs:
        return 0
    created = len(await timer_repository.insert_runs(conn, timers=runs, notify_within=notify_within))
    if created:
        metrics.SCHEDULE_OCCURRENCES_CREATED.inc(created)
    return created


@dataclass(frozen=True, slots=True)
class Advanced:
    """What the claim's transaction did to the claimed runs besides claiming them."""

    skipped: set[int]  # firing → cancelled
    deferred: set[int]  # firing → pending, waiting for an earlier run


async def advance(
    conn: AsyncConnection,
    *,
    owner: str,
    claimed: Sequence[ClaimedTimer],
    now: datetime,
    notify_within: float,
) -> Advanced:
    """For the runs of schedules among `claimed` (in the claim's transaction): apply catch-up and
    overlap, create each series' next run and move its cursor. Ordinary timers cost nothing."""
    series = [t for t in claimed if t.schedule_id is not None and t.occurrence_at is not None]
    if not series:
        return Advanced(set(), set())
    locked = await schedule_repository.lock_schedules(conn, schedule_ids=[t.schedule_id for t in series])  # type: ignore[misc]
    by_id = {s.id: s for s in locked}
    checks_overlap = [s.id for s in locked if s.overlap is not Overlap.ALLOW]
    unfinished: dict[int, list[ActiveRun]] = {}
    if checks_overlap:
        for run in await timer_repository.active_runs(conn, schedule_ids=checks_overlap):
            unfinished.setdefault(run.schedule_id, []).append(run)
    skips: list[tuple[ClaimedTimer, str]] = []
    defers: list[ClaimedTimer] = []
    advances: list[Advance] = []
    next_runs: list[NewTimer] = []
    skipped_unmade: dict[str, int] = {}
    count_budget = CLAIM_COUNT_BUDGET
    for timer in series:
        schedule = by_id.get(timer.schedule_id)  # type: ignore[arg-type]
        assert timer.occurrence_at is not None
        if schedule is None:
            continue
        try:
            decision = _decide(schedule, timer, unfinished.get(schedule.id, []), now, count_budget)
        except Exception as exc:  # noqa: BLE001 - one unplannable schedule fails only itself
            log_event(logger, "schedule.unplannable", logging.ERROR, schedule_id=schedule.id, error=repr(exc))
            advances.append(Advance(schedule.id, None, 0, ends=True))
            continue
        if decision.skip_reason is not None:
            skips.append((timer, decision.skip_reason))
        elif decision.defer:
            defers.append(timer)
        if decision.advance is not None:
            advances.append(decision.advance)
            if decision.advance.next_occurrence_at is not None and schedule.status is ScheduleStatus.ACTIVE:
                next_runs.append(run_of(schedule, decision.advance.next_occurrence_at, now=now))
        count_budget -= decision.unmade
        if decision.unmade:
            skipped_unmade["catchup"] = skipped_unmade.get("catchup", 0) + decision.unmade
    skipped = await _skip(conn, owner, skips)
    deferred = (
        await timer_repository.defer_occurrences(
            conn,
            owner=owner,
            outcomes=[Outcome(t.id, t.attempt, retry_in_seconds=DEFER_SECONDS) for t in defers],
        )
        if defers
        else set()
    )
    await schedule_repository.advance(conn, advances=advances)
    await insert_runs(conn, runs=next_runs, notify_within=notify_within)
    for reason, count in skipped_unmade.items():
        metrics.SCHEDULE_OCCURRENCES_SKIPPED.labels(reason).inc(count)
    return Advanced(skipped, deferred)


async def skip_cancelled(conn: AsyncConnection, *, run: TimerRow, notify_within: float) -> None:
    """A pending run of a series cancelled through the timer API (DELETE /timer/{id}): its
    occurrence is skipped and the series goes on from the next one, in the cancel's transaction
    (the timer's lock, then the schedule's: the order a claim takes them in)."""
    if run.schedule_id is None or run.occurrence_at is None:
        return
    locked = await schedule_repository.lock_schedules(conn, schedule_ids=[run.schedule_id])
    if not locked:
        return
    (schedule,) = locked
    if schedule.status is ScheduleStatus.ENDED or schedule.next_occurrence_at != run.occurrence_at:
        return
    upcoming = within_end(schedule, schedule.cadence().after(run.occurrence_at))
    ends = upcoming is None
    await schedule_repository.advance(conn, advances=[Advance(schedule.id, upcoming, 0, ends)])
    if upcoming is not None and schedule.status is ScheduleStatus.ACTIVE:
        await insert_runs(
            conn, runs=[run_of(schedule, upcoming, now=run.db_now)], notify_within=notify_within
        )


async def _skip(conn: AsyncConnection, owner: str, skips: list[tuple[ClaimedTimer, str]]) -> set[int]:
    if not skips:
        return set()
    outcomes = [Outcome(t.id, t.attempt, error=_SKIP_MESSAGES[reason]) for t, reason in skips]
    kept = await timer_repository.skip_occurrences(conn, owner=owner, outcomes=outcomes)
    for timer, reason in skips:
        if timer.id in kept:
            metrics.SCHEDULE_OCCURRENCES_SKIPPED.labels(reason).inc()
            log_event(
                logger,
                "schedule.occurrence_skipped",
                schedule_id=timer.schedule_id,
                timer_id=timer.id,
                reason=reason,
            )
    return kept


@dataclass(frozen=True, slots=True)
class _Decision:
    skip_reason: str | None  # "catchup" or "overlap"
    defer: bool
    advance: Advance | None  # None: this claim does not move the series
    unmade: int


def _decide(
    schedule: ScheduleRow, timer: ClaimedTimer, unfinished: list[ActiveRun], now: datetime, count_limit: int
) -> _Decision:
    occurrence = timer.occurrence_at
    assert occurrence is not None
    is_cursor = schedule.status is not ScheduleStatus.ENDED and schedule.next_occurrence_at == occurrence
    step = catch_up(schedule, occurrence, now, count_limit=count_limit) if is_cursor else Step(True, None)
    skip_reason = None if step.fire else "catchup"
    defer = False
    if skip_reason is None and timer.attempt == 1 and schedule.overlap is not Overlap.ALLOW:
        earlier = [
            r
            for r in unfinished
            if r.timer_id != timer.id and (r.occurrence_at is None or r.occurrence_at < occurrence)
        ]
        if earlier:
            waiting = any(
                r.status is TimerStatus.PENDING and r.attempts == 0 and r.occurrence_at is not None
                for r in earlier
            )
            if schedule.overlap is Overlap.SKIP or waiting:
                skip_reason = "overlap"
            else:
                defer = True
    if not is_cursor:
        return _Decision(skip_reason, defer, None, 0)
    fired = 1 if skip_reason is None else 0
    upcoming = within_end(schedule, step.next_occurrence)
    ends = upcoming is None or (schedule.max_runs is not None and schedule.runs + fired >= schedule.max_runs)
    advance = Advance(schedule.id, None if ends else upcoming, fired, ends)
    return _Decision(skip_reason, defer, advance, step.skipped_unmade)
