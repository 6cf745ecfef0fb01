"""The service's HTTP API as the CLI needs it (timers and schedules), over the client library
(`task_scheduler_client`): its calls, sent by its AsyncClient without retries, with the answer's
text kept to print as it came."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from types import TracebackType
from typing import Generic, Required, TypedDict, TypeVar

import httpx
from pydantic import BaseModel, JsonValue, ValidationError

import task_scheduler_client as library
from task_scheduler.client._errors import ApiError, UnexpectedAnswer, Unreachable
from task_scheduler_client import (
    BackfillCreated,
    RunView,
    SchedulePage,
    ScheduleView,
    TimerBatchCreated,
    TimerCreated,
    TimerPage,
    TimerView,
)
from task_scheduler_client._core import Call, Calls, Paging, SchedulePaging, ScheduleQuery, TimerQuery

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT_SECONDS = 60.0
LIST_MAX_PAGE = 1000

M = TypeVar("M", bound=BaseModel)
R = TypeVar("R")


class TimerCreateBody(TypedDict, total=False):
    """The body of POST /timer (one item of POST /timers/batch), sent as given: the service checks it."""

    url: Required[str]
    hours: int
    minutes: int
    seconds: int
    fire_at: datetime | str
    method: str
    headers: Mapping[str, str]
    body: JsonValue
    labels: Mapping[str, str]
    deliver_before: datetime | str
    max_lateness_seconds: float
    retry: Mapping[str, float]


@dataclass(frozen=True)
class TimerFilter:
    """Which timers GET /timers lists: all of the given conditions hold."""

    status: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    due_after: datetime | str | None = None
    due_before: datetime | str | None = None

    def query(self) -> TimerQuery:
        """The library's filter of GET /timers."""
        query = TimerQuery(labels=self.labels)
        if self.status is not None:
            query["status"] = self.status  # type: ignore[typeddict-item]  # the service checks it
        if self.due_after is not None:
            query["due_after"] = self.due_after
        if self.due_before is not None:
            query["due_before"] = self.due_before
        return query


class ScheduleCreateBody(TypedDict, total=False):
    """The body of POST /schedules, sent as given: the service checks it."""

    cron: Required[str]
    url: Required[str]
    timezone: str
    start_at: datetime | str
    end_at: datetime | str
    max_runs: int
    jitter_seconds: float
    overlap: str
    catchup: str
    catchup_window_seconds: float
    method: str
    headers: Mapping[str, str]
    body: JsonValue
    labels: Mapping[str, str]
    max_lateness_seconds: float


@dataclass(frozen=True)
class ScheduleFilter:
    """Which schedules GET /schedules lists: all of the given conditions hold."""

    status: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)

    def query(self) -> ScheduleQuery:
        """The library's filter of GET /schedules."""
        query = ScheduleQuery(labels=self.labels)
        if self.status is not None:
            query["status"] = self.status  # type: ignore[typeddict-item]  # the service checks it
        return query


@dataclass(frozen=True)
class ApiResponse(Generic[M]):
    """One answer, kept as it came (`status`, `text`) so that it can be passed on untouched, and
    `parse()`: the text read as the endpoint's model."""

    status: int
    text: str
    url: str
    model: type[M]

    def parse(self) -> M:
        """The model; UnexpectedAnswer when the text is not one (read once, then kept)."""
        return self._parsed

    @cached_property
    def _parsed(self) -> M:
        try:
            return self.model.model_validate_json(self.text)
        except ValidationError:
            raise UnexpectedAnswer(status=self.status, url=self.url) from None


class ApiClient:
    """The timer and schedule API of a running service: `async with ApiClient(base_url=...) as api:`.

    Every method raises ApiError when the service says no and Unreachable when it does not answer;
    nothing is retried (an operator sees each answer as it came).
    """

    def __init__(
        self,
        *,
        base_url: str = DEFAULT_URL,
        api_key: str = "",
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._timeout_seconds = timeout_seconds
        self._client: library.AsyncClient | None = None

    async def __aenter__(self) -> ApiClient:
        self._client = library.AsyncClient(
            self.base_url, api_key=self._api_key, timeout_seconds=self._timeout_seconds, max_retries=0
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def create_timer(
        self, *, timer: TimerCreateBody, idempotency_key: str | None = None
    ) -> ApiResponse[TimerCreated]:
        """POST /timer; status 200 rather than 201 when the idempotency key replayed an earlier create."""
        return await self._request(Calls.create_timer(_encode(timer), idempotency_key), TimerCreated)

    async def create_timers(
        self, *, timers: Sequence[TimerCreateBody | bytes]
    ) -> ApiResponse[TimerBatchCreated]:
        """POST /timers/batch, all or none; an item given as bytes is one JSON object, sent as it is."""
        items = [item if isinstance(item, bytes) else _encode(item) for item in timers]
        return await self._request(Calls.create_timers(items), TimerBatchCreated)

    async def get_timer(self, *, timer_id: int) -> ApiResponse[TimerView]:
        return await self._request(Calls.get_timer(timer_id), TimerView)

    async def cancel_timer(self, *, timer_id: int) -> ApiResponse[TimerView]:
        return await self._request(Calls.cancel_timer(timer_id), TimerView)

    async def retry_timer(self, *, timer_id: int) -> ApiResponse[TimerView]:
        """Sends a failed or expired timer again."""
        return await self._request(Calls.retry_timer(timer_id), TimerView)

    async def replay_timer(
        self, *, timer_id: int, delay_seconds: int | None = None, fire_at: datetime | str | None = None
    ) -> ApiResponse[TimerView]:
        """Sends a finished timer's request again, as a new timer linked to it."""
        delay = None if delay_seconds is None else timedelta(seconds=delay_seconds)
        return await self._request(Calls.replay_timer(timer_id, delay, fire_at), TimerView)

    async def start_bulk(
        self, *, action: library.BulkAction, where: library.BulkFilter, offset_seconds: int | None = None
    ) -> ApiResponse[library.BulkJob]:
        """POST /timers/bulk: the job, queued."""
        call = Calls.start_bulk(action, where, _offset(offset_seconds))
        return await self._request(call, library.BulkJob)

    async def count_bulk(
        self, *, action: library.BulkAction, where: library.BulkFilter, offset_seconds: int | None = None
    ) -> ApiResponse[library.BulkCount]:
        """POST /timers/bulk with dry_run: how many timers the action would take now."""
        call = Calls.count_bulk(action, where, _offset(offset_seconds))
        return await self._request(call, library.BulkCount)

    async def get_bulk_job(self, *, job_id: int) -> ApiResponse[library.BulkJob]:
        return await self._request(Calls.bulk_job(job_id), library.BulkJob)

    async def cancel_bulk_job(self, *, job_id: int) -> ApiResponse[library.BulkJob]:
        return await self._request(Calls.cancel_bulk_job(job_id), library.BulkJob)

    async def list_timers(
        self, *, where: TimerFilter | None = None, limit: int | None = None, cursor: str | None = None
    ) -> ApiResponse[TimerPage]:
        """One page, by due time; `limit` None is the service's default (100)."""
        query = where.query() if where is not None else TimerQuery()
        return await self._request(Calls.timer_page(query, limit, cursor), TimerPage)

    async def iter_timer_pages(
        self,
        *,
        where: TimerFilter | None = None,
        page_size: int = LIST_MAX_PAGE,
        cursor: str | None = None,
        max_timers: int | None = None,
    ) -> AsyncIterator[ApiResponse[TimerPage]]:
        """Pages following next_cursor to the end, or until `max_timers`; no page goes past
        `max_timers`, so that the last page's next_cursor is where to resume."""
        query = where.query() if where is not None else TimerQuery()
        paging = Paging(query, page_size=page_size, cursor=cursor, max_timers=max_timers)
        while (call := paging.next_call()) is not None:
            response = await self._request(call, TimerPage)
            paging.advance(response.parse())
            yield response

    async def iter_timers(
        self,
        *,
        where: TimerFilter | None = None,
        page_size: int = LIST_MAX_PAGE,
        max_timers: int | None = None,
    ) -> AsyncIterator[TimerView]:
        """Every timer that matches, by due time, page after page."""
        async for response in self.iter_timer_pages(where=where, page_size=page_size, max_timers=max_timers):
            for view in response.parse().timers:
                yield view

    async def list_destinations(
        self, *, limit: int = 100, cursor: str | None = None
    ) -> ApiResponse[library.DestinationPage]:
        """One page of the tenant's destinations that were paused or failed, by key."""
        return await self._request(Calls.list_destinations(cursor, limit), library.DestinationPage)

    async def get_destination(self, *, key: str) -> ApiResponse[library.Destination]:
        return await self._request(Calls.get_destination(key), library.Destination)

    async def pause_destination(self, *, key: str, paused: bool = True) -> ApiResponse[library.Destination]:
        return await self._request(Calls.update_destination(key, paused=paused), library.Destination)

    async def limit_destination(
        self, *, key: str, limits: dict[str, float | int | None]
    ) -> ApiResponse[library.Destination]:
        """Set the limits given (rate_per_second, burst, parallelism; None lifts one)."""
        return await self._request(Calls.update_destination(key, limits=limits), library.Destination)

    async def resume_destination(self, *, key: str) -> ApiResponse[library.Destination]:
        """Unpause and close the breaker."""
        return await self._request(Calls.resume_destination(key), library.Destination)

    async def create_schedule(self, *, schedule: ScheduleCreateBody) -> ApiResponse[ScheduleView]:
        return await self._request(Calls.create_schedule(_encode(schedule)), ScheduleView)

    async def get_schedule(self, *, schedule_id: int) -> ApiResponse[ScheduleView]:
        return await self._request(Calls.get_schedule(schedule_id), ScheduleView)

    async def pause_schedule(self, *, schedule_id: int) -> ApiResponse[ScheduleView]:
        return await self._request(Calls.pause_schedule(schedule_id), ScheduleView)

    async def resume_schedule(self, *, schedule_id: int) -> ApiResponse[ScheduleView]:
        return await self._request(Calls.resume_schedule(schedule_id), ScheduleView)

    async def delete_schedule(self, *, schedule_id: int, cancel_pending: bool) -> ApiResponse[ScheduleView]:
        """Ends the schedule; with `cancel_pending` its pending run is cancelled too."""
        return await self._request(Calls.delete_schedule(schedule_id, cancel_pending), ScheduleView)

    async def trigger_schedule(self, *, schedule_id: int) -> ApiResponse[RunView]:
        """One extra run now, outside the series."""
        return await self._request(Calls.trigger_schedule(schedule_id), RunView)

    async def backfill_schedule(
        self, *, schedule_id: int, start: datetime, end: datetime
    ) -> ApiResponse[BackfillCreated]:
        """Runs for the occurrences of a past range that have none."""
        return await self._request(Calls.backfill_schedule(schedule_id, start, end), BackfillCreated)

    async def list_schedules(
        self, *, where: ScheduleFilter | None = None, limit: int | None = None, cursor: str | None = None
    ) -> ApiResponse[SchedulePage]:
        """One page, by id; `limit` None is the service's default (100)."""
        query = where.query() if where is not None else ScheduleQuery()
        return await self._request(Calls.schedule_page(query, limit, cursor), SchedulePage)

    async def iter_schedule_pages(
        self,
        *,
        where: ScheduleFilter | None = None,
        page_size: int = LIST_MAX_PAGE,
        cursor: str | None = None,
        max_schedules: int | None = None,
    ) -> AsyncIterator[ApiResponse[SchedulePage]]:
        """Pages following next_cursor to the end, or until `max_schedules` (no page goes past it)."""
        query = where.query() if where is not None else ScheduleQuery()
        paging = SchedulePaging(query, page_size=page_size, cursor=cursor, max_items=max_schedules)
        while (call := paging.next_schedules()) is not None:
            response = await self._request(call, SchedulePage)
            page = response.parse()
            paging.advance(len(page.schedules), page.next_cursor)
            yield response

    async def _request(self, call: Call[R], model: type[M]) -> ApiResponse[M]:
        """Sends the library's call, keeping the answer as it came; its errors as the CLI's."""
        if self._client is None:
            raise RuntimeError("use the client as `async with ApiClient(...) as api:`")

        def keep(response: httpx.Response) -> ApiResponse[M]:
            return ApiResponse(
                status=response.status_code, text=response.text, url=str(response.url), model=model
            )

        try:
            return await self._client.send(call.reading(keep))
        except library.ApiError as exc:
            raise ApiError(
                status=exc.status,
                code=exc.code,
                message=exc.message,
                field=exc.field,
                problems=[(problem.field, problem.message) for problem in exc.details],
            ) from None
        except library.TransportError as exc:
            hint = "" if exc.maybe_sent else " (set --url or TASK_SCHEDULER_URL)"
            raise Unreachable(f"{exc}{hint}", maybe_sent=exc.maybe_sent) from None


def _offset(seconds: int | None) -> timedelta | None:
    return None if seconds is None else timedelta(seconds=seconds)


def _encode(body: TimerCreateBody | ScheduleCreateBody) -> bytes:
    return json.dumps(body, default=_json_default).encode()


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
