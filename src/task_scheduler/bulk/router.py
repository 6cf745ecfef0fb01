"""HTTP routes of bulk actions: parse, call the service, shape the answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response, status

from task_scheduler.auth.dependencies import Reader, Writer
from task_scheduler.bulk.schemas import BulkCount, BulkJobView, BulkRequest
from task_scheduler.bulk.service import BulkService
from task_scheduler.timers.router import MAX_TIMER_ID, error_responses

JobId = Annotated[int, Path(ge=1, le=MAX_TIMER_ID, description="Identifier of the bulk job.")]


def bulk_of(request: Request) -> BulkService:
    service: BulkService = request.app.state.bulk_service
    return service


router = APIRouter(tags=["bulk actions"])


@router.post(
    "/timers/bulk",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=BulkJobView | BulkCount,
    response_description="The job, queued (BulkJobView); follow it at Location",
    responses={
        200: {"model": BulkCount, "description": "dry_run: how many timers the action would take now"},
        **error_responses(400, 413, 415),
    },
    summary="Cancel, retry or reschedule every timer a filter matches, in the background",
)
async def create_bulk_job(
    body: BulkRequest, request: Request, response: Response, principal: Writer
) -> BulkJobView | BulkCount:
    answer = await bulk_of(request).create(body, tenant=principal.visible_tenant)
    if isinstance(answer, BulkCount):
        response.status_code = status.HTTP_200_OK
    else:
        response.headers["Location"] = f"/timers/bulk/{answer.job_id}"
    return answer


@router.get(
    "/timers/bulk/{job_id}",
    response_model=BulkJobView,
    responses=error_responses(404, subject="bulk job"),
    summary="A bulk job's state and progress",
)
async def get_bulk_job(job_id: JobId, request: Request, principal: Reader) -> BulkJobView:
    return await bulk_of(request).get(job_id, tenant=principal.visible_tenant)


@router.delete(
    "/timers/bulk/{job_id}",
    response_model=BulkJobView,
    responses=error_responses(404, 409, subject="bulk job"),
    summary="Stop a queued or running bulk job (what it did stays done)",
)
async def cancel_bulk_job(job_id: JobId, request: Request, principal: Writer) -> BulkJobView:
    return await bulk_of(request).cancel(job_id, tenant=principal.visible_tenant)
