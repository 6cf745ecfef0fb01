"""The I/O-free core both clients share: each API call as a `Call` (the request to send and how to
read its answer), the retry decisions, and the keyset paging. `Client` and `AsyncClient` only send."""

from __future__ import annotations

import json
import math
import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Generic, Required, TypedDict, TypeVar, Unpack
from urllib.parse import quote

import httpx
from pydantic import BaseModel, JsonValue, ValidationError

from task_scheduler_client._errors import TransportError, UnexpectedResponse, error_from_answer
from task_scheduler_client._models import (
    AttemptList,
    BackfillCreated,
    BulkAction,
    BulkCount,
    BulkFilter,
    BulkJob,
    Catchup,
    Destination,
    DestinationPage,
    HttpMethod,
    KeyCreated,
    KeyList,
    KeyView,
    NewSchedule,
    NewTimer,
    Overlap,
    RetryPolicy,
    Role,
    RunPage,
    RunView,
    ScheduleChanges,
    SchedulePage,
    ScheduleStatus,
    ScheduleView,
    SecretCreated,
    SecretList,
    TenantWebhook,
    TenantWebhookList,
    TimerBatchCreated,
    TimerChanges,
    TimerCreated,
    TimerPage,
    TimerStatus,
    TimerView,
)

DEFAULT_URL = "http://127.0.0.1:8080"
"""Where `task-scheduler serve` listens by default."""
MAX_PAGE_SIZE = 1000
"""The largest page GET /timers returns."""
IDEMPOTENCY_KEY_PREFIX = "tsc-"

T = TypeVar("T")
U = TypeVar("U")
M = TypeVar("M", bound=BaseModel)


class ClientOptions(TypedDict, total=False):
    """How a `Client` or `AsyncClient` talks to the service (every key optional).

    api_key: sent as `Authorization: Bearer <api_key>`.
    timeout_seconds: total time one HTTP request may take (30).
    max_retries: retries of an answer 429/503, or of a request that never arrived (3); 0: none.
    backoff_base_seconds, backoff_cap_seconds: the capped exponential backoff between retries
        when the service gave no Retry-After (0.5 and 30); a Retry-After above the cap is not
        waited for: the error is raised.
    """

    api_key: str
    timeout_seconds: float
    max_retries: int
    backoff_base_seconds: float
    backoff_cap_seconds: float


class _TimerSettings(TypedDict, total=False):
    delay: timedelta
    hours: int
    minutes: int
    seconds: int
    fire_at: datetime
    method: HttpMethod
    headers: Mapping[str, str]
    body: JsonValue
    labels: Mapping[str, str]
    deliver_before: datetime
    max_lateness: timedelta | float
    retry: RetryPolicy


class TimerFields(_TimerSettings, total=False):
    """A timer to create: `url` and when (`delay`, or `hours`/`minutes`/`seconds`, or `fire_at`);
    `method`, `headers`, `body` (JSON, or a string), `labels`, `retry` (a RetryPolicy).

    deliver_before / max_lateness: give up (the timer expires) rather than deliver later than this.
    destination: the key of its destination (circuit breaker, pause); default: the URL's origin.
    """

    url: Required[str]
    destination: str


class TimerChangeFields(_TimerSettings, total=False):
    """What `update_timer` changes in a pending timer: only the keys given (those of TimerFields)."""

    url: str


class TimerQuery(TypedDict, total=False):
    """Which timers `list_timers` yields: every condition given holds."""

    status: TimerStatus
    labels: Mapping[str, str]
    due_after: datetime | str
    due_before: datetime | str


class _ScheduleSettings(TypedDict, total=False):
    timezone: str
    end_at: datetime
    max_runs: int
    jitter_seconds: float
    overlap: Overlap
    catchup: Catchup
    catchup_window_seconds: float
    method: HttpMethod
    headers: Mapping[str, str]
    body: JsonValue
    labels: Mapping[str, str]
    max_lateness: timedelta | float
    retry: RetryPolicy


class ScheduleFields(_ScheduleSettings, total=False):
    """A schedule to create: `cron` (5 or 6 fields, @daily..., @every 90s) and `url`; `timezone`
    (IANA, UTC by default), `start_at`, `end_at`, `max_runs`, `jitter_seconds`, `overlap`,
    `catchup`, `catchup_window_seconds`, and each run's `method`, `headers`, `body`, `labels`,
    `max_lateness` (a timedelta, or seconds) and `retry` (a RetryPolicy)."""

    cron: Required[str]
    url: Required[str]
    start_at: datetime


class ScheduleChangeFields(_ScheduleSettings, total=False):
    """What `update_schedule` changes: only the keys given (those of ScheduleFields)."""

    cron: str
    url: str


class ScheduleQuery(TypedDict, total=False):
    """Which schedules `list_schedules` yields: every condition given holds."""

    status: ScheduleStatus
    labels: Mapping[str, str]


def _wire_fields(fields: Mapping[str, object]) -> dict[str, object]:
    """TimerFields as the API's body: a `delay` becomes whole seconds (rounded up), a
    `max_lateness` timedelta becomes `max_lateness_seconds`."""
    wire = {key: value for key, value in fields.items() if key not in ("delay", "max_lateness")}
    delay = fields.get("delay")
    if isinstance(delay, timedelta):
        if any(unit in fields for unit in ("hours", "minutes", "seconds", "fire_at")):
            raise ValueError("give `delay`, or hours/minutes/seconds, or fire_at: one of them")
        wire["seconds"] = math.ceil(delay.total_seconds())
    lateness = fields.get("max_lateness")
    if lateness is not None:
        wire["max_lateness_seconds"] = (
            lateness.total_seconds() if isinstance(lateness, timedelta) else lateness
        )
    return wire


def new_timer(**fields: Unpack[TimerFields]) -> NewTimer:
    """A timer to create, for `create_timers`: the same keywords as `create_timer`, e.g.
    `new_timer(url="https://example.com/hook", delay=timedelta(minutes=5), labels={"order": "7"})`."""
    return NewTimer.model_validate(_wire_fields(fields))


@dataclass(frozen=True)
class Call(Generic[T]):
    """One API call: what to send, and how a success answer becomes the result.

    `resendable`: sending it twice does no harm (a read, or a create with an Idempotency-Key),
    so it is retried even when it may have arrived.
    """

    method: str
    path: str
    read: Callable[[httpx.Response], T]
    params: Sequence[tuple[str, str]] = ()
    body: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    resendable: bool = False

    def reading(self, read: Callable[[httpx.Response], U]) -> Call[U]:
        """The same request, its answer read by `read` instead."""
        return Call(self.method, self.path, read, self.params, self.body, self.headers, self.resendable)


@dataclass(frozen=True)
class Retry:
    """Send the call again after `seconds`."""

    seconds: float


def _reader(model: type[M]) -> Callable[[httpx.Response], M]:
    def read(response: httpx.Response) -> M:
        try:
            return model.model_validate_json(response.content)
        except ValidationError:
            raise UnexpectedResponse(status=response.status_code, url=str(response.url)) from None

    return read


def _read_view(response: httpx.Response) -> TimerView:
    view = _reader(TimerView)(response)
    view._etag = response.headers.get("ETag")
    return view


def _read_schedule(response: httpx.Response) -> ScheduleView:
    view = _reader(ScheduleView)(response)
    view._etag = response.headers.get("ETag")
    return view


def _read_created(response: httpx.Response) -> TimerCreated:
    created = _reader(TimerCreated)(response)
    created._replayed = response.status_code == httpx.codes.OK
    return created


def _bulk_body(
    action: BulkAction, where: BulkFilter, offset: timedelta | None, *, dry_run: bool = False
) -> bytes:
    """The body of POST /timers/bulk (`offset` in whole seconds)."""
    body: dict[str, object] = {"action": action, "filter": where.model_dump(mode="json", exclude_none=True)}
    if offset is not None:
        body["offset_seconds"] = round(offset.total_seconds())
    if dry_run:
        body["dry_run"] = True
    return json.dumps(body).encode()


def _read_nothing(_response: httpx.Response) -> None:
    return None


def _json(model: BaseModel | bytes) -> bytes:
    """The model's JSON (the fields given); bytes are already one encoded JSON object, sent as they are."""
    return model if isinstance(model, bytes) else model.model_dump_json(exclude_unset=True).encode()


def _when(value: datetime | str) -> str:
    return value if isinstance(value, str) else value.isoformat()


class Calls:
    """Every endpoint of the API as a `Call` builder (the OpenAPI document's operations)."""

    # -- timers ------------------------------------------------------------------------------

    @staticmethod
    def create_timer(timer: NewTimer | bytes, idempotency_key: str | None) -> Call[TimerCreated]:
        # One key per call, generated here, so every retry of this call carries the same one.
        key = idempotency_key or IDEMPOTENCY_KEY_PREFIX + uuid.uuid4().hex
        return Call(
            "POST",
            "/timer",
            _read_created,
            body=_json(timer),
            headers={"Idempotency-Key": key},
            resendable=True,
        )

    @staticmethod
    def create_timers(timers: Sequence[NewTimer | bytes]) -> Call[TimerBatchCreated]:
        items = b",".join(_json(timer) for timer in timers)
        return Call("POST", "/timers/batch", _reader(TimerBatchCreated), body=b'{"timers":[' + items + b"]}")

    @staticmethod
    def get_timer(timer_id: int) -> Call[TimerView]:
        return Call("GET", f"/timer/{timer_id}", _read_view, resendable=True)

    @staticmethod
    def update_timer(timer_id: int, changes: TimerChangeFields, if_match: str | None) -> Call[TimerView]:
        body = _json(TimerChanges.model_validate(_wire_fields(changes)))
        headers = {"If-Match": if_match} if if_match else {}
        return Call("PATCH", f"/timer/{timer_id}", _read_view, body=body, headers=headers)

    @staticmethod
    def cancel_timer(timer_id: int) -> Call[TimerView]:
        return Call("DELETE", f"/timer/{timer_id}", _read_view)

    @staticmethod
    def retry_timer(timer_id: int) -> Call[TimerView]:
        return Call("POST", f"/timer/{timer_id}/retry", _read_view)

    @staticmethod
    def replay_timer(
        timer_id: int, delay: timedelta | None, fire_at: datetime | str | None
    ) -> Call[TimerView]:
        when: dict[str, object] = {}
        if delay is not None:
            when["delay_seconds"] = math.ceil(delay.total_seconds())
        if fire_at is not None:
            when["fire_at"] = _when(fire_at)
        return Call("POST", f"/timer/{timer_id}/replay", _read_view, body=json.dumps(when).encode())

    @staticmethod
    def start_bulk(action: BulkAction, where: BulkFilter, offset: timedelta | None) -> Call[BulkJob]:
        return Call("POST", "/timers/bulk", _reader(BulkJob), body=_bulk_body(action, where, offset))

    @staticmethod
    def count_bulk(action: BulkAction, where: BulkFilter, offset: timedelta | None) -> Call[BulkCount]:
        body = _bulk_body(action, where, offset, dry_run=True)
        return Call("POST", "/timers/bulk", _reader(BulkCount), body=body, resendable=True)

    @staticmethod
    def bulk_job(job_id: int) -> Call[BulkJob]:
        return Call("GET", f"/timers/bulk/{job_id}", _reader(BulkJob), resendable=True)

    @staticmethod
    def cancel_bulk_job(job_id: int) -> Call[BulkJob]:
        return Call("DELETE", f"/timers/bulk/{job_id}", _reader(BulkJob))

    @staticmethod
    def timer_attempts(timer_id: int) -> Call[AttemptList]:
        return Call("GET", f"/timer/{timer_id}/attempts", _reader(AttemptList), resendable=True)

    @staticmethod
    def timer_page(where: TimerQuery, limit: int | None, cursor: str | None) -> Call[TimerPage]:
        params = [("label", f"{key}:{value}") for key, value in where.get("labels", {}).items()]
        if "status" in where:
            params.append(("status", where["status"]))
        if "due_after" in where:
            params.append(("due_after", _when(where["due_after"])))
        if "due_before" in where:
            params.append(("due_before", _when(where["due_before"])))
        if limit is not None:
            params.append(("limit", str(limit)))
        if cursor is not None:
            params.append(("cursor", cursor))
        return Call("GET", "/timers", _reader(TimerPage), params=params, resendable=True)

    # -- recurring schedules -----------------------------------------------------------------

    @staticmethod
    def create_schedule(schedule: ScheduleFields | bytes) -> Call[ScheduleView]:
        """`schedule` as bytes is one encoded JSON object, sent as it is (the service checks it)."""
        body = _json(
            schedule if isinstance(schedule, bytes) else NewSchedule.model_validate(_wire_fields(schedule))
        )
        return Call("POST", "/schedules", _read_schedule, body=body)

    @staticmethod
    def get_schedule(schedule_id: int) -> Call[ScheduleView]:
        return Call("GET", f"/schedules/{schedule_id}", _read_schedule, resendable=True)

    @staticmethod
    def schedule_page(where: ScheduleQuery, limit: int | None, cursor: str | None) -> Call[SchedulePage]:
        params = [("label", f"{key}:{value}") for key, value in where.get("labels", {}).items()]
        if "status" in where:
            params.append(("status", where["status"]))
        if limit is not None:
            params.append(("limit", str(limit)))
        if cursor is not None:
            params.append(("cursor", cursor))
        return Call("GET", "/schedules", _reader(SchedulePage), params=params, resendable=True)

    @staticmethod
    def update_schedule(
        schedule_id: int, changes: ScheduleChangeFields, if_match: str | None
    ) -> Call[ScheduleView]:
        body = _json(ScheduleChanges.model_validate(_wire_fields(changes)))
        headers = {"If-Match": if_match} if if_match else {}
        return Call("PATCH", f"/schedules/{schedule_id}", _read_schedule, body=body, headers=headers)

    @staticmethod
    def delete_schedule(schedule_id: int, cancel_pending: bool) -> Call[ScheduleView]:
        params = [("cancel_pending", "true")] if cancel_pending else []
        return Call("DELETE", f"/schedules/{schedule_id}", _read_schedule, params=params)

    @staticmethod
    def pause_schedule(schedule_id: int) -> Call[ScheduleView]:
        return Call("POST", f"/schedules/{schedule_id}/pause", _read_schedule)

    @staticmethod
    def resume_schedule(schedule_id: int) -> Call[ScheduleView]:
        return Call("POST", f"/schedules/{schedule_id}/resume", _read_schedule)

    @staticmethod
    def trigger_schedule(schedule_id: int) -> Call[RunView]:
        return Call("POST", f"/schedules/{schedule_id}/trigger", _reader(RunView))

    @staticmethod
    def backfill_schedule(schedule_id: int, start: datetime, end: datetime) -> Call[BackfillCreated]:
        body = json.dumps({"from": start.isoformat(), "to": end.isoformat()}).encode()
        return Call("POST", f"/schedules/{schedule_id}/backfill", _reader(BackfillCreated), body=body)

    @staticmethod
    def run_page(schedule_id: int, limit: int | None, cursor: str | None) -> Call[RunPage]:
        params = [("limit", str(limit))] if limit is not None else []
        if cursor is not None:
            params.append(("cursor", cursor))
        return Call("GET", f"/schedules/{schedule_id}/runs", _reader(RunPage), params=params, resendable=True)

    # -- API keys and signing secrets --------------------------------------------------------

    @staticmethod
    def list_keys() -> Call[KeyList]:
        return Call("GET", "/admin/keys", _reader(KeyList), resendable=True)

    @staticmethod
    def create_key(tenant: str, role: Role, name: str) -> Call[KeyCreated]:
        body = json.dumps({"tenant": tenant, "role": role, "name": name}).encode()
        return Call("POST", "/admin/keys", _reader(KeyCreated), body=body)

    @staticmethod
    def revoke_key(key_id: str) -> Call[KeyView]:
        return Call("DELETE", f"/admin/keys/{key_id}", _reader(KeyView))

    @staticmethod
    def list_secrets() -> Call[SecretList]:
        return Call("GET", "/tenant/secrets", _reader(SecretList), resendable=True)

    @staticmethod
    def create_secret() -> Call[SecretCreated]:
        return Call("POST", "/tenant/secrets", _reader(SecretCreated))

    @staticmethod
    def revoke_secret(secret_id: int) -> Call[None]:
        return Call("DELETE", f"/tenant/secrets/{secret_id}", _read_nothing)

    # -- operational webhooks ----------------------------------------------------------------

    @staticmethod
    def list_tenant_webhooks() -> Call[TenantWebhookList]:
        return Call("GET", "/tenant/webhooks", _reader(TenantWebhookList), resendable=True)

    @staticmethod
    def add_tenant_webhook(url: str, events: Sequence[str]) -> Call[TenantWebhook]:
        body = json.dumps({"url": url, "events": list(events)}).encode()
        return Call("POST", "/tenant/webhooks", _reader(TenantWebhook), body=body)

    @staticmethod
    def remove_tenant_webhook(webhook_id: int) -> Call[None]:
        return Call("DELETE", f"/tenant/webhooks/{webhook_id}", _read_nothing)

    # -- destinations --------------------------------------------------------------------------

    @staticmethod
    def list_destinations(cursor: str | None, limit: int) -> Call[DestinationPage]:
        params = [("limit", str(limit))] + ([("cursor", cursor)] if cursor is not None else [])
        return Call("GET", "/destinations", _reader(DestinationPage), params=params, resendable=True)

    @staticmethod
    def get_destination(key: str) -> Call[Destination]:
        return Call("GET", _destination_path(key), _reader(Destination), resendable=True)

    @staticmethod
    def update_destination(
        key: str, *, paused: bool | None = None, limits: Mapping[str, float | int | None] | None = None
    ) -> Call[Destination]:
        """PUT the fields given (`limits`: rate_per_second, burst, parallelism; None lifts one)."""
        changes: dict[str, object] = dict(limits or {})
        if paused is not None:
            changes["paused"] = paused
        body = json.dumps(changes).encode()
        return Call("PUT", _destination_path(key), _reader(Destination), body=body, resendable=True)

    @staticmethod
    def resume_destination(key: str) -> Call[Destination]:
        return Call("POST", f"{_destination_path(key)}/resume", _reader(Destination), resendable=True)


def _destination_path(key: str) -> str:
    """A key (`http://host:port` has slashes) percent-encoded as one path segment."""
    return f"/destinations/{quote(key, safe='')}"


class Paging:
    """Follows GET /timers' keyset cursor: the next page's call, until the end or `max_timers`
    (no page goes past it, so the last page's `next_cursor` is where to resume)."""

    def __init__(
        self, where: TimerQuery, *, page_size: int, cursor: str | None, max_timers: int | None
    ) -> None:
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be 1 to {MAX_PAGE_SIZE}")
        self._where = where
        self._page_size = page_size
        self._cursor = cursor
        self._max_timers = max_timers
        self._seen = 0
        self._done = max_timers is not None and max_timers <= 0

    def next_call(self) -> Call[TimerPage] | None:
        """The call for the next page; None when there is none."""
        if self._done:
            return None
        limit = self._page_size
        if self._max_timers is not None:
            limit = min(limit, self._max_timers - self._seen)
        return Calls.timer_page(self._where, limit, self._cursor)

    def advance(self, page: TimerPage) -> None:
        """Takes in the page just read."""
        self._seen += len(page.timers)
        self._cursor = page.next_cursor
        self._done = (
            self._cursor is None
            or not page.timers
            or (self._max_timers is not None and self._seen >= self._max_timers)
        )


class SchedulePaging:
    """Follows the keyset cursor of GET /schedules (`schedule_id` None) or of GET
    /schedules/{schedule_id}/runs, until the end or `max_items`."""

    def __init__(
        self,
        where: ScheduleQuery,
        *,
        schedule_id: int | None = None,
        page_size: int,
        cursor: str | None,
        max_items: int | None,
    ) -> None:
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be 1 to {MAX_PAGE_SIZE}")
        self._where = where
        self._schedule_id = schedule_id
        self._page_size = page_size
        self._cursor = cursor
        self._max_items = max_items
        self._seen = 0
        self._done = max_items is not None and max_items <= 0

    def _limit(self) -> int:
        if self._max_items is None:
            return self._page_size
        return min(self._page_size, self._max_items - self._seen)

    def next_schedules(self) -> Call[SchedulePage] | None:
        """The call for the next page of schedules; None when there is none."""
        return None if self._done else Calls.schedule_page(self._where, self._limit(), self._cursor)

    def next_runs(self) -> Call[RunPage] | None:
        """The call for the next page of the schedule's runs; None when there is none."""
        if self._done or self._schedule_id is None:
            return None
        return Calls.run_page(self._schedule_id, self._limit(), self._cursor)

    def advance(self, count: int, next_cursor: str | None) -> None:
        """Takes in the page just read: how many items it had, and its next_cursor."""
        self._seen += count
        self._cursor = next_cursor
        self._done = (
            next_cursor is None
            or count == 0
            or (self._max_items is not None and self._seen >= self._max_items)
        )


class Engine:
    """Turns answers and failures into results, errors or retries; the clients only send."""

    def __init__(self, base_url: str, options: ClientOptions) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_seconds = options.get("timeout_seconds", 30.0)
        self.max_retries = options.get("max_retries", 3)
        self.backoff_base_seconds = options.get("backoff_base_seconds", 0.5)
        self.backoff_cap_seconds = options.get("backoff_cap_seconds", 30.0)
        api_key = options.get("api_key")
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.headers["User-Agent"] = "task-scheduler-client"

    def request(self, http: httpx.Client | httpx.AsyncClient, call: Call[T]) -> httpx.Request:
        """The HTTP request of `call` (the same for every attempt)."""
        headers = dict(call.headers)
        if call.body is not None:
            headers["Content-Type"] = "application/json"
        return http.build_request(
            call.method,
            self.base_url + call.path,
            params=list(call.params),
            content=call.body,
            headers=headers,
        )

    def answered(self, call: Call[T], attempt: int, response: httpx.Response) -> T | Retry:
        """The result of an answer to attempt `attempt` (1, 2, ...), or when to try again."""
        status = response.status_code
        if status < 400:
            return call.read(response)
        retry_after = _retry_after(response.headers.get("Retry-After"))
        if status in (429, 503) and attempt <= self.max_retries:
            wait = self._backoff(attempt) if retry_after is None else retry_after
            if wait <= self.backoff_cap_seconds:
                return Retry(wait)
        raise error_from_answer(status=status, text=response.text, retry_after=retry_after)

    def failed(self, call: Call[T], attempt: int, exc: httpx.TransportError | httpx.DecodingError) -> Retry:
        """When to try again after no answer, or one whose body cannot be decoded (its
        Content-Encoding lies: a proxy's, or not this service); raises TransportError when not
        again."""
        unsent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
        if attempt <= self.max_retries and (unsent or call.resendable):
            return Retry(self._backoff(attempt))
        if isinstance(exc, httpx.ConnectError):
            reason = "connection refused; is the service running?" if _refused(exc) else str(exc)
            raise TransportError(f"cannot connect to {self.base_url} ({reason})", maybe_sent=False) from exc
        if isinstance(exc, httpx.TimeoutException):
            raise TransportError(
                f"no answer from {self.base_url} within {self.timeout_seconds:g} s", maybe_sent=not unsent
            ) from exc
        url = f"{self.base_url}{call.path}"
        if isinstance(exc, httpx.DecodingError):
            raise TransportError(
                f"the answer from {url} could not be decoded: {exc}", maybe_sent=True
            ) from exc
        raise TransportError(
            f"request to {url} failed: {exc or type(exc).__name__}", maybe_sent=True
        ) from exc

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.backoff_cap_seconds, self.backoff_base_seconds * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)  # jitter, so that clients spread out


def _refused(exc: BaseException) -> bool:
    """Whether the connection was refused, somewhere down the chain of causes."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds: a number, or an HTTP date; None when absent or unreadable."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):  # a date no datetime holds
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())
