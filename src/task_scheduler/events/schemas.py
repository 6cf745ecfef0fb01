"""The API's shapes of tenant webhooks."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from task_scheduler.events.models import EVENT_TYPES
from task_scheduler.timers.schemas import MAX_URL_LENGTH, validate_webhook_url

EventType = Literal[
    "timer.failed", "timer.expired", "destination.opened", "destination.closed", "destination.disabled"
]


class TenantWebhookCreate(BaseModel):
    """Where to POST which events of the tenant's timers and destinations (signed, retried like
    every webhook)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"url": "https://example.com/hooks/scheduler", "events": ["timer.failed", "timer.expired"]}
            ]
        },
    )

    url: str = Field(min_length=1, max_length=MAX_URL_LENGTH, description="Absolute http(s) URL.")
    events: list[EventType] = Field(
        min_length=1,
        max_length=len(EVENT_TYPES),
        description="The events to receive: a timer failed or expired, a destination's circuit "
        "breaker opened or closed.",
    )

    @field_validator("url")
    @classmethod
    def _absolute_http_url(cls, value: str) -> str:
        return validate_webhook_url(value)

    @field_validator("events")
    @classmethod
    def _each_once(cls, value: list[EventType]) -> list[EventType]:
        if len(set(value)) != len(value):
            raise ValueError("each event at most once")
        return value


class TenantWebhookView(BaseModel):
    webhook_id: int = Field(description="Identifier of the subscription.")
    url: str = Field(description="Where the events go.")
    events: list[str] = Field(description="The events it receives.")
    created_at: datetime = Field(description="When it was registered.")


class TenantWebhookList(BaseModel):
    webhooks: list[TenantWebhookView] = Field(description="The tenant's subscriptions, oldest first.")
