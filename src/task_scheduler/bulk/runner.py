"""The bulk-job runner of each instance: takes a queued job (or one whose lease lapsed, its
instance stopped) and works through it in short batches, one transaction each: renew the lease,
read the next ids after the job's cursor (within a window of ids, so a filter few timers match
never makes one long statement), make the timers' transition (locked rows are skipped,
never waited for), move the cursor and the counters. A batch that fails for good fails its job
only; a lost connection leaves the job to be taken again once its lease lapses."""

from __future__ import annotations

import asyncio
import logging
from enum import Enum

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from task_scheduler import metrics
from task_scheduler.bulk import repository
from task_scheduler.bulk.models import BulkAction
from task_scheduler.bulk.repository import BulkJob
from task_scheduler.bulk.schemas import BulkFilter
from task_scheduler.bulk.service import sources, timer_filter
from task_scheduler.config import Settings
from task_scheduler.db import describe_database_error, is_transient
from task_scheduler.logs import log_event
from task_scheduler.schedules import engine as schedule_engine
from task_scheduler.supervision import Supervisor
from task_scheduler.timers import repository as timer_repository

logger = logging.getLogger(__name__)

TASK_NAME = "bulk"
# One batch looks at most this many batch sizes of ids past the cursor (see BulkRunner._window).
SCAN_WINDOW_BATCHES = 100


class Batch(Enum):
    MORE = "more"  # the job goes on
    FINISHED = "finished"  # the job is done
    LOST = "lost"  # the job is no longer this instance's (taken over, cancelled)
    FAILED = "failed"  # the job failed


class BadJob(Exception):
    """A stored job this runner cannot run (its filter does not read back)."""


class BulkRunner:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        settings: Settings,
        supervisor: Supervisor | None = None,
        owner: str | None = None,
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._supervisor = supervisor or Supervisor()
        self.owner = owner or settings.instance_id

    async def start(self) -> None:
        self._supervisor.start(TASK_NAME, self._loop)

    async def stop(self) -> None:
        await self._supervisor.stop(TASK_NAME)

    async def _loop(self) -> None:
        while True:
            try:
                ran = await self.run_next()
            except Exception as exc:
                if not is_transient(exc):
                    raise  # the supervisor logs, counts and restarts
                log_event(
                    logger, "bulk.database_unavailable", logging.WARNING, error=describe_database_error(exc)
                )
                ran = False
            if not ran:
                await asyncio.sleep(self._settings.bulk_poll_interval_seconds)

    async def run_next(self) -> bool:
        """Take one job and run it to its end (or until it is lost); False if there was none."""
        job = await self.take()
        if job is None:
            return False
        while await self.run_batch(job.id) is Batch.MORE:
            pass
        return True

    async def take(self) -> BulkJob | None:
        async with self._engine.begin() as conn:
            job = await repository.take_job(
                conn, owner=self.owner, lease_seconds=self._settings.bulk_lease_seconds
            )
        if job is not None:
            log_event(
                logger,
                "bulk.taken",
                job_id=job.id,
                bulk_action=job.action.value,
                resumed_after=job.last_timer_id,
                owner=self.owner,
            )
        return job

    async def run_batch(self, job_id: int) -> Batch:
        """One batch of the job in one transaction; a database error that retrying may fix (a lost
        connection) is raised, any other fails the job."""
        try:
            async with self._engine.begin() as conn:
                job = await repository.hold(
                    conn, job_id=job_id, owner=self.owner, lease_seconds=self._settings.bulk_lease_seconds
                )
                if job is None:
                    log_event(logger, "bulk.lost", job_id=job_id, owner=self.owner)
                    return Batch.LOST
                # The window starts at the next id that exists: ids may be sparse (a sequence moved
                # on, a job written from outside with a cursor at -2**63), and walking empty
                # windows of ids one batch at a time would never end.
                start = await repository.next_timer_id(conn, after=job.last_timer_id)
                scan_to = (
                    job.max_timer_id if start is None else min(job.max_timer_id, start - 1 + self._window)
                )
                ids, changed = await self._batch(conn, job, scan_to=scan_to)
                full = len(ids) == self._settings.bulk_batch_size
                finished = not full and scan_to >= job.max_timer_id
                await repository.advance(
                    conn,
                    job_id=job_id,
                    owner=self.owner,
                    last_timer_id=ids[-1] if full else scan_to,
                    matched=len(ids),
                    done=changed,
                    finished=finished,
                )
        except Exception as exc:
            if is_transient(exc):
                raise
            await self._fail(job_id, exc)
            return Batch.FAILED
        metrics.BULK_TIMERS.labels(job.action.value, "done").inc(changed)
        metrics.BULK_TIMERS.labels(job.action.value, "skipped").inc(len(ids) - changed)
        if not finished:
            return Batch.MORE
        metrics.BULK_JOBS.labels("done").inc()
        log_event(
            logger,
            "bulk.done",
            job_id=job_id,
            bulk_action=job.action.value,
            matched=job.matched + len(ids),
            done=job.done + changed,
            skipped=job.skipped + len(ids) - changed,
        )
        return Batch.FINISHED

    @property
    def _window(self) -> int:
        """How many ids past its cursor one batch looks at, at most: a filter few timers match
        (a destination, a host) walks the table in short statements, not in one long one."""
        return self._settings.bulk_batch_size * SCAN_WINDOW_BATCHES

    async def _batch(self, conn: AsyncConnection, job: BulkJob, *, scan_to: int) -> tuple[list[int], int]:
        """The ids this batch takes (up to id `scan_to`) and how many of them it changed."""
        try:
            given = BulkFilter.model_validate(job.filter)
        except ValidationError as exc:
            raise BadJob(f"the stored filter does not read back: {exc.errors()[0]['msg']}") from None
        statuses = sources(job.action, given.status)
        ids = await timer_repository.bulk_candidates(
            conn,
            tenant=job.tenant,
            where=timer_filter(given),
            statuses=statuses,
            after_id=job.last_timer_id,
            upto_id=scan_to,
            limit=self._settings.bulk_batch_size,
        )
        if not ids:
            return ids, 0
        notify_within = self._settings.lookahead_seconds
        if job.action is BulkAction.CANCEL:
            cancelled = await timer_repository.cancel_many(conn, timer_ids=ids, tenant=job.tenant)
            for run in cancelled:
                if run.schedule_id is not None:  # a schedule's run: its series goes on without it
                    await schedule_engine.skip_cancelled(conn, run=run, notify_within=notify_within)
            return ids, len(cancelled)
        if job.action is BulkAction.RETRY:
            redriven = await timer_repository.redrive_many(
                conn, timer_ids=ids, tenant=job.tenant, notify_within=notify_within
            )
            return ids, len(redriven)
        if job.offset_seconds is None:
            raise BadJob("a reschedule job without offset_seconds")
        moved = await timer_repository.reschedule_many(
            conn,
            timer_ids=ids,
            tenant=job.tenant,
            offset_seconds=job.offset_seconds,
            horizon_seconds=self._settings.max_horizon_seconds,
            notify_within=notify_within,
        )
        return ids, len(moved)

    async def _fail(self, job_id: int, exc: Exception) -> None:
        error = str(exc) if isinstance(exc, BadJob) else f"a batch failed: {describe_database_error(exc)}"
        async with self._engine.begin() as conn:
            failed = await repository.fail_job(conn, job_id=job_id, owner=self.owner, error=error)
        if failed:
            metrics.BULK_JOBS.labels("failed").inc()
        log_event(logger, "bulk.failed", logging.ERROR, job_id=job_id, error=error, exception=repr(exc))
