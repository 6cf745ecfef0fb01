"""Request and response models of the timer API."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

MAX_URL_LENGTH = 2048
# Per-field ceiling so arithmetic stays small; the horizon setting is the real limit.
_MAX_UNIT = 10**12


class TimerCreate(BaseModel):
    """A timer that calls `url` once, after hours + minutes + seconds."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"hours": 1, "minutes": 30, "seconds": 45, "url": "http://example.com/webhook"}
            ]
        },
    )

    hours: StrictInt = Field(default=0, ge=0, le=_MAX_UNIT, description="Whole hours from now.")
    minutes: StrictInt = Field(default=0, ge=0, le=_MAX_UNIT, description="Whole minutes from now.")
    seconds: StrictInt = Field(default=0, ge=0, le=_MAX_UNIT, description="Whole seconds from now.")
    url: str = Field(
        min_length=1,
        max_length=MAX_URL_LENGTH,
        description="Absolute http(s) URL that receives the webhook POST.",
        examples=["http://example.com/webhook"],
    )

    @field_validator("url")
    @classmethod
    def _absolute_http_url(cls, value: str) -> str:
        return validate_webhook_url(value)

    @property
    def total_seconds(self) -> int:
        return self.hours * 3600 + self.minutes * 60 + self.seconds

    def largest_unit(self) -> str:
        """The field to blame when the total is too large."""
        for name in ("hours", "minutes", "seconds"):
            if getattr(self, name):
                return name
        return "seconds"


def validate_webhook_url(value: str) -> str:
    if any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in value):
        raise ValueError("must not contain spaces or control characters")
    try:
        parts = urlsplit(value)
        port = parts.port  # raises ValueError for a port outside 0-65535
    except ValueError as exc:
        raise ValueError(f"is not a valid URL ({exc})") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError("must be an absolute http:// or https:// URL")
    if not parts.hostname:
        raise ValueError("must include a host")
    if port == 0:
        raise ValueError("port 0 is not a valid destination")
    return value


class TimerCreated(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"timer_id": 1, "time_left": 5445}]})

    timer_id: int = Field(description="Identifier of the new timer.")
    time_left: int = Field(ge=0, description="Whole seconds until the timer fires, rounded up.")


class TimerView(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "timer_id": 1,
                    "time_left": 10,
                    "status": "pending",
                    "url": "http://example.com/webhook",
                    "due_at": "2026-11-29T10:30:45.123456Z",
                    "created_at": "2026-11-29T09:00:00.123456Z",
                    "attempts": 0,
                    "last_error": None,
                    "delivered_at": None,
                    "delivery_id": "msg_0d9f6b1c7d2e4f6a8b0c1d2e3f405162",
                }
            ]
        }
    )

    timer_id: int = Field(description="Identifier of the timer.")
    time_left: int = Field(ge=0, description="Whole seconds until due, rounded up; 0 once due.")
    status: str = Field(description="pending, firing, delivered or failed.")
    url: str = Field(description="Where the webhook goes.")
    due_at: datetime = Field(description="When the (next) attempt is due, by the database clock.")
    created_at: datetime = Field(description="When the timer was created.")
    attempts: int = Field(ge=0, description="Delivery attempts started so far.")
    last_error: str | None = Field(description="The most recent failed attempt's error.")
    delivered_at: datetime | None = Field(description="When a 2xx answer was recorded.")
    delivery_id: str = Field(
        description="The `webhook-id` header sent with every attempt; receivers deduplicate on it."
    )
