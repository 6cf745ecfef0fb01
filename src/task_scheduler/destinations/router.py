"""Routes of destinations: thin, the service does the work. A key is a path of its own
(`http://host:port` has slashes): clients send it percent-encoded."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from task_scheduler.auth.dependencies import Reader, Writer
from task_scheduler.destinations.keys import MAX_LOOKUP_LENGTH
from task_scheduler.destinations.schemas import DestinationPage, DestinationUpdate, DestinationView
from task_scheduler.destinations.service import DestinationService
from task_scheduler.timers.router import error_responses

router = APIRouter(tags=["destinations"])

Key = Annotated[
    str,
    Path(
        description="The destination's key, percent-encoded (a URL's origin, e.g. "
        "`http%3A%2F%2Fexample.com%3A80`, or the key given on create).",
    ),
]

Cursor = Annotated[
    str | None, Query(max_length=2 * MAX_LOOKUP_LENGTH, description="next_cursor of the previous page.")
]


async def get_destination_service(request: Request) -> DestinationService:
    service: DestinationService = request.app.state.destination_service
    return service


DestinationServiceDep = Annotated[DestinationService, Depends(get_destination_service)]


def _errors(*codes: int) -> dict[int | str, dict[str, object]]:
    return error_responses(*codes, subject="destination")


# A key the path cannot carry (a control character: the path converter stops at a newline) is
# answered 404 by the router, before any route: documented on every route of one destination.
_ONE = (404,)


@router.get(
    "/destinations",
    response_model=DestinationPage,
    responses=_errors(),
    summary="Your tenant's destinations that were paused, limited or failed (limits, breaker, in flight, health)",
)
async def list_destinations(
    principal: Reader,
    destinations: DestinationServiceDep,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size.")] = 100,
) -> DestinationPage:
    return await destinations.list(tenant=principal.tenant, cursor=cursor, limit=limit)


@router.post(
    "/destinations/{key:path}/resume",
    response_model=DestinationView,
    responses=_errors(*_ONE),
    summary="Close a destination's breaker and unpause it: its held timers go out",
)
async def resume_destination(
    key: Key, principal: Writer, destinations: DestinationServiceDep
) -> DestinationView:
    return await destinations.resume(key, tenant=principal.tenant)


@router.get(
    "/destinations/{key:path}",
    response_model=DestinationView,
    responses=_errors(*_ONE),
    summary="A destination's limits, breaker state, waiting and in-flight timers, recent success and latency",
)
async def get_destination(
    key: Key, principal: Reader, destinations: DestinationServiceDep
) -> DestinationView:
    return await destinations.get(key, tenant=principal.tenant)


@router.put(
    "/destinations/{key:path}",
    response_model=DestinationView,
    responses=_errors(400, 413, 415, *_ONE),
    summary="Pause or unpause a destination, set or lift its rate, burst and parallelism",
)
async def update_destination(
    key: Key, body: DestinationUpdate, principal: Writer, destinations: DestinationServiceDep
) -> DestinationView:
    return await destinations.update(key, body, tenant=principal.tenant)
