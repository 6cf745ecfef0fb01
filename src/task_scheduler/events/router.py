"""Routes of a tenant's operational webhooks: thin, the service does the work."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, status

from task_scheduler.auth.dependencies import Writer
from task_scheduler.errors import ErrorResponse
from task_scheduler.events.schemas import TenantWebhookCreate, TenantWebhookList, TenantWebhookView
from task_scheduler.events.service import EventService

router = APIRouter(tags=["operational webhooks"])
_ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in (
        (401, "Missing, invalid or revoked API key."),
        (403, "The key's role does not allow this."),
        (404, "No such webhook for your tenant."),
        (400, "The body could not be read (not UTF-8, nested too deeply, a huge number)."),
        (413, "Request body too large."),
        (415, "The body is not JSON (send Content-Type: application/json)."),
        (422, "Invalid input; the error names the field."),
        (429, "Rate limit exceeded; see Retry-After."),
        (503, "The database is unreachable; try again."),
    )
}


async def get_event_service(request: Request) -> EventService:
    service: EventService = request.app.state.event_service
    return service


EventServiceDep = Annotated[EventService, Depends(get_event_service)]


@router.post(
    "/tenant/webhooks",
    status_code=status.HTTP_201_CREATED,
    response_model=TenantWebhookView,
    responses=_ERRORS,
    summary="Receive events of your tenant's timers and destinations at a URL",
)
async def register_webhook(
    body: TenantWebhookCreate, principal: Writer, events: EventServiceDep
) -> TenantWebhookView:
    return await events.register(body, tenant=principal.tenant)


@router.get(
    "/tenant/webhooks",
    response_model=TenantWebhookList,
    responses=_ERRORS,
    summary="Your tenant's operational webhooks",
)
async def list_webhooks(principal: Writer, events: EventServiceDep) -> TenantWebhookList:
    return await events.list(tenant=principal.tenant)


@router.delete(
    "/tenant/webhooks/{webhook_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_ERRORS,
    summary="Stop sending events to a webhook",
)
async def remove_webhook(
    webhook_id: Annotated[int, Path(ge=1, le=2**63 - 1)], principal: Writer, events: EventServiceDep
) -> None:
    await events.remove(webhook_id, tenant=principal.tenant)
