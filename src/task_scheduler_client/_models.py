"""The API's request and answer shapes, as this library's own pydantic models.

They are copies of the service's schemas (tests compare their fields with the OpenAPI document),
so that the library needs neither the server nor its dependencies. Answers ignore fields they do
not know, so a newer service does not break an older client.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, PrivateAttr

TimerStatus = Literal["pending", "firing", "delivered", "failed", "expired", "cancelled"]
"""Where a timer is in its life."""

Role = Literal["admin", "writer", "reader"]
"""admin: keys, tenants, every tenant's timers; writer: create, edit, cancel, retry its tenant's
timers; reader: read and list its tenant's timers."""

HttpMethod = Literal["POST", "GET", "PUT", "PATCH", "DELETE"]
"""The methods a webhook may use."""


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetryPolicy(_Request):
    """How a timer is retried; each field left None takes the service's default."""

    max_attempts: int | None = Field(default=None, ge=1, le=100, description="Attempts before failing.")
    backoff_base_seconds: float | None = Field(default=None, description="Base of the exponential backoff.")
    backoff_cap_seconds: float | None = Field(default=None, description="Longest wait between attempts.")
    timeout_seconds: float | None = Field(default=None, description="Total timeout of one request.")


class _TimerSettings(_Request):
    hours: int = Field(default=0, ge=0, description="Whole hours from now.")
    minutes: int = Field(default=0, ge=0, description="Whole minutes from now.")
    seconds: int = Field(default=0, ge=0, description="Whole seconds from now.")
    fire_at: datetime | None = Field(default=None, description="Absolute time with an offset.")
    method: HttpMethod | None = Field(default=None, description="HTTP method of the webhook (POST).")
    headers: dict[str, str] | None = Field(default=None, description="Extra request headers.")
    body: JsonValue = Field(default=None, description="JSON value or string; None: the default body.")
    labels: dict[str, str] | None = Field(default=None, description="Labels to filter timers by.")
    deliver_before: datetime | None = Field(default=None, description="Expire rather than deliver after.")
    max_lateness_seconds: float | None = Field(default=None, ge=0, description="Or: this late at most.")
    retry: RetryPolicy | None = Field(default=None, description="How this timer is retried.")
    on_success_url: str | None = Field(default=None, description="Called once when it is delivered.")
    on_failure_url: str | None = Field(
        default=None, description="Called once when it ends failed or expired."
    )


class NewTimer(_TimerSettings):
    """One timer to create (the body of POST /timer, an item of POST /timers/batch).

    Give either a delay (`hours`, `minutes`, `seconds`, added together) or `fire_at`; the
    `new_timer()` helper also takes a `timedelta`. Only the fields given are sent.
    """

    url: str = Field(description="Where the webhook goes.")
    destination: str | None = Field(
        default=None, description="Its destination (breaker, pause); default: the URL's origin."
    )


class TimerChanges(_TimerSettings):
    """The body of PATCH /timer/{id}: only the fields given are changed."""

    url: str | None = Field(default=None, description="Where the webhook goes.")


class TimerCreated(_Answer):
    """A created timer: its id and the whole seconds until it fires."""

    timer_id: int
    time_left: int
    note: str | None = None
    _replayed: bool = PrivateAttr(default=False)

    @property
    def replayed(self) -> bool:
        """True when an Idempotency-Key replayed an earlier create (HTTP 200, not 201)."""
        return self._replayed


class TimerBatchCreated(_Answer):
    """The timers of a batch, in request order."""

    timers: list[TimerCreated]


class EffectiveRetryPolicy(_Answer):
    """The retry policy a timer runs with (its own values, or the service's defaults)."""

    max_attempts: int
    backoff_base_seconds: float
    backoff_cap_seconds: float
    timeout_seconds: float


class TimerView(_Answer):
    """A timer as GET /timer/{id} shows it; `etag` is what `update_timer(if_match=...)` takes."""

    timer_id: int
    time_left: int
    status: str
    url: str
    due_at: datetime
    created_at: datetime
    updated_at: datetime
    attempts: int
    last_error: str | None
    delivered_at: datetime | None
    delivery_id: str
    method: str
    headers: dict[str, str]
    body: JsonValue
    labels: dict[str, str]
    deliver_before: datetime | None
    retry: EffectiveRetryPolicy
    on_success_url: str | None = None
    on_failure_url: str | None = None
    replay_of: int | None = None
    destination: str | None = None
    held_reason: (
        Literal[
            "destination_disabled", "destination_paused", "destination_open", "parallelism", "rate_limited"
        ]
        | None
    ) = None
    _etag: str | None = PrivateAttr(default=None)

    @property
    def etag(self) -> str | None:
        """The ETag the service sent with this view (GET and PATCH send one), else None."""
        return self._etag


class TimerPage(_Answer):
    """One page of GET /timers; pass `next_cursor` back for the next (None at the end)."""

    timers: list[TimerView]
    next_cursor: str | None


class AttemptView(_Answer):
    """One delivery attempt of a timer."""

    attempt: int
    started_at: datetime
    duration_ms: float
    status_code: int | None
    error_class: str | None
    error_message: str | None
    response_body: str | None


class AttemptList(_Answer):
    """A timer's delivery attempts, oldest first: a page of at most 1,000."""

    attempts: list[AttemptView]
    next_cursor: str | None = None
    """More attempts follow (a timer retried by hand many times): GET
    /timer/{id}/attempts?cursor=<next_cursor> has the next page."""


class KeyView(_Answer):
    """An API key, without the key itself."""

    key_id: str
    name: str
    tenant: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None


class KeyCreated(KeyView):
    """A new API key: `api_key` is shown this once."""

    api_key: str


class KeyList(_Answer):
    """Every API key."""

    keys: list[KeyView]


class SecretView(_Answer):
    """A tenant's webhook signing secret, by its hint."""

    secret_id: int
    created_at: datetime
    hint: str


class SecretCreated(SecretView):
    """A new signing secret: `secret` (whsec_...) is shown this once."""

    secret: str


class SecretList(_Answer):
    """The tenant's active secrets, newest first; webhooks are signed with all."""

    secrets: list[SecretView]


class TenantWebhook(_Answer):
    """An operational webhook of the tenant: `url` receives the `events` of its timers."""

    webhook_id: int
    url: str
    events: list[str]
    created_at: datetime


class TenantWebhookList(_Answer):
    """The tenant's operational webhooks, oldest first."""

    webhooks: list[TenantWebhook]


class DestinationHealth(_Answer):
    """A destination's attempts over the last `window_seconds` (per webhook host: a URL-origin
    key only), with its success rate and p50 / p99 response times (null without attempts)."""

    window_seconds: int
    hosts: list[str]
    attempts: int
    succeeded: int
    success_rate: float | None
    p50_ms: float | None
    p99_ms: float | None


class DestinationHistoryEntry(_Answer):
    """One state change of a destination: `opened`, `closed`, `disabled` (by the service, for
    failing too long), `paused`, `unpaused`, `resumed` (by an operator)."""

    at: datetime
    event: Literal["opened", "closed", "disabled", "paused", "unpaused", "resumed"]
    consecutive_failures: int


class Destination(_Answer):
    """A destination of the tenant's timers: its pause switch, its limits (cluster-wide; None:
    unlimited) and circuit breaker (`closed`: timers go out; `open`: held after consecutive
    failures; `half_open`: one probe decides), `slow_start_until` (its timers go out with a slow
    start until about then, after being held), and `history`, its last state changes, newest
    first. `waiting` (its pending timers due now) only comes
    with `get_destination`; `in_flight` (its timers being sent now) and `health` with
    `get_destination` and `list_destinations`."""

    key: str
    paused: bool
    breaker_state: Literal["closed", "open", "half_open"]
    consecutive_failures: int
    opened_at: datetime | None
    updated_at: datetime | None
    failing_since: datetime | None = None
    disabled_at: datetime | None = None
    slow_start_until: datetime | None = None
    history: list[DestinationHistoryEntry] = []
    rate_per_second: float | None = None
    burst: int | None = None
    parallelism: int | None = None
    waiting: int | None = None
    in_flight: int | None = None
    health: DestinationHealth | None = None


class DestinationPage(_Answer):
    """One page of the tenant's destinations, in key order."""

    destinations: list[Destination]
    next_cursor: str | None


class FieldProblem(_Answer):
    """One invalid field of a rejected request."""

    field: str | None = None
    message: str


class ErrorBody(_Answer):
    """The inside of the service's error envelope `{"error": {...}}`."""

    code: str
    message: str
    field: str | None = None
    details: list[FieldProblem] | None = None


class ErrorEnvelope(_Answer):
    """The envelope of every 4xx/5xx answer of the service."""

    error: ErrorBody


ScheduleStatus = Literal["active", "paused", "ended"]
"""Where a schedule is in its life."""

Overlap = Literal["allow", "skip", "buffer_one"]
"""What a run does while an earlier one is unfinished."""

Catchup = Literal["latest", "all", "none"]
"""Which occurrences missed while no instance ran (or paused) still run."""


class _ScheduleSettings(_Request):
    timezone: str | None = Field(default=None, description="IANA time zone of the expression (UTC).")
    end_at: datetime | None = Field(default=None, description="No occurrence after this time.")
    max_runs: int | None = Field(default=None, ge=1, description="Ends after this many runs.")
    jitter_seconds: float | None = Field(default=None, ge=0, description="Random delay of each run.")
    overlap: Overlap | None = Field(default=None, description="allow (default), skip or buffer_one.")
    catchup: Catchup | None = Field(default=None, description="latest (default), all or none.")
    catchup_window_seconds: float | None = Field(default=None, description="How far back `all` replays.")
    method: HttpMethod | None = Field(default=None, description="HTTP method of the webhook (POST).")
    headers: dict[str, str] | None = Field(default=None, description="Extra request headers.")
    body: JsonValue = Field(default=None, description="JSON value or string; None: the default body.")
    labels: dict[str, str] | None = Field(default=None, description="Labels, copied to every run.")
    max_lateness_seconds: float | None = Field(default=None, ge=0, description="A run this late expires.")
    retry: RetryPolicy | None = Field(default=None, description="Retry policy of every run.")


class NewSchedule(_ScheduleSettings):
    """The body of POST /schedules: `cron` and `url`; only the fields given are sent."""

    cron: str = Field(description="5 or 6 fields, @daily..., or @every <duration>.")
    url: str = Field(description="Where each run's webhook goes.")
    start_at: datetime | None = Field(
        default=None, description="No occurrence before this time; the anchor of @every."
    )


class ScheduleChanges(_ScheduleSettings):
    """The body of PATCH /schedules/{id}: only the fields given are changed."""

    cron: str | None = Field(default=None, description="New expression.")
    url: str | None = Field(default=None, description="New URL.")


class NextRun(_Answer):
    """An upcoming occurrence, in UTC and in the schedule's time zone."""

    utc: datetime
    local: datetime


class ScheduleView(_Answer):
    """A schedule as GET /schedules/{id} shows it; `etag` is what `update_schedule(if_match=...)` takes."""

    schedule_id: int
    status: str
    cron: str
    expression: str
    description: str
    timezone: str
    start_at: datetime | None
    end_at: datetime | None
    max_runs: int | None
    runs: int
    jitter_seconds: float
    overlap: str
    catchup: str
    catchup_window_seconds: float
    next_occurrence_at: datetime | None
    next_runs: list[NextRun]
    url: str
    method: str
    headers: dict[str, str]
    body: JsonValue
    labels: dict[str, str]
    max_lateness_seconds: float | None
    retry: EffectiveRetryPolicy
    created_at: datetime
    updated_at: datetime
    _etag: str | None = PrivateAttr(default=None)

    @property
    def etag(self) -> str | None:
        """The ETag the service sent with this view, else None."""
        return self._etag


class SchedulePage(_Answer):
    """One page of GET /schedules, in id order; `next_cursor` None at the end."""

    schedules: list[ScheduleView]
    next_cursor: str | None


class RunView(_Answer):
    """One run of a schedule (a timer: GET /timer/{timer_id} for the whole of it)."""

    timer_id: int
    occurrence_at: datetime | None
    status: str
    due_at: datetime
    attempts: int
    last_error: str | None
    delivered_at: datetime | None
    delivery_id: str


class RunPage(_Answer):
    """One page of a schedule's runs, newest first; `next_cursor` None at the end."""

    runs: list[RunView]
    next_cursor: str | None


class BackfillCreated(_Answer):
    """The runs a backfill created (oldest occurrence first), and how many occurrences had one."""

    runs: list[RunView]
    already_run: int


BulkAction = Literal["cancel", "retry", "reschedule"]
"""cancel: pending → cancelled; retry: failed or expired → pending, due now; reschedule: pending,
due an offset later."""

BulkState = Literal["queued", "running", "done", "failed", "cancelled"]
"""Where a bulk job is in its life."""


class BulkFilter(_Request):
    """Which timers a bulk action takes: every condition given holds (give at least one)."""

    status: TimerStatus | None = Field(default=None, description="Only this status.")
    labels: dict[str, str] | None = Field(default=None, description="Labels the timer has (all of them).")
    due_after: datetime | None = Field(default=None, description="due_at at or after this time.")
    due_before: datetime | None = Field(default=None, description="due_at before this time.")
    host: str | None = Field(default=None, description="The webhook URL's host (any case).")
    error_class: str | None = Field(default=None, description="The error class of the latest attempt.")
    destination: str | None = Field(
        default=None, description="The destination key, exactly (a key given on create, or the URL's origin)."
    )


class BulkCount(_Answer):
    """A dry run's answer: how many timers the action would take now."""

    dry_run: bool = True
    action: str
    matched: int


class BulkJob(_Answer):
    """A bulk job and its progress (GET /timers/bulk/{job_id})."""

    job_id: int
    state: BulkState
    action: BulkAction
    offset_seconds: float | None
    filter: dict[str, JsonValue]
    matched: int
    done: int
    skipped: int
    last_timer_id: int
    max_timer_id: int
    error: str | None
    created_at: datetime
    updated_at: datetime
