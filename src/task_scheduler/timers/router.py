"""HTTP routes of the timer API: parse, call the service, shape the answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response, status

from task_scheduler.errors import ErrorResponse
from task_scheduler.timers.schemas import TimerCreate, TimerCreated, TimerView
from task_scheduler.timers.service import TimerService

MAX_TIMER_ID = 2**63 - 1


def get_timer_service(request: Request) -> TimerService:
    service: TimerService = request.app.state.timer_service
    return service


TimerServiceDep = Annotated[TimerService, Depends(get_timer_service)]
TimerId = Annotated[int, Path(ge=1, le=MAX_TIMER_ID, description="Identifier of the timer.")]

_ERRORS: dict[int | str, dict[str, object]] = {
    422: {"model": ErrorResponse, "description": "Invalid input; the error names the field."},
    503: {"model": ErrorResponse, "description": "The database is unreachable; try again."},
}

router = APIRouter(tags=["timers"])


@router.post(
    "/timer",
    status_code=status.HTTP_201_CREATED,
    response_model=TimerCreated,
    responses={413: {"model": ErrorResponse, "description": "Request body too large."}, **_ERRORS},
    summary="Create a timer that calls a webhook once",
)
async def create_timer(
    body: TimerCreate, response: Response, service: TimerServiceDep
) -> TimerCreated:
    created = await service.create(body)
    response.headers["Location"] = f"/timer/{created.timer_id}"
    return created


@router.get(
    "/timer/{timer_id}",
    response_model=TimerView,
    responses={404: {"model": ErrorResponse, "description": "No such timer."}, **_ERRORS},
    summary="Get a timer's time left and delivery status",
)
async def get_timer(timer_id: TimerId, service: TimerServiceDep) -> TimerView:
    return await service.get(timer_id)
