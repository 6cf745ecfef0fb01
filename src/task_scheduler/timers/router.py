"""HTTP routes of the timer API: parse, call the service, shape the answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Header, Path, Query, Request, Response, status

from task_scheduler.auth.dependencies import Reader, Writer
from task_scheduler.errors import ErrorResponse, ValidationFailed
from task_scheduler.timers.models import TimerStatus
from task_scheduler.timers.schemas import (
    AttemptList,
    TimerBatch,
    TimerBatchCreated,
    TimerCreate,
    TimerCreated,
    TimerPage,
    TimerReplay,
    TimerUpdate,
    TimerView,
    UtcRepresentableDatetime,
)
from task_scheduler.timers.service import ATTEMPTS_PAGE, TimerService, etag_of
from task_scheduler.tracing.traceparent import SCOPE_KEY as TRACEPARENT_KEY

MAX_TIMER_ID = 2**63 - 1


def timers_of(request: Request) -> TimerService:
    """The app's TimerService. Not a FastAPI dependency: each one is solved again per request
    (docs/performance.md); a route's one dependency is the caller's key."""
    service: TimerService = request.app.state.timer_service
    return service


TimerId = Annotated[int, Path(ge=1, le=MAX_TIMER_ID, description="Identifier of the timer.")]


def error_responses(*codes: int, subject: str = "timer") -> dict[int | str, dict[str, object]]:
    """The error answers of a route (its own `codes` and those every route has), for OpenAPI."""
    described = {
        401: "Missing, invalid or revoked API key.",
        403: "The key's role does not allow this.",
        404: f"No such {subject} (or another tenant's).",
        429: "Rate limit or the tenant's pending-timer cap reached; see Retry-After.",
        400: "The body could not be read (not UTF-8, nested too deeply, a huge number).",
        415: "The body is not JSON (send Content-Type: application/json).",
        409: f"The {subject}'s status does not allow this; the error carries the status.",
        412: f"If-Match does not match the {subject}'s current ETag.",
        413: "Request body too large.",
        422: "Invalid input; the error names the field.",
        503: "The database is unreachable; try again.",
    }
    return {
        code: {"model": ErrorResponse, "description": described[code]}
        for code in (*codes, 401, 403, 422, 429, 503)
    }


router = APIRouter(tags=["timers"])


@router.post(
    "/timer",
    status_code=status.HTTP_201_CREATED,
    response_model=TimerCreated,
    response_model_exclude_none=True,
    responses={
        200: {"model": TimerCreated, "description": "Idempotent replay"},
        **error_responses(400, 413, 415),
    },
    summary="Create a timer that calls a webhook once",
)
async def create_timer(
    body: TimerCreate,
    request: Request,
    response: Response,
    principal: Writer,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=255,
            description="Retry-safe creation: the same key and request return the same timer (200).",
        ),
    ] = None,
) -> TimerCreated:
    created, replayed = await timers_of(request).create(
        body,
        tenant=principal.tenant,
        idempotency_key=idempotency_key,
        traceparent=request.scope.get(TRACEPARENT_KEY),  # tracing on: the request's span
    )
    if replayed:
        response.status_code = status.HTTP_200_OK
    response.headers["Location"] = f"/timer/{created.timer_id}"
    return created


@router.post(
    "/timers/batch",
    status_code=status.HTTP_201_CREATED,
    response_model=TimerBatchCreated,
    response_model_exclude_none=True,
    responses=error_responses(400, 413, 415),
    summary="Create up to 1,000 timers in one transaction",
)
async def create_timers(body: TimerBatch, request: Request, principal: Writer) -> TimerBatchCreated:
    traceparent = request.scope.get(TRACEPARENT_KEY)  # tracing on: the request's span
    return await timers_of(request).create_batch(body, tenant=principal.tenant, traceparent=traceparent)


@router.get(
    "/timer/{timer_id}",
    response_model=TimerView,
    responses=error_responses(404),
    summary="Get a timer's time left and delivery status",
)
async def get_timer(timer_id: TimerId, response: Response, request: Request, principal: Reader) -> TimerView:
    view = await timers_of(request).get(timer_id, tenant=principal.visible_tenant)
    response.headers["ETag"] = etag_of(view.updated_at)
    return view


@router.patch(
    "/timer/{timer_id}",
    response_model=TimerView,
    responses=error_responses(400, 404, 409, 412, 413, 415),
    summary="Reschedule or edit a pending timer",
)
async def update_timer(
    timer_id: TimerId,
    body: TimerUpdate,
    response: Response,
    request: Request,
    principal: Writer,
    if_match: Annotated[
        str | None, Header(max_length=100, description="Apply only if the ETag still matches.")
    ] = None,
) -> TimerView:
    view = await timers_of(request).update(timer_id, body, tenant=principal.visible_tenant, if_match=if_match)
    response.headers["ETag"] = etag_of(view.updated_at)
    return view


@router.delete(
    "/timer/{timer_id}",
    response_model=TimerView,
    responses=error_responses(404, 409),
    summary="Cancel a pending timer",
)
async def cancel_timer(timer_id: TimerId, request: Request, principal: Writer) -> TimerView:
    return await timers_of(request).cancel(timer_id, tenant=principal.visible_tenant)


@router.post(
    "/timer/{timer_id}/retry",
    response_model=TimerView,
    responses=error_responses(404, 409),
    summary="Send a failed or expired timer again (manual redrive)",
)
async def retry_timer(timer_id: TimerId, request: Request, principal: Writer) -> TimerView:
    return await timers_of(request).redrive(timer_id, tenant=principal.visible_tenant)


@router.post(
    "/timer/{timer_id}/replay",
    status_code=status.HTTP_201_CREATED,
    response_model=TimerView,
    responses=error_responses(400, 404, 409, 413, 415),
    summary="Send a finished timer's request again, as a new timer linked to it",
)
async def replay_timer(
    timer_id: TimerId,
    request: Request,
    response: Response,
    principal: Writer,
    body: Annotated[TimerReplay | None, Body()] = None,
) -> TimerView:
    view = await timers_of(request).replay(
        timer_id,
        body or TimerReplay(),
        tenant=principal.visible_tenant,
        traceparent=request.scope.get(TRACEPARENT_KEY),  # tracing on: the request's span
    )
    response.headers["Location"] = f"/timer/{view.timer_id}"
    return view


@router.get(
    "/timer/{timer_id}/attempts",
    response_model=AttemptList,
    responses=error_responses(404),
    summary="The delivery attempts of a timer",
)
async def list_attempts(
    timer_id: TimerId,
    request: Request,
    principal: Reader,
    cursor: Annotated[
        str | None, Query(max_length=20, description="next_cursor of the previous page of attempts.")
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=ATTEMPTS_PAGE, description="Page size: at most this many attempts.")
    ] = ATTEMPTS_PAGE,
) -> AttemptList:
    return await timers_of(request).attempts(
        timer_id, tenant=principal.visible_tenant, cursor=cursor, limit=limit
    )


@router.get("/timers", response_model=TimerPage, responses=error_responses(), summary="List timers")
async def list_timers(
    request: Request,
    principal: Reader,
    status_: Annotated[TimerStatus | None, Query(alias="status", description="Only this status.")] = None,
    label: Annotated[
        list[str] | None,
        Query(description="key:value; repeat for several (all must match).", examples=["customer:42"]),
    ] = None,
    due_after: Annotated[
        UtcRepresentableDatetime | None, Query(description="due_at at or after this time.")
    ] = None,
    due_before: Annotated[
        UtcRepresentableDatetime | None, Query(description="due_at before this time.")
    ] = None,
    cursor: Annotated[
        str | None, Query(max_length=200, description="next_cursor of the previous page.")
    ] = None,
    limit: Annotated[
        int,
        Query(
            ge=1,
            le=1000,
            description="Page size: at most this many timers, fewer where their URLs, headers, labels "
            "and bodies pass 512 KiB together (at least one); next_cursor goes on from the last.",
        ),
    ] = 100,
) -> TimerPage:
    return await timers_of(request).list(
        tenant=principal.visible_tenant,
        status=status_,
        labels=parse_labels(label or []),
        due_after=due_after,
        due_before=due_before,
        cursor=cursor,
        limit=limit,
    )


def parse_labels(values: list[str]) -> dict[str, str]:
    """`key:value` filters (the API's `label` query, the dashboard's label field) as a dict."""
    labels: dict[str, str] = {}
    for value in values:
        key, sep, label = value.partition(":")
        if not sep or not key:
            raise ValidationFailed(f"label: {value[:100]!r} is not key:value", field="label")
        if "\x00" in value:
            raise ValidationFailed("label: must not contain NUL characters", field="label")
        labels[key] = label
    return labels
