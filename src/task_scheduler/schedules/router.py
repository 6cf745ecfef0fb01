"""HTTP routes of the schedule API: parse, call the service, shape the answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request, Response, status

from task_scheduler.auth.dependencies import Reader, Writer
from task_scheduler.schedules.models import ScheduleStatus
from task_scheduler.schedules.schemas import (
    BackfillCreated,
    RunPage,
    RunView,
    ScheduleBackfill,
    ScheduleCreate,
    SchedulePage,
    ScheduleUpdate,
    ScheduleView,
)
from task_scheduler.schedules.service import ScheduleService
from task_scheduler.timers.router import MAX_TIMER_ID, error_responses, parse_labels
from task_scheduler.timers.service import etag_of


def schedules_of(request: Request) -> ScheduleService:
    service: ScheduleService = request.app.state.schedule_service
    return service


ScheduleId = Annotated[int, Path(ge=1, le=MAX_TIMER_ID, description="Identifier of the schedule.")]
Cursor = Annotated[str | None, Query(max_length=200, description="next_cursor of the previous page.")]
Limit = Annotated[int, Query(ge=1, le=1000, description="Page size.")]
ScheduleLimit = Annotated[
    int,
    Query(
        ge=1,
        le=1000,
        description="Page size: at most this many schedules, fewer where their URLs, headers, labels "
        "and bodies pass 512 KiB together (at least one); next_cursor goes on from the last.",
    ),
]

router = APIRouter(tags=["schedules"])


def _errors(*codes: int) -> dict[int | str, dict[str, object]]:
    return error_responses(*codes, subject="schedule")


def _with_etag(view: ScheduleView, response: Response) -> ScheduleView:
    response.headers["ETag"] = etag_of(view.updated_at)
    return view


@router.post(
    "/schedules",
    status_code=status.HTTP_201_CREATED,
    response_model=ScheduleView,
    responses=_errors(400, 413, 415),
    summary="Create a recurring schedule (cron in a time zone)",
)
async def create_schedule(body: ScheduleCreate, request: Request, principal: Writer) -> Response:
    view = await schedules_of(request).create(body, tenant=principal.tenant)
    # Serialised once, here: returning the model would have FastAPI validate the ~30 fields again
    # against response_model before encoding them (the answer's largest cost per create).
    return Response(
        view.model_dump_json(),
        status_code=status.HTTP_201_CREATED,
        media_type="application/json",
        headers={"Location": f"/schedules/{view.schedule_id}", "ETag": etag_of(view.updated_at)},
    )


@router.get("/schedules", response_model=SchedulePage, responses=_errors(), summary="List schedules")
async def list_schedules(
    request: Request,
    principal: Reader,
    status_: Annotated[ScheduleStatus | None, Query(alias="status", description="Only this status.")] = None,
    label: Annotated[
        list[str] | None,
        Query(description="key:value; repeat for several (all must match).", examples=["team:ops"]),
    ] = None,
    cursor: Cursor = None,
    limit: ScheduleLimit = 100,
) -> SchedulePage:
    return await schedules_of(request).list(
        tenant=principal.visible_tenant,
        labels=parse_labels(label or []),
        status=status_,
        cursor=cursor,
        limit=limit,
    )


@router.get(
    "/schedules/{schedule_id}",
    response_model=ScheduleView,
    responses=_errors(404),
    summary="Get a schedule and its next occurrences",
)
async def get_schedule(
    schedule_id: ScheduleId, request: Request, response: Response, principal: Reader
) -> ScheduleView:
    return _with_etag(await schedules_of(request).get(schedule_id, tenant=principal.visible_tenant), response)


@router.patch(
    "/schedules/{schedule_id}",
    response_model=ScheduleView,
    responses=_errors(400, 404, 409, 412, 413, 415),
    summary="Edit a schedule (a new cron or timezone recomputes the next run)",
)
async def update_schedule(
    schedule_id: ScheduleId,
    body: ScheduleUpdate,
    request: Request,
    response: Response,
    principal: Writer,
    if_match: Annotated[
        str | None, Header(max_length=100, description="Apply only if the ETag still matches.")
    ] = None,
) -> ScheduleView:
    view = await schedules_of(request).update(
        schedule_id, body, tenant=principal.visible_tenant, if_match=if_match
    )
    return _with_etag(view, response)


@router.delete(
    "/schedules/{schedule_id}",
    response_model=ScheduleView,
    responses=_errors(404),
    summary="End a schedule (its past runs stay)",
)
async def end_schedule(
    schedule_id: ScheduleId,
    request: Request,
    response: Response,
    principal: Writer,
    cancel_pending: Annotated[
        bool, Query(description="Also cancel its pending run (else that one still fires).")
    ] = False,
) -> ScheduleView:
    view = await schedules_of(request).end(
        schedule_id, tenant=principal.visible_tenant, cancel_pending=cancel_pending
    )
    return _with_etag(view, response)


@router.post(
    "/schedules/{schedule_id}/pause",
    response_model=ScheduleView,
    responses=_errors(404, 409),
    summary="Pause a schedule: its pending run is cancelled",
)
async def pause_schedule(
    schedule_id: ScheduleId, request: Request, response: Response, principal: Writer
) -> ScheduleView:
    return _with_etag(
        await schedules_of(request).pause(schedule_id, tenant=principal.visible_tenant), response
    )


@router.post(
    "/schedules/{schedule_id}/resume",
    response_model=ScheduleView,
    responses=_errors(404, 409),
    summary="Resume a paused schedule (missed occurrences as its catchup says)",
)
async def resume_schedule(
    schedule_id: ScheduleId, request: Request, response: Response, principal: Writer
) -> ScheduleView:
    return _with_etag(
        await schedules_of(request).resume(schedule_id, tenant=principal.visible_tenant), response
    )


@router.post(
    "/schedules/{schedule_id}/trigger",
    status_code=status.HTTP_201_CREATED,
    response_model=RunView,
    responses=_errors(404, 409),
    summary="One extra run now, outside the series",
)
async def trigger_schedule(schedule_id: ScheduleId, request: Request, principal: Writer) -> RunView:
    return await schedules_of(request).trigger(schedule_id, tenant=principal.visible_tenant)


@router.get(
    "/schedules/{schedule_id}/runs",
    response_model=RunPage,
    responses=_errors(404),
    summary="A schedule's runs (timers), newest first",
)
async def list_runs(
    schedule_id: ScheduleId, request: Request, principal: Reader, cursor: Cursor = None, limit: Limit = 100
) -> RunPage:
    return await schedules_of(request).runs(
        schedule_id, tenant=principal.visible_tenant, cursor=cursor, limit=limit
    )


@router.post(
    "/schedules/{schedule_id}/backfill",
    status_code=status.HTTP_201_CREATED,
    response_model=BackfillCreated,
    responses=_errors(400, 404, 409, 413, 415),
    summary="Runs for the occurrences of a past range (those without one), subject to overlap",
)
async def backfill_schedule(
    schedule_id: ScheduleId, body: ScheduleBackfill, request: Request, principal: Writer
) -> BackfillCreated:
    return await schedules_of(request).backfill(schedule_id, body, tenant=principal.visible_tenant)
