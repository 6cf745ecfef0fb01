"""`Client` (blocking) and `AsyncClient` (asyncio): the same methods over httpx, each a thin sender
of the calls the shared core (`_core`) builds and reads."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Self, TypeVar, Unpack

import httpx

from task_scheduler_client._core import (
    DEFAULT_URL,
    Call,
    Calls,
    ClientOptions,
    Engine,
    Paging,
    Retry,
    ScheduleChangeFields,
    ScheduleFields,
    SchedulePaging,
    ScheduleQuery,
    TimerChangeFields,
    TimerFields,
    TimerQuery,
    new_timer,
)
from task_scheduler_client._models import (
    AttemptView,
    BackfillCreated,
    BulkAction,
    BulkFilter,
    BulkJob,
    Destination,
    KeyCreated,
    KeyView,
    NewTimer,
    Role,
    RunView,
    ScheduleView,
    SecretCreated,
    SecretView,
    TenantWebhook,
    TimerCreated,
    TimerPage,
    TimerView,
)

T = TypeVar("T")


class Client:
    """The service's API, blocking: `with Client("http://127.0.0.1:8080", api_key=...) as api:`.

    Every method raises an `ApiError` subclass when the service says no (after retrying 429 and
    503), and `TransportError` when it does not answer. Options: see `ClientOptions`.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        transport: httpx.BaseTransport | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        self._engine = Engine(base_url, options)
        self._http = httpx.Client(
            headers=self._engine.headers, timeout=self._engine.timeout_seconds, transport=transport
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Closes the connections (the `with` block does it)."""
        self._http.close()

    def send(self, call: Call[T]) -> T:
        """Sends one prepared call, retrying as the options say (the methods below are built on it;
        the operator CLI sends calls of its own that keep the answer's text)."""
        request = self._engine.request(self._http, call)
        attempt = 0
        while True:
            attempt += 1
            try:
                step = self._engine.answered(call, attempt, self._http.send(request))
            except (httpx.TransportError, httpx.DecodingError) as exc:
                step = self._engine.failed(call, attempt, exc)
            if not isinstance(step, Retry):
                return step
            time.sleep(step.seconds)

    def create_timer(
        self, *, idempotency_key: str | None = None, **timer: Unpack[TimerFields]
    ) -> TimerCreated:
        """Creates a timer: `url` and when (`delay=timedelta(...)`, or `hours`/`minutes`/`seconds`,
        or `fire_at`); see `TimerFields`. Retried safely: every attempt carries the same
        Idempotency-Key (`idempotency_key`, or one generated for this call)."""
        return self.send(Calls.create_timer(new_timer(**timer), idempotency_key))

    def create_timers(self, timers: Sequence[NewTimer]) -> list[TimerCreated]:
        """Creates up to 1,000 timers (made with `new_timer(...)`) in one transaction, all or none."""
        return self.send(Calls.create_timers(timers)).timers

    def get_timer(self, timer_id: int) -> TimerView:
        """The timer; its `etag` is what `update_timer(if_match=...)` takes."""
        return self.send(Calls.get_timer(timer_id))

    def list_timers(
        self,
        *,
        page_size: int = 100,
        cursor: str | None = None,
        max_timers: int | None = None,
        **where: Unpack[TimerQuery],
    ) -> Iterator[TimerView]:
        """Every timer that matches `where` (status, labels, due_after, due_before), by due time,
        fetching page after page as it is iterated."""
        for page in self.timer_pages(page_size=page_size, cursor=cursor, max_timers=max_timers, **where):
            yield from page.timers

    def timer_pages(
        self,
        *,
        page_size: int = 100,
        cursor: str | None = None,
        max_timers: int | None = None,
        **where: Unpack[TimerQuery],
    ) -> Iterator[TimerPage]:
        """The pages of `list_timers`; the last one's `next_cursor` is where to resume (None: the end)."""
        paging = Paging(where, page_size=page_size, cursor=cursor, max_timers=max_timers)
        while (call := paging.next_call()) is not None:
            page = self.send(call)
            paging.advance(page)
            yield page

    def update_timer(
        self, timer_id: int, *, if_match: str | None = None, **changes: Unpack[TimerChangeFields]
    ) -> TimerView:
        """Edits a pending timer; with `if_match` (an `etag`), only if it has not changed since
        (else PreconditionFailed)."""
        return self.send(Calls.update_timer(timer_id, changes, if_match))

    def cancel_timer(self, timer_id: int) -> TimerView:
        """Cancels a pending timer (Conflict when it is not pending)."""
        return self.send(Calls.cancel_timer(timer_id))

    def retry_timer(self, timer_id: int) -> TimerView:
        """Sends a failed or expired timer again (Conflict otherwise)."""
        return self.send(Calls.retry_timer(timer_id))

    def replay_timer(
        self, timer_id: int, *, delay: timedelta | None = None, fire_at: datetime | str | None = None
    ) -> TimerView:
        """A new timer with a finished timer's request (due now, after `delay` or at `fire_at`),
        linked to it by `replay_of`; Conflict while the timer is pending or firing."""
        return self.send(Calls.replay_timer(timer_id, delay, fire_at))

    def start_bulk(
        self, action: BulkAction, *, where: BulkFilter, offset: timedelta | None = None
    ) -> BulkJob:
        """Queue `action` on every timer `where` matches (`offset`: a reschedule's, whole
        seconds); the job runs in the background: follow it with `get_bulk_job`."""
        return self.send(Calls.start_bulk(action, where, offset))

    def count_bulk(self, action: BulkAction, *, where: BulkFilter, offset: timedelta | None = None) -> int:
        """How many timers `start_bulk` with these arguments would take now (a dry run)."""
        return self.send(Calls.count_bulk(action, where, offset)).matched

    def get_bulk_job(self, job_id: int) -> BulkJob:
        return self.send(Calls.bulk_job(job_id))

    def cancel_bulk_job(self, job_id: int) -> BulkJob:
        """Stop a queued or running job; what it did stays done (Conflict once it has ended)."""
        return self.send(Calls.cancel_bulk_job(job_id))

    def timer_attempts(self, timer_id: int) -> list[AttemptView]:
        """The timer's delivery attempts, oldest first."""
        return self.send(Calls.timer_attempts(timer_id)).attempts

    def create_schedule(self, **schedule: Unpack[ScheduleFields]) -> ScheduleView:
        """Creates a schedule: `cron` and `url`, and the rest of `ScheduleFields`; its `next_runs`
        and `description` say when it fires."""
        return self.send(Calls.create_schedule(schedule))

    def get_schedule(self, schedule_id: int) -> ScheduleView:
        """The schedule; its `etag` is what `update_schedule(if_match=...)` takes."""
        return self.send(Calls.get_schedule(schedule_id))

    def list_schedules(
        self,
        *,
        page_size: int = 100,
        cursor: str | None = None,
        max_schedules: int | None = None,
        **where: Unpack[ScheduleQuery],
    ) -> Iterator[ScheduleView]:
        """Every schedule that matches `where` (status, labels), in id order, fetching page after
        page as it is iterated."""
        paging = SchedulePaging(where, page_size=page_size, cursor=cursor, max_items=max_schedules)
        while (call := paging.next_schedules()) is not None:
            page = self.send(call)
            paging.advance(len(page.schedules), page.next_cursor)
            yield from page.schedules

    def update_schedule(
        self, schedule_id: int, *, if_match: str | None = None, **changes: Unpack[ScheduleChangeFields]
    ) -> ScheduleView:
        """Edits a schedule (a new cron or timezone recomputes the next run); with `if_match` (an
        `etag`), only if it has not changed since (else PreconditionFailed)."""
        return self.send(Calls.update_schedule(schedule_id, changes, if_match))

    def delete_schedule(self, schedule_id: int, *, cancel_pending: bool = False) -> ScheduleView:
        """Ends a schedule (its past runs stay); its pending run still fires unless `cancel_pending`."""
        return self.send(Calls.delete_schedule(schedule_id, cancel_pending))

    def pause_schedule(self, schedule_id: int) -> ScheduleView:
        """Pauses an active schedule (Conflict otherwise)."""
        return self.send(Calls.pause_schedule(schedule_id))

    def resume_schedule(self, schedule_id: int) -> ScheduleView:
        """Resumes a paused schedule (Conflict otherwise)."""
        return self.send(Calls.resume_schedule(schedule_id))

    def trigger_schedule(self, schedule_id: int) -> RunView:
        """Runs the schedule now, outside its occurrences."""
        return self.send(Calls.trigger_schedule(schedule_id))

    def backfill_schedule(self, schedule_id: int, *, start: datetime, end: datetime) -> BackfillCreated:
        """Runs for the occurrences from `start` to `end` (both included, not in the future) that
        had none."""
        return self.send(Calls.backfill_schedule(schedule_id, start, end))

    def schedule_runs(
        self, schedule_id: int, *, page_size: int = 100, max_runs: int | None = None
    ) -> Iterator[RunView]:
        """The schedule's runs, newest first, fetching page after page as it is iterated."""
        paging = SchedulePaging(
            {}, schedule_id=schedule_id, page_size=page_size, cursor=None, max_items=max_runs
        )
        while (call := paging.next_runs()) is not None:
            page = self.send(call)
            paging.advance(len(page.runs), page.next_cursor)
            yield from page.runs

    def list_keys(self) -> list[KeyView]:
        """Every API key (an admin key's call)."""
        return self.send(Calls.list_keys()).keys

    def create_key(self, *, tenant: str, role: Role, name: str = "") -> KeyCreated:
        """A new API key; its `api_key` is shown this once (an admin key's call)."""
        return self.send(Calls.create_key(tenant, role, name))

    def revoke_key(self, key_id: str) -> KeyView:
        """Revokes an API key (an admin key's call)."""
        return self.send(Calls.revoke_key(key_id))

    def list_secrets(self) -> list[SecretView]:
        """The tenant's active webhook signing secrets, newest first."""
        return self.send(Calls.list_secrets()).secrets

    def create_secret(self) -> SecretCreated:
        """A new signing secret for the tenant's webhooks; its `secret` is shown this once."""
        return self.send(Calls.create_secret())

    def revoke_secret(self, secret_id: int) -> None:
        """Stops signing with a secret (rotate: create the new one first)."""
        self.send(Calls.revoke_secret(secret_id))

    def list_tenant_webhooks(self) -> list[TenantWebhook]:
        """The tenant's operational webhooks (where timer.failed / timer.expired events go)."""
        return self.send(Calls.list_tenant_webhooks()).webhooks

    def add_tenant_webhook(
        self, url: str, events: Sequence[str] = ("timer.failed", "timer.expired")
    ) -> TenantWebhook:
        """Send the tenant's timer events (`timer.failed`, `timer.expired`) to `url`."""
        return self.send(Calls.add_tenant_webhook(url, events))

    def remove_tenant_webhook(self, webhook_id: int) -> None:
        """Stop sending events to an operational webhook."""
        self.send(Calls.remove_tenant_webhook(webhook_id))

    def list_destinations(self, *, page_size: int = 100, max_pages: int = 1000) -> list[Destination]:
        """The tenant's destinations that were paused or failed, in key order (every page)."""
        found: list[Destination] = []
        cursor: str | None = None
        for _ in range(max_pages):
            page = self.send(Calls.list_destinations(cursor, page_size))
            found += page.destinations
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        return found

    def get_destination(self, key: str) -> Destination:
        """A destination's pause switch, breaker state and waiting timers (`key`: a URL's origin
        `scheme://host:port`, or the key its timers were given)."""
        return self.send(Calls.get_destination(key))

    def pause_destination(self, key: str, paused: bool = True) -> Destination:
        """Hold the destination's timers (pending, attempts untouched); `paused=False` releases them."""
        return self.send(Calls.update_destination(key, paused=paused))

    def resume_destination(self, key: str) -> Destination:
        """Unpause the destination and close its circuit breaker: its held timers go out."""
        return self.send(Calls.resume_destination(key))

    def set_destination_limits(
        self,
        key: str,
        *,
        rate_per_second: float | None = None,
        burst: int | None = None,
        parallelism: int | None = None,
    ) -> Destination:
        """Set every limit of the destination at once, held across all instances: at most
        `rate_per_second` requests a second (0.5: 30 a minute) with bursts of `burst` (None: one
        second's worth), at most `parallelism` in flight; None lifts a limit (so no argument makes
        it unlimited). Its waiting timers stay pending, attempts untouched."""
        limits = {"rate_per_second": rate_per_second, "parallelism": parallelism}
        if burst is not None:
            limits["burst"] = burst
        return self.send(Calls.update_destination(key, limits=limits))


class AsyncClient:
    """The service's API for asyncio: `async with AsyncClient("http://127.0.0.1:8080") as api:`.

    The same methods as `Client`, awaited (`list_timers` is an async iterator).
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        self._engine = Engine(base_url, options)
        self._http = httpx.AsyncClient(
            headers=self._engine.headers, timeout=self._engine.timeout_seconds, transport=transport
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Closes the connections (the `async with` block does it)."""
        await self._http.aclose()

    async def send(self, call: Call[T]) -> T:
        """Sends one prepared call, retrying as the options say (see `Client.send`)."""
        request = self._engine.request(self._http, call)
        attempt = 0
        while True:
            attempt += 1
            try:
                step = self._engine.answered(call, attempt, await self._http.send(request))
            except (httpx.TransportError, httpx.DecodingError) as exc:
                step = self._engine.failed(call, attempt, exc)
            if not isinstance(step, Retry):
                return step
            await asyncio.sleep(step.seconds)

    async def create_timer(
        self, *, idempotency_key: str | None = None, **timer: Unpack[TimerFields]
    ) -> TimerCreated:
        """Creates a timer: see `Client.create_timer`."""
        return await self.send(Calls.create_timer(new_timer(**timer), idempotency_key))

    async def create_timers(self, timers: Sequence[NewTimer]) -> list[TimerCreated]:
        """Creates up to 1,000 timers in one transaction, all or none."""
        return (await self.send(Calls.create_timers(timers))).timers

    async def get_timer(self, timer_id: int) -> TimerView:
        """The timer; its `etag` is what `update_timer(if_match=...)` takes."""
        return await self.send(Calls.get_timer(timer_id))

    async def list_timers(
        self,
        *,
        page_size: int = 100,
        cursor: str | None = None,
        max_timers: int | None = None,
        **where: Unpack[TimerQuery],
    ) -> AsyncIterator[TimerView]:
        """Every timer that matches `where`, by due time: `async for timer in api.list_timers():`."""
        async for page in self.timer_pages(
            page_size=page_size, cursor=cursor, max_timers=max_timers, **where
        ):
            for view in page.timers:
                yield view

    async def timer_pages(
        self,
        *,
        page_size: int = 100,
        cursor: str | None = None,
        max_timers: int | None = None,
        **where: Unpack[TimerQuery],
    ) -> AsyncIterator[TimerPage]:
        """The pages of `list_timers`; the last one's `next_cursor` is where to resume."""
        paging = Paging(where, page_size=page_size, cursor=cursor, max_timers=max_timers)
        while (call := paging.next_call()) is not None:
            page = await self.send(call)
            paging.advance(page)
            yield page

    async def update_timer(
        self, timer_id: int, *, if_match: str | None = None, **changes: Unpack[TimerChangeFields]
    ) -> TimerView:
        """Edits a pending timer; with `if_match`, only if unchanged since (else PreconditionFailed)."""
        return await self.send(Calls.update_timer(timer_id, changes, if_match))

    async def cancel_timer(self, timer_id: int) -> TimerView:
        """Cancels a pending timer (Conflict when it is not pending)."""
        return await self.send(Calls.cancel_timer(timer_id))

    async def retry_timer(self, timer_id: int) -> TimerView:
        """Sends a failed or expired timer again (Conflict otherwise)."""
        return await self.send(Calls.retry_timer(timer_id))

    async def replay_timer(
        self, timer_id: int, *, delay: timedelta | None = None, fire_at: datetime | str | None = None
    ) -> TimerView:
        """A new timer with a finished timer's request (see `Client.replay_timer`)."""
        return await self.send(Calls.replay_timer(timer_id, delay, fire_at))

    async def start_bulk(
        self, action: BulkAction, *, where: BulkFilter, offset: timedelta | None = None
    ) -> BulkJob:
        """Queue `action` on every timer `where` matches (see `Client.start_bulk`)."""
        return await self.send(Calls.start_bulk(action, where, offset))

    async def count_bulk(
        self, action: BulkAction, *, where: BulkFilter, offset: timedelta | None = None
    ) -> int:
        """How many timers `start_bulk` with these arguments would take now (a dry run)."""
        return (await self.send(Calls.count_bulk(action, where, offset))).matched

    async def get_bulk_job(self, job_id: int) -> BulkJob:
        return await self.send(Calls.bulk_job(job_id))

    async def cancel_bulk_job(self, job_id: int) -> BulkJob:
        """Stop a queued or running job; what it did stays done (Conflict once it has ended)."""
        return await self.send(Calls.cancel_bulk_job(job_id))

    async def timer_attempts(self, timer_id: int) -> list[AttemptView]:
        """The timer's delivery attempts, oldest first."""
        return (await self.send(Calls.timer_attempts(timer_id))).attempts

    async def create_schedule(self, **schedule: Unpack[ScheduleFields]) -> ScheduleView:
        """Creates a schedule: see `Client.create_schedule`."""
        return await self.send(Calls.create_schedule(schedule))

    async def get_schedule(self, schedule_id: int) -> ScheduleView:
        """The schedule; its `etag` is what `update_schedule(if_match=...)` takes."""
        return await self.send(Calls.get_schedule(schedule_id))

    async def list_schedules(
        self,
        *,
        page_size: int = 100,
        cursor: str | None = None,
        max_schedules: int | None = None,
        **where: Unpack[ScheduleQuery],
    ) -> AsyncIterator[ScheduleView]:
        """Every schedule that matches `where`, in id order: `async for s in api.list_schedules():`."""
        paging = SchedulePaging(where, page_size=page_size, cursor=cursor, max_items=max_schedules)
        while (call := paging.next_schedules()) is not None:
            page = await self.send(call)
            paging.advance(len(page.schedules), page.next_cursor)
            for view in page.schedules:
                yield view

    async def update_schedule(
        self, schedule_id: int, *, if_match: str | None = None, **changes: Unpack[ScheduleChangeFields]
    ) -> ScheduleView:
        """Edits a schedule; with `if_match`, only if unchanged since (else PreconditionFailed)."""
        return await self.send(Calls.update_schedule(schedule_id, changes, if_match))

    async def delete_schedule(self, schedule_id: int, *, cancel_pending: bool = False) -> ScheduleView:
        """Ends a schedule (its past runs stay); its pending run still fires unless `cancel_pending`."""
        return await self.send(Calls.delete_schedule(schedule_id, cancel_pending))

    async def pause_schedule(self, schedule_id: int) -> ScheduleView:
        """Pauses an active schedule (Conflict otherwise)."""
        return await self.send(Calls.pause_schedule(schedule_id))

    async def resume_schedule(self, schedule_id: int) -> ScheduleView:
        """Resumes a paused schedule (Conflict otherwise)."""
        return await self.send(Calls.resume_schedule(schedule_id))

    async def trigger_schedule(self, schedule_id: int) -> RunView:
        """Runs the schedule now, outside its occurrences."""
        return await self.send(Calls.trigger_schedule(schedule_id))

    async def backfill_schedule(self, schedule_id: int, *, start: datetime, end: datetime) -> BackfillCreated:
        """Runs for the occurrences from `start` to `end` (both included) that had none."""
        return await self.send(Calls.backfill_schedule(schedule_id, start, end))

    async def schedule_runs(
        self, schedule_id: int, *, page_size: int = 100, max_runs: int | None = None
    ) -> AsyncIterator[RunView]:
        """The schedule's runs, newest first: `async for run in api.schedule_runs(id):`."""
        paging = SchedulePaging(
            {}, schedule_id=schedule_id, page_size=page_size, cursor=None, max_items=max_runs
        )
        while (call := paging.next_runs()) is not None:
            page = await self.send(call)
            paging.advance(len(page.runs), page.next_cursor)
            for run in page.runs:
                yield run

    async def list_keys(self) -> list[KeyView]:
        """Every API key (an admin key's call)."""
        return (await self.send(Calls.list_keys())).keys

    async def create_key(self, *, tenant: str, role: Role, name: str = "") -> KeyCreated:
        """A new API key; its `api_key` is shown this once (an admin key's call)."""
        return await self.send(Calls.create_key(tenant, role, name))

    async def revoke_key(self, key_id: str) -> KeyView:
        """Revokes an API key (an admin key's call)."""
        return await self.send(Calls.revoke_key(key_id))

    async def list_secrets(self) -> list[SecretView]:
        """The tenant's active webhook signing secrets, newest first."""
        return (await self.send(Calls.list_secrets())).secrets

    async def create_secret(self) -> SecretCreated:
        """A new signing secret for the tenant's webhooks; its `secret` is shown this once."""
        return await self.send(Calls.create_secret())

    async def revoke_secret(self, secret_id: int) -> None:
        """Stops signing with a secret (rotate: create the new one first)."""
        await self.send(Calls.revoke_secret(secret_id))

    async def list_tenant_webhooks(self) -> list[TenantWebhook]:
        """The tenant's operational webhooks (where timer.failed / timer.expired events go)."""
        return (await self.send(Calls.list_tenant_webhooks())).webhooks

    async def add_tenant_webhook(
        self, url: str, events: Sequence[str] = ("timer.failed", "timer.expired")
    ) -> TenantWebhook:
        """Send the tenant's timer events (`timer.failed`, `timer.expired`) to `url`."""
        return await self.send(Calls.add_tenant_webhook(url, events))

    async def remove_tenant_webhook(self, webhook_id: int) -> None:
        """Stop sending events to an operational webhook."""
        await self.send(Calls.remove_tenant_webhook(webhook_id))

    async def list_destinations(self, *, page_size: int = 100, max_pages: int = 1000) -> list[Destination]:
        """The tenant's destinations that were paused or failed, in key order (every page)."""
        found: list[Destination] = []
        cursor: str | None = None
        for _ in range(max_pages):
            page = await self.send(Calls.list_destinations(cursor, page_size))
            found += page.destinations
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        return found

    async def get_destination(self, key: str) -> Destination:
        """A destination's pause switch, breaker state and waiting timers (`key`: a URL's origin
        `scheme://host:port`, or the key its timers were given)."""
        return await self.send(Calls.get_destination(key))

    async def pause_destination(self, key: str, paused: bool = True) -> Destination:
        """Hold the destination's timers (pending, attempts untouched); `paused=False` releases them."""
        return await self.send(Calls.update_destination(key, paused=paused))

    async def resume_destination(self, key: str) -> Destination:
        """Unpause the destination and close its circuit breaker: its held timers go out."""
        return await self.send(Calls.resume_destination(key))

    async def set_destination_limits(
        self,
        key: str,
        *,
        rate_per_second: float | None = None,
        burst: int | None = None,
        parallelism: int | None = None,
    ) -> Destination:
        """Set every limit of the destination at once, held across all instances: at most
        `rate_per_second` requests a second (0.5: 30 a minute) with bursts of `burst` (None: one
        second's worth), at most `parallelism` in flight; None lifts a limit (so no argument makes
        it unlimited). Its waiting timers stay pending, attempts untouched."""
        limits = {"rate_per_second": rate_per_second, "parallelism": parallelism}
        if burst is not None:
            limits["burst"] = burst
        return await self.send(Calls.update_destination(key, limits=limits))
