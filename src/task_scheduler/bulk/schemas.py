"""Request and response models of the bulk-action API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StrictBool,
    StrictInt,
    field_validator,
    model_validator,
)

from task_scheduler.bulk.models import BulkAction, BulkState
from task_scheduler.destinations.keys import MAX_LOOKUP_LENGTH
from task_scheduler.timers.models import TimerStatus
from task_scheduler.timers.schemas import StorableText, UtcRepresentableDatetime, validate_labels

# Per-field ceiling so arithmetic stays small; the horizon setting is the real limit.
_MAX_OFFSET = 10**12


class BulkFilter(BaseModel):
    """Which timers: all the given conditions hold (at least one must be given)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"labels": {"customer": "42"}, "due_before": "2026-12-24T00:00:00Z"}]
        },
    )

    status: TimerStatus | None = Field(
        default=None, description="Only this status (the action's own statuses otherwise)."
    )
    labels: dict[str, str] | None = Field(default=None, description="Labels the timer has (all of them).")
    due_after: UtcRepresentableDatetime | None = Field(
        default=None, description="due_at at or after this time."
    )
    due_before: UtcRepresentableDatetime | None = Field(default=None, description="due_at before this time.")
    host: StorableText | None = Field(
        default=None, min_length=1, max_length=255, description="The webhook URL's host (any case)."
    )
    error_class: StorableText | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="The error class of the timer's latest attempt (http_status, timeout, connection, ...).",
    )
    destination: StorableText | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_LOOKUP_LENGTH,
        description="The timer's destination key, exactly (GET /destinations/{key}): the one given on "
        "create, or its URL's origin such as `https://api.example.com:443`.",
    )

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return validate_labels(value)

    @model_validator(mode="after")
    def _something(self) -> BulkFilter:
        if all(value is None or value == {} for _, value in self):
            raise ValueError("give at least one condition (an action on every timer is not a filter)")
        return self


class BulkRequest(BaseModel):
    """An action on every timer the filter matches, in the background; `dry_run` only counts them."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"action": "cancel", "filter": {"labels": {"customer": "42"}}},
                {
                    "action": "retry",
                    "filter": {"status": "failed", "error_class": "timeout"},
                    "dry_run": True,
                },
                {"action": "reschedule", "offset_seconds": 3600, "filter": {"host": "api.example.com"}},
                {"action": "cancel", "filter": {"destination": "https://api.example.com:443"}},
            ]
        },
    )

    action: Literal["cancel", "retry", "reschedule"] = Field(
        description="cancel: pending → cancelled; retry: failed or expired → pending, due now; "
        "reschedule: pending, due offset_seconds later."
    )
    filter: BulkFilter = Field(description="Which timers.")
    offset_seconds: Annotated[StrictInt, Field(ge=-_MAX_OFFSET, le=_MAX_OFFSET)] | None = Field(
        default=None,
        description="reschedule only: whole seconds to move the due time by (negative: earlier).",
    )
    dry_run: StrictBool = Field(default=False, description="Only count the timers it would take now.")


class BulkCount(BaseModel):
    """A dry run's answer."""

    dry_run: Literal[True] = True
    action: str = Field(description="The action asked for.")
    matched: int = Field(ge=0, description="Timers the action would take now.")


class BulkJobView(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "job_id": 3,
                    "state": "running",
                    "action": "cancel",
                    "offset_seconds": None,
                    "filter": {"labels": {"customer": "42"}},
                    "matched": 1500,
                    "done": 1498,
                    "skipped": 2,
                    "last_timer_id": 120044,
                    "max_timer_id": 250000,
                    "error": None,
                    "created_at": "2026-12-01T10:00:00Z",
                    "updated_at": "2026-12-01T10:00:02Z",
                }
            ]
        }
    )

    job_id: int = Field(description="Identifier of the job.")
    state: BulkState = Field(description="queued, running, done, failed or cancelled.")
    action: BulkAction = Field(description="cancel, retry or reschedule.")
    offset_seconds: float | None = Field(description="reschedule: how far due times move.")
    filter: dict[str, JsonValue] = Field(description="The filter, as given.")
    matched: int = Field(description="Timers taken so far (matching when their batch ran).")
    done: int = Field(description="Timers changed so far.")
    skipped: int = Field(
        description="Timers taken but left as they were: changed meanwhile, locked by a claim or "
        "an edit, or (reschedule) moved beyond the horizon."
    )
    last_timer_id: int = Field(description="The cursor: every timer up to this id has been handled.")
    max_timer_id: int = Field(
        description="The newest timer when the job was created; newer ones are left alone."
    )
    error: str | None = Field(description="Why the job failed, if it did.")
    created_at: datetime
    updated_at: datetime
