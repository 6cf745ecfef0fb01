"""Request and response models of the timer API."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    StrictInt,
    field_validator,
    model_validator,
)

from task_scheduler.destinations.keys import MAX_KEY_LENGTH, key_problem
from task_scheduler.timers import storable

MAX_URL_LENGTH = 2048
# Per-field ceiling so arithmetic stays small; the horizon setting is the real limit.
_MAX_UNIT = 10**12
MAX_LABELS = 20
MAX_HEADERS = 50
_LABEL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,62}$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,100}$")
# Hop-by-hop headers (RFC 9110 §7.6.1) and what the client computes itself.
_FORBIDDEN_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
# Headers the service sets on every webhook.
SERVICE_HEADERS = frozenset(
    {
        "user-agent",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "x-timer-id",
        "x-timer-attempt",
        "x-schedule-id",
        "x-schedule-occurrence",
    }
)

HttpMethod = Literal["POST", "GET", "PUT", "PATCH", "DELETE"]
MAX_LATENESS_SECONDS = 100 * 366 * 24 * 3600
DurationUnit = Annotated[StrictInt, Field(ge=0, le=_MAX_UNIT)]


_RFC3339_START = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]")


def _rfc3339_text(value: object) -> object:
    """Times come as RFC 3339 strings; numbers (epoch seconds) are refused as ambiguous."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _RFC3339_START.match(value):
        raise ValueError(
            "must be an RFC 3339 date-time string with an offset, e.g. 2026-12-24T18:00:00+01:00"
        )
    return value


def _representable_in_utc(value: datetime) -> datetime:
    """Times are stored in UTC; one that falls outside years 1-9999 there cannot be."""
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range (years 1 to 9999 in UTC)") from None
    return value


def _storable_time(value: datetime) -> datetime:
    problem = storable.time_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _storable_text(value: str) -> str:
    problem = storable.text_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


# Free text that is stored or compared in SQL: PostgreSQL cannot take a NUL or a lone surrogate
# (the query fails with a 500, not the request with a 422), so such text is refused at the door.
StorableText = Annotated[str, AfterValidator(_storable_text)]

# For query parameters: any aware RFC 3339 time, but still representable in UTC.
UtcRepresentableDatetime = Annotated[
    AwareDatetime, BeforeValidator(_rfc3339_text), AfterValidator(_representable_in_utc)
]
# For what is stored: also not before 1970 (the upper bound, the horizon, is the service's).
StrictAwareDatetime = Annotated[UtcRepresentableDatetime, AfterValidator(_storable_time)]


def validate_webhook_url(value: str) -> str:
    problem = storable.url_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _header_value_problem(value: str) -> str | None:
    if len(value) > 8192:
        return "must be at most 8192 characters"
    if value.isascii():  # the usual case: no Python loop over the characters
        if not value.replace("\t", " ").isprintable():
            return "must not contain control characters"
        return None
    problem = storable.text_problem(value)
    if problem is not None:
        return problem
    if any(unicodedata.category(ch) == "Cc" and ch != "\t" for ch in value):
        return "must not contain control characters"
    return None


def validate_headers(value: dict[str, str] | None) -> dict[str, str] | None:
    if value is None:
        return None
    if len(value) > MAX_HEADERS:
        raise ValueError(f"at most {MAX_HEADERS} headers")
    seen: set[str] = set()
    for name, header_value in value.items():
        lower = name.lower()
        if not _HEADER_NAME.match(name):
            raise ValueError(f"{name[:100]!r} is not a valid header name")
        if lower in _FORBIDDEN_HEADERS:
            raise ValueError(f"{name} is a hop-by-hop or computed header and cannot be set")
        if lower in SERVICE_HEADERS:
            raise ValueError(f"{name} is set by the service and cannot be overridden")
        if lower in seen:
            raise ValueError(f"{name} is given twice")
        seen.add(lower)
        problem = _header_value_problem(header_value)
        if problem is not None:
            raise ValueError(f"the value of {name} {problem}")
    return value


def validate_labels(value: dict[str, str] | None) -> dict[str, str] | None:
    if value is None:
        return None
    if len(value) > MAX_LABELS:
        raise ValueError(f"at most {MAX_LABELS} labels")
    for key, label in value.items():
        if not _LABEL_KEY.match(key):
            raise ValueError(
                f"label key {key[:64]!r} must be 1-63 of A-Z a-z 0-9 _ . - / starting alphanumeric"
            )
        if len(label) > 255:
            raise ValueError(f"label {key} is longer than 255 characters")
        problem = storable.text_problem(label)
        if problem is not None:
            raise ValueError(f"label {key} {problem}")
    return value


def validate_body(value: JsonValue) -> JsonValue:
    problem = None if value is None else storable.json_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


class RetryPolicy(BaseModel):
    """How this timer is retried; each omitted field takes the service default."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "max_attempts": 3,
                    "backoff_base_seconds": 5,
                    "backoff_cap_seconds": 60,
                    "timeout_seconds": 10,
                }
            ]
        },
    )

    max_attempts: Annotated[StrictInt, Field(ge=1, le=100)] | None = Field(
        default=None, description="Attempts before the timer is failed (1-100)."
    )
    backoff_base_seconds: Annotated[float, Field(strict=True, ge=0.01, le=86_400)] | None = Field(
        default=None, description="Base of the exponential backoff with full jitter."
    )
    backoff_cap_seconds: Annotated[float, Field(strict=True, ge=0.01, le=604_800)] | None = Field(
        default=None, description="Longest wait between two attempts (at most 7 days)."
    )
    timeout_seconds: Annotated[float, Field(strict=True, ge=0.1, le=3600)] | None = Field(
        default=None, description="Total timeout of one request; must be below the service's lease."
    )
    # The same bounds as shape.RETRY_BOUNDS (the claim's check of a stored row; a test ties them).

    @model_validator(mode="after")
    def _cap_not_below_base(self) -> RetryPolicy:
        if (
            self.backoff_base_seconds is not None
            and self.backoff_cap_seconds is not None
            and self.backoff_cap_seconds < self.backoff_base_seconds
        ):
            raise ValueError("backoff_cap_seconds must be at least backoff_base_seconds")
        return self


class DeliveryFieldChecks(BaseModel):
    """The checks of the webhook fields every sender of webhooks has (a timer, a schedule), written
    once; the models that inherit them declare the fields themselves."""

    @field_validator("headers", check_fields=False)
    @classmethod
    def _headers(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return validate_headers(value)

    @field_validator("labels", check_fields=False)
    @classmethod
    def _labels(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return validate_labels(value)

    @field_validator("body", check_fields=False)
    @classmethod
    def _storable_body(cls, value: JsonValue) -> JsonValue:
        return validate_body(value)


class _TimerFields(DeliveryFieldChecks):
    """What create and edit share: when, where, what, and how to retry."""

    hours: DurationUnit = Field(default=0, description="Whole hours from now.")
    minutes: DurationUnit = Field(default=0, description="Whole minutes from now.")
    seconds: DurationUnit = Field(default=0, description="Whole seconds from now.")
    fire_at: StrictAwareDatetime | None = Field(
        default=None,
        description="Absolute RFC 3339 time with an offset, instead of hours/minutes/seconds; "
        "a time in the past fires at once.",
        examples=["2026-12-24T18:00:00+01:00"],
    )
    method: HttpMethod | None = Field(default=None, description="HTTP method of the webhook (POST).")
    headers: dict[str, str] | None = Field(
        default=None,
        description="Extra request headers; hop-by-hop, Host, Content-Length and the service's own "
        "headers are refused.",
        examples=[{"Authorization": "Bearer abc", "X-Tenant": "acme"}],
    )
    body: JsonValue = Field(
        default=None,
        description="Request body: a JSON value (sent as application/json) or a string (sent as "
        "text/plain unless a Content-Type header is given). Omitted: a JSON body with timer_id, "
        "due_at, attempt and labels.",
    )
    labels: dict[str, str] | None = Field(
        default=None,
        description=f"Up to {MAX_LABELS} short key/value strings for grouping and filtering.",
        examples=[{"customer": "42", "kind": "reminder"}],
    )
    deliver_before: StrictAwareDatetime | None = Field(
        default=None,
        description="If delivery would start after this time, the timer ends `expired`.",
    )
    max_lateness_seconds: Annotated[float, Field(strict=True, ge=0, le=MAX_LATENESS_SECONDS)] | None = Field(
        default=None, description="Same as deliver_before, relative to the due time."
    )
    retry: RetryPolicy | None = Field(default=None, description="Per-timer retry policy.")
    on_success_url: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_URL_LENGTH,
        description="Called once (POST, JSON, signed like every webhook) when the timer is delivered.",
        examples=["https://example.com/hooks/timer-outcome"],
    )
    on_failure_url: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_URL_LENGTH,
        description="Called once (POST, JSON, signed like every webhook) when the timer ends failed or expired.",
        examples=["https://example.com/hooks/timer-outcome"],
    )

    @field_validator("on_success_url", "on_failure_url")
    @classmethod
    def _absolute_http_notify_url(cls, value: str | None) -> str | None:
        return None if value is None else validate_webhook_url(value)

    @model_validator(mode="after")
    def _one_way_to_say_when(self) -> Any:
        relative = {"hours", "minutes", "seconds"} & self.model_fields_set
        if self.fire_at is not None and relative:
            raise ValueError(f"give either fire_at or {'/'.join(sorted(relative))}, not both")
        if "deliver_before" in self.model_fields_set and self.max_lateness_seconds is not None:
            raise ValueError("give either deliver_before or max_lateness_seconds, not both")
        return self

    @property
    def total_seconds(self) -> int:
        return self.hours * 3600 + self.minutes * 60 + self.seconds

    @property
    def reschedules(self) -> bool:
        return self.fire_at is not None or bool({"hours", "minutes", "seconds"} & self.model_fields_set)

    def largest_unit(self) -> str:
        """The field to blame when the total is too large."""
        for name in ("hours", "minutes", "seconds"):
            if getattr(self, name):
                return name
        return "seconds"


class TimerCreate(_TimerFields):
    """A timer that calls `url` once: after hours + minutes + seconds, or at `fire_at`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"hours": 1, "minutes": 30, "seconds": 45, "url": "http://example.com/webhook"},
                {
                    "fire_at": "2026-12-24T18:00:00+01:00",
                    "url": "https://example.com/hooks/reminder",
                    "method": "PUT",
                    "headers": {"X-Tenant": "acme"},
                    "body": {"reminder": "Christmas dinner"},
                    "labels": {"customer": "42"},
                    "max_lateness_seconds": 300,
                    "retry": {
                        "max_attempts": 3,
                        "backoff_base_seconds": 5,
                        "backoff_cap_seconds": 60,
                    },
                },
            ]
        },
    )

    url: str = Field(
        min_length=1,
        max_length=MAX_URL_LENGTH,
        description="Absolute http(s) URL that receives the webhook.",
        examples=["http://example.com/webhook"],
    )
    destination: str | None = Field(
        default=None,
        max_length=MAX_KEY_LENGTH,
        description="The destination whose circuit breaker and pause switch hold this timer "
        "(several hosts may share one); default: the URL's origin, `scheme://host:port`.",
        examples=["payments-api"],
    )

    @field_validator("url")
    @classmethod
    def _absolute_http_url(cls, value: str) -> str:
        return validate_webhook_url(value)

    @field_validator("destination")
    @classmethod
    def _destination_key(cls, value: str | None) -> str | None:
        problem = None if value is None else key_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value


class TimerUpdate(_TimerFields):
    """Changes to a pending timer; omitted fields stay as they are. A new hours/minutes/seconds or
    fire_at reschedules from now; `"body": null` restores the default body."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"minutes": 10},
                {
                    "fire_at": "2026-12-24T19:00:00+01:00",
                    "labels": {"customer": "42", "moved": "yes"},
                },
            ]
        },
    )

    url: str | None = Field(default=None, min_length=1, max_length=MAX_URL_LENGTH, description="New URL.")

    @field_validator("url")
    @classmethod
    def _absolute_http_url(cls, value: str | None) -> str | None:
        return None if value is None else validate_webhook_url(value)


class TimerBatch(BaseModel):
    """Up to 1,000 timers created together, all or none."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "timers": [
                        {"seconds": 30, "url": "http://example.com/a"},
                        {"minutes": 5, "url": "http://example.com/b", "labels": {"batch": "7"}},
                    ]
                }
            ]
        },
    )

    timers: list[TimerCreate] = Field(min_length=1, max_length=1000, description="The timers, in order.")


class TimerReplay(BaseModel):
    """When the replay is due: now (nothing given), `delay_seconds` from now, or at `fire_at`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{}, {"delay_seconds": 60}, {"fire_at": "2026-12-24T18:00:00+01:00"}]},
    )

    delay_seconds: DurationUnit | None = Field(default=None, description="Whole seconds from now.")
    fire_at: StrictAwareDatetime | None = Field(
        default=None, description="Absolute RFC 3339 time with an offset; a time in the past fires at once."
    )

    @model_validator(mode="after")
    def _one_way_to_say_when(self) -> TimerReplay:
        if self.delay_seconds is not None and self.fire_at is not None:
            raise ValueError("give either fire_at or delay_seconds, not both")
        return self


class TimerCreated(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"timer_id": 1, "time_left": 5445}]})

    timer_id: int = Field(description="Identifier of the new timer.")
    time_left: int = Field(ge=0, description="Whole seconds until the timer fires, rounded up.")
    note: str | None = Field(
        default=None, description="Present when fire_at was in the past: the timer fires now."
    )


class TimerBatchCreated(BaseModel):
    timers: list[TimerCreated] = Field(description="The created timers, in request order.")


class EffectiveRetryPolicy(BaseModel):
    max_attempts: int
    backoff_base_seconds: float
    backoff_cap_seconds: float
    timeout_seconds: float


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
                    "updated_at": "2026-11-29T09:00:00.123456Z",
                    "attempts": 0,
                    "last_error": None,
                    "delivered_at": None,
                    "delivery_id": "msg_0d9f6b1c7d2e4f6a8b0c1d2e3f405162",
                    "method": "POST",
                    "headers": {"Authorization": "[redacted]"},
                    "body": None,
                    "labels": {"customer": "42"},
                    "deliver_before": None,
                    "retry": {
                        "max_attempts": 5,
                        "backoff_base_seconds": 40.0,
                        "backoff_cap_seconds": 600.0,
                        "timeout_seconds": 30.0,
                    },
                }
            ]
        }
    )

    timer_id: int = Field(description="Identifier of the timer.")
    time_left: int = Field(ge=0, description="Whole seconds until due, rounded up; 0 once due.")
    status: str = Field(description="pending, firing, delivered, failed, expired or cancelled.")
    url: str = Field(description="Where the webhook goes.")
    due_at: datetime = Field(description="When the (next) attempt is due, by the database clock.")
    created_at: datetime = Field(description="When the timer was created.")
    updated_at: datetime = Field(description="Last change; the ETag is derived from it.")
    attempts: int = Field(ge=0, description="Delivery attempts started so far.")
    last_error: str | None = Field(description="The most recent failed attempt's error.")
    delivered_at: datetime | None = Field(description="When a 2xx answer was recorded.")
    delivery_id: str = Field(
        description="The `webhook-id` header sent with every attempt; receivers deduplicate on it."
    )
    method: str = Field(description="HTTP method of the webhook.")
    headers: dict[str, str] = Field(description="Extra headers; sensitive values are redacted.")
    body: JsonValue = Field(description="Custom body, or null for the default JSON body.")
    labels: dict[str, str] = Field(description="Labels for grouping and filtering.")
    deliver_before: datetime | None = Field(description="Lateness cutoff, if any.")
    retry: EffectiveRetryPolicy = Field(description="The retry policy in force (defaults filled in).")
    on_success_url: str | None = Field(default=None, description="Called once when the timer is delivered.")
    on_failure_url: str | None = Field(
        default=None, description="Called once when the timer ends failed or expired."
    )
    replay_of: int | None = Field(
        default=None, description="The timer this one replays (POST /timer/{id}/replay), if any."
    )
    destination: str | None = Field(
        default=None,
        description="Its destination (GET /destinations/{key}); null for a timer made before destinations.",
    )
    held_reason: (
        Literal[
            "destination_disabled", "destination_paused", "destination_open", "parallelism", "rate_limited"
        ]
        | None
    ) = Field(
        default=None,
        description="Why this pending timer is held when due: its destination was disabled for "
        "failing too long (SCHEDULER_BREAKER_DISABLE_AFTER_SECONDS) or is paused, its "
        "circuit breaker is open, all its parallelism is in flight, or it waits for its turn under "
        "the destination's rate; null when nothing holds it.",
    )


class TimerPage(BaseModel):
    timers: list[TimerView] = Field(description="Timers ordered by due time, then id.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at the end.")


class AttemptView(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "attempt": 1,
                    "started_at": "2026-11-29T10:30:45.125Z",
                    "duration_ms": 12.5,
                    "status_code": 503,
                    "error_class": "http_status",
                    "error_message": "HTTP 503",
                    "response_body": "upstream unavailable",
                }
            ]
        }
    )

    attempt: int = Field(description="Attempt number, from 1.")
    started_at: datetime = Field(description="When the request started.")
    duration_ms: float = Field(description="How long it took.")
    status_code: int | None = Field(description="The HTTP status, if an answer came.")
    error_class: str | None = Field(
        description="http_status, redirect, timeout, connection, invalid_response, invalid_url, "
        "blocked_destination, unexpected, unprocessable, or null on success."
    )
    error_message: str | None = Field(description="What went wrong.")
    response_body: str | None = Field(description="The first 1 KiB of the answer's body.")


class AttemptList(BaseModel):
    attempts: list[AttemptView] = Field(description="Attempts in order, oldest first.")
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next page of attempts; null at the end."
    )
