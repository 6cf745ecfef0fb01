"""Request and response models of the schedule API. The delivery fields are checked by the same
validators as a timer's (timers/schemas.py, timers/storable.py): one definition of storable input."""

from __future__ import annotations

import functools
import zoneinfo
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StrictInt, field_validator, model_validator

from task_scheduler.schedules import cron
from task_scheduler.schedules.models import Catchup, Overlap
from task_scheduler.timers import storable
from task_scheduler.timers.schemas import (
    MAX_LABELS,
    MAX_LATENESS_SECONDS,
    MAX_URL_LENGTH,
    DeliveryFieldChecks,
    EffectiveRetryPolicy,
    HttpMethod,
    RetryPolicy,
    StrictAwareDatetime,
    validate_webhook_url,
)

MAX_EXPRESSION_LENGTH = 200
MAX_RUNS = 10**12
MAX_JITTER_SECONDS = 86_400.0
MAX_CATCHUP_WINDOW_SECONDS = 366 * 86_400.0
NEXT_RUNS = 5


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones()) | {"UTC"}


def validate_cron(value: str) -> str:
    problem = storable.text_problem(value)
    if problem is not None:
        raise ValueError(problem)
    try:
        cron.parse(value)
    except cron.CronError as exc:
        text = str(exc)
        raise ValueError(text if exc.field_name in text else f"{exc.field_name}: {text}") from None
    return value


def validate_timezone(value: str) -> str:
    if value not in _zone_names():
        raise ValueError(f"{value[:100]!r} is not an IANA time zone name (e.g. Europe/Berlin, UTC)")
    return value


class _ScheduleFields(DeliveryFieldChecks):
    """What create and edit share."""

    timezone: str | None = Field(
        default=None,
        max_length=64,
        description="IANA time zone the expression is read in (UTC).",
        examples=["Europe/Berlin"],
    )
    end_at: StrictAwareDatetime | None = Field(
        default=None, description="No occurrence after this time; the schedule then ends."
    )
    max_runs: Annotated[StrictInt, Field(ge=1, le=MAX_RUNS)] | None = Field(
        default=None, description="The schedule ends after this many runs (skipped ones do not count)."
    )
    jitter_seconds: Annotated[float, Field(strict=True, ge=0, le=MAX_JITTER_SECONDS)] | None = Field(
        default=None, description="A random delay of each run, below this and below the next occurrence (0)."
    )
    overlap: Overlap | None = Field(
        default=None,
        description="allow (default), skip or buffer_one: a run while an earlier one is unfinished.",
    )
    catchup: Catchup | None = Field(
        default=None,
        description="latest (default), all or none: occurrences missed while no instance ran or paused.",
    )
    catchup_window_seconds: (
        Annotated[float, Field(strict=True, ge=1, le=MAX_CATCHUP_WINDOW_SECONDS)] | None
    ) = Field(default=None, description="How far back catchup `all` replays (3600).")
    method: HttpMethod | None = Field(default=None, description="HTTP method of the webhook (POST).")
    headers: dict[str, str] | None = Field(
        default=None, description="Extra request headers (as for a timer)."
    )
    body: JsonValue = Field(
        default=None,
        description="Request body (as for a timer). Omitted: a JSON body with timer_id, due_at, "
        "attempt, labels, schedule_id and occurrence_at.",
    )
    labels: dict[str, str] | None = Field(
        default=None, description=f"Up to {MAX_LABELS} short key/value strings, copied to every run."
    )
    max_lateness_seconds: Annotated[float, Field(strict=True, ge=0, le=MAX_LATENESS_SECONDS)] | None = Field(
        default=None, description="A run that cannot start within this many seconds of its due time expires."
    )
    retry: RetryPolicy | None = Field(default=None, description="Retry policy of every run.")

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        return None if value is None else validate_timezone(value)


class ScheduleCreate(_ScheduleFields):
    """A schedule that calls `url` at every occurrence of `cron` in `timezone`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "cron": "0 9 * * 1-5",
                    "timezone": "Europe/Berlin",
                    "url": "https://example.com/hooks/daily",
                },
                {"cron": "@every 90s", "url": "http://example.com/tick", "overlap": "skip", "max_runs": 10},
            ]
        },
    )

    cron: str = Field(
        min_length=1,
        max_length=MAX_EXPRESSION_LENGTH,
        description="5 fields, or 6 with leading seconds; @yearly @monthly @weekly @daily @hourly; "
        "@every <duration> (90s, 6h, 1h30m).",
        examples=["0 9 * * 1-5"],
    )
    url: str = Field(
        min_length=1, max_length=MAX_URL_LENGTH, description="Absolute http(s) URL that receives each run."
    )
    start_at: StrictAwareDatetime | None = Field(
        default=None, description="No occurrence before this time; also the anchor of @every."
    )

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        return validate_cron(value)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return validate_webhook_url(value)

    @model_validator(mode="after")
    def _end_after_start(self) -> Any:
        if self.start_at is not None and self.end_at is not None and self.end_at <= self.start_at:
            raise ValueError("end_at must be after start_at")
        return self


class ScheduleUpdate(_ScheduleFields):
    """Changes to a schedule; omitted fields stay. A new cron or timezone recomputes the next run."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"cron": "0 10 * * 1-5"}, {"labels": {"team": "ops"}}]},
    )

    cron: str | None = Field(
        default=None, min_length=1, max_length=MAX_EXPRESSION_LENGTH, description="New expression."
    )
    url: str | None = Field(default=None, min_length=1, max_length=MAX_URL_LENGTH, description="New URL.")

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return None if value is None else validate_cron(value)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else validate_webhook_url(value)


MAX_BACKFILL = 1000


class ScheduleBackfill(BaseModel):
    """Runs for the occurrences of a past range."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={"examples": [{"from": "2026-11-30T00:00:00Z", "to": "2026-12-01T00:00:00Z"}]},
    )

    from_: StrictAwareDatetime = Field(alias="from", description="Start of the range (included).")
    to: StrictAwareDatetime = Field(description="End of the range (included); not in the future.")

    @model_validator(mode="after")
    def _ordered(self) -> Any:
        if self.to < self.from_:
            raise ValueError("to must not be before from")
        return self


class NextRun(BaseModel):
    utc: datetime = Field(description="The occurrence in UTC.")
    local: datetime = Field(description="The same instant in the schedule's time zone.")


class ScheduleView(BaseModel):
    schedule_id: int = Field(description="Identifier of the schedule.")
    status: str = Field(description="active, paused or ended.")
    cron: str = Field(description="The normalised expression.")
    expression: str = Field(description="The expression as given.")
    description: str = Field(description="The expression in plain words.")
    timezone: str
    start_at: datetime | None
    end_at: datetime | None
    max_runs: int | None
    runs: int = Field(description="Occurrences fired so far (skipped ones and triggered runs not counted).")
    jitter_seconds: float
    overlap: str
    catchup: str
    catchup_window_seconds: float
    next_occurrence_at: datetime | None = Field(description="The occurrence of the pending run, if any.")
    next_runs: list[NextRun] = Field(description="The next occurrences (up to 5) while active or paused.")
    url: str
    method: str
    headers: dict[str, str] = Field(description="Extra headers; sensitive values are redacted.")
    body: JsonValue
    labels: dict[str, str]
    max_lateness_seconds: float | None
    retry: EffectiveRetryPolicy = Field(description="The retry policy in force (defaults filled in).")
    created_at: datetime
    updated_at: datetime = Field(description="Last change; the ETag is derived from it.")


class SchedulePage(BaseModel):
    schedules: list[ScheduleView] = Field(description="Schedules in id order.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at the end.")


class RunView(BaseModel):
    timer_id: int = Field(description="The run's timer (GET /timer/{id} for the whole of it).")
    occurrence_at: datetime | None = Field(description="The occurrence it stands for; null when triggered.")
    status: str = Field(description="The timer's status.")
    due_at: datetime
    attempts: int
    last_error: str | None = Field(description="Why it failed, or why it was skipped or cancelled.")
    delivered_at: datetime | None
    delivery_id: str = Field(description="The `webhook-id` of its webhook.")


class BackfillCreated(BaseModel):
    runs: list[RunView] = Field(description="The runs created, oldest occurrence first.")
    already_run: int = Field(description="Occurrences of the range that had a run already (not made again).")


class RunPage(BaseModel):
    runs: list[RunView] = Field(description="Runs, newest first.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at the end.")
