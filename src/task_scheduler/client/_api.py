"""The service's HTTP API as typed methods over aiohttp: one per timer endpoint the CLI uses."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from types import TracebackType
from typing import Generic, Required, TypedDict, TypeVar

import aiohttp
from pydantic import BaseModel, JsonValue, ValidationError

from task_scheduler.client._errors import ApiError, UnexpectedAnswer, Unreachable
from task_scheduler.timers.schemas import TimerBatchCreated, TimerCreated, TimerPage, TimerView

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT_SECONDS = 60.0
LIST_MAX_PAGE = 1000

M = TypeVar("M", bound=BaseModel)


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

    def params(self) -> list[tuple[str, str]]:
        params = [("label", f"{key}:{value}") for key, value in self.labels.items()]
        for name, value in (
            ("status", self.status),
            ("due_after", self.due_after),
            ("due_before", self.due_before),
        ):
            if value is not None:
                params.append((name, value.isoformat() if isinstance(value, datetime) else value))
        return params


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
    """The timer API of a running service: `async with ApiClient(base_url=...) as api:`.

    Every method raises ApiError when the service says no and Unreachable when it does not answer.
    """

    def __init__(
        self,
        *,
        base_url: str = DEFAULT_URL,
        api_key: str = "",
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._auth = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout_seconds = timeout_seconds
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ApiClient:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout_seconds))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def create_timer(
        self, *, timer: TimerCreateBody, idempotency_key: str | None = None
    ) -> ApiResponse[TimerCreated]:
        """POST /timer; status 200 rather than 201 when the idempotency key replayed an earlier create."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return await self._request("POST", "/timer", TimerCreated, body=_encode(timer), headers=headers)

    async def create_timers(
        self, *, timers: Sequence[TimerCreateBody | bytes]
    ) -> ApiResponse[TimerBatchCreated]:
        """POST /timers/batch, all or none; an item given as bytes is one JSON object, sent as it is."""
        items = [item if isinstance(item, bytes) else _encode(item) for item in timers]
        return await self._request(
            "POST", "/timers/batch", TimerBatchCreated, body=b'{"timers":[' + b",".join(items) + b"]}"
        )

    async def get_timer(self, *, timer_id: int) -> ApiResponse[TimerView]:
        return await self._request("GET", f"/timer/{timer_id}", TimerView)

    async def cancel_timer(self, *, timer_id: int) -> ApiResponse[TimerView]:
        return await self._request("DELETE", f"/timer/{timer_id}", TimerView)

    async def retry_timer(self, *, timer_id: int) -> ApiResponse[TimerView]:
        """Sends a failed or expired timer again."""
        return await self._request("POST", f"/timer/{timer_id}/retry", TimerView)

    async def list_timers(
        self, *, where: TimerFilter | None = None, limit: int | None = None, cursor: str | None = None
    ) -> ApiResponse[TimerPage]:
        """One page, by due time; `limit` None is the service's default (100)."""
        params = where.params() if where is not None else []
        if limit is not None:
            params.append(("limit", str(limit)))
        if cursor is not None:
            params.append(("cursor", cursor))
        return await self._request("GET", "/timers", TimerPage, params=params)

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
        seen = 0
        while True:
            limit = page_size if max_timers is None else min(page_size, max_timers - seen)
            response = await self.list_timers(where=where, limit=limit, cursor=cursor)
            page = response.parse()
            yield response
            seen += len(page.timers)
            cursor = page.next_cursor
            if cursor is None or not page.timers or (max_timers is not None and seen >= max_timers):
                return

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

    async def _request(
        self,
        method: str,
        path: str,
        model: type[M],
        *,
        body: bytes | None = None,
        params: Sequence[tuple[str, str]] = (),
        headers: Mapping[str, str] | None = None,
    ) -> ApiResponse[M]:
        if self._session is None:
            raise RuntimeError("use the client as `async with ApiClient(...) as api:`")
        url = self.base_url + path
        sent_headers = {**self._auth, **(headers or {})}
        if body is not None:
            sent_headers["Content-Type"] = "application/json"
        try:
            async with self._session.request(
                method, url, data=body, params=list(params), headers=sent_headers
            ) as response:
                text = await response.text(errors="replace")
                status = response.status
        except aiohttp.ClientConnectorError as exc:
            refused = isinstance(exc.os_error, ConnectionRefusedError)
            reason = "connection refused; is the service running?" if refused else exc.strerror or str(exc)
            raise Unreachable(
                f"cannot connect to {self.base_url} ({reason}) (set --url or TASK_SCHEDULER_URL)",
                maybe_sent=False,
            ) from None
        except TimeoutError:
            raise Unreachable(
                f"no answer from {self.base_url} within {self._timeout_seconds:g} s", maybe_sent=True
            ) from None
        except aiohttp.ClientError as exc:
            raise Unreachable(
                f"request to {url} failed: {exc or type(exc).__name__}", maybe_sent=True
            ) from None
        if status >= 400:
            raise ApiError.from_answer(status=status, text=text)
        return ApiResponse(status=status, text=text, url=url, model=model)


def _encode(timer: TimerCreateBody) -> bytes:
    return json.dumps(timer, default=_json_default).encode()


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
