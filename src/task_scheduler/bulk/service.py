"""Bulk-action use cases: check a request against the settings, count (dry run) or queue a job,
and read or cancel one. The jobs themselves run in bulk/runner.py."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncEngine

from task_scheduler import metrics
from task_scheduler.bulk import repository
from task_scheduler.bulk.models import ACTION_SOURCES, BulkAction
from task_scheduler.bulk.repository import BulkJob
from task_scheduler.bulk.schemas import BulkCount, BulkFilter, BulkJobView, BulkRequest
from task_scheduler.config import Settings
from task_scheduler.errors import Conflict, NotFoundError, ValidationFailed
from task_scheduler.logs import log_event
from task_scheduler.timers import repository as timer_repository
from task_scheduler.timers.models import TimerStatus
from task_scheduler.timers.repository import TimerFilter

logger = logging.getLogger(__name__)


def timer_filter(given: BulkFilter) -> TimerFilter:
    return TimerFilter(
        status=given.status,
        labels=given.labels or {},
        due_after=given.due_after,
        due_before=given.due_before,
        host=given.host,
        error_class=given.error_class,
        destination=given.destination,
    )


def sources(action: BulkAction, status: TimerStatus | None) -> tuple[TimerStatus, ...]:
    """The statuses the action takes timers from, narrowed to the filter's `status`."""
    allowed = ACTION_SOURCES[action]
    return allowed if status is None else tuple(s for s in allowed if s is status)


class BulkService:
    def __init__(self, *, engine: AsyncEngine, settings: Settings) -> None:
        self._engine = engine
        self._settings = settings

    async def create(self, request: BulkRequest, *, tenant: str | None) -> BulkCount | BulkJobView:
        """A dry run's count, or a queued job; `tenant` None (an admin) acts on every tenant's timers."""
        action = BulkAction(request.action)
        statuses = sources(action, request.filter.status)
        if not statuses:
            allowed = " or ".join(s.value for s in ACTION_SOURCES[action])
            raise ValidationFailed(
                f"filter.status: {action} takes only {allowed} timers, not {request.filter.status}",
                field="filter.status",
            )
        self._check_offset(action, request.offset_seconds)
        if request.dry_run:
            async with self._engine.connect() as conn:
                matched = await timer_repository.count_matching(
                    conn, tenant=tenant, where=timer_filter(request.filter), statuses=statuses
                )
            return BulkCount(action=action, matched=matched)
        async with self._engine.begin() as conn:
            job = await repository.create_job(
                conn,
                tenant=tenant,
                action=action,
                offset_seconds=None if request.offset_seconds is None else float(request.offset_seconds),
                filter_json=request.filter.model_dump(mode="json", exclude_none=True),
            )
        metrics.BULK_JOBS.labels("queued").inc()
        log_event(logger, "bulk.queued", job_id=job.id, bulk_action=action.value, tenant=tenant)
        return job_view(job)

    def _check_offset(self, action: BulkAction, offset: int | None) -> None:
        if action is not BulkAction.RESCHEDULE:
            if offset is not None:
                raise ValidationFailed("offset_seconds: only a reschedule takes one", field="offset_seconds")
            return
        horizon = self._settings.max_horizon_seconds
        if offset is None or offset == 0:
            raise ValidationFailed(
                "offset_seconds: a reschedule needs a non-zero number of seconds", field="offset_seconds"
            )
        if abs(offset) > horizon:
            raise ValidationFailed(
                f"offset_seconds: more than the maximum of {horizon} seconds", field="offset_seconds"
            )

    async def get(self, job_id: int, *, tenant: str | None) -> BulkJobView:
        async with self._engine.connect() as conn:
            job = await repository.get_job(conn, job_id=job_id, tenant=tenant)
        if job is None:
            raise _not_found(job_id)
        return job_view(job)

    async def cancel(self, job_id: int, *, tenant: str | None) -> BulkJobView:
        """Stop a queued or running job; the timers it already handled stay as they are."""
        async with self._engine.begin() as conn:
            job = await repository.cancel_job(conn, job_id=job_id, tenant=tenant)
            current = (
                None if job is not None else await repository.get_job(conn, job_id=job_id, tenant=tenant)
            )
        if job is None:
            if current is None:
                raise _not_found(job_id)
            raise Conflict(
                f"bulk job {job_id} is {current.state} and cannot be cancelled", status=current.state
            )
        metrics.BULK_JOBS.labels("cancelled").inc()
        log_event(logger, "bulk.cancelled", job_id=job_id, done=job.done)
        return job_view(job)


def job_view(job: BulkJob) -> BulkJobView:
    return BulkJobView(
        job_id=job.id,
        state=job.state,
        action=job.action,
        offset_seconds=job.offset_seconds,
        # a job written from outside may hold any JSON (the runner fails it): shown as no filter
        filter=job.filter if isinstance(job.filter, dict) else {},
        matched=job.matched,
        done=job.done,
        skipped=job.skipped,
        last_timer_id=job.last_timer_id,
        max_timer_id=job.max_timer_id,
        error=job.error,
        created_at=job.created_at,
        updated_at=job.updated_at,
    )


def _not_found(job_id: int) -> NotFoundError:
    return NotFoundError(f"bulk job {job_id} does not exist", field="job_id")
