"""task_scheduler_client, the Python client library, against the real app served over HTTP on
127.0.0.1 (uvicorn in this process) and real receivers: every method of `Client` and
`AsyncClient`, errors, retries of 429 and of a lost answer, and `verify_webhook` on real deliveries.

The blocking `Client` runs in a worker thread (`Threaded`), so that the server in this event loop
keeps serving; one scenario then tests both clients."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiohttp import web

from task_scheduler.app import create_app
from task_scheduler.config import Settings
from task_scheduler.delivery.signing import generate_secret
from task_scheduler_client import (
    AsyncClient,
    BulkFilter,
    Client,
    Conflict,
    NotFound,
    PreconditionFailed,
    RateLimited,
    RetryPolicy,
    TimerView,
    TransportError,
    UnexpectedResponse,
    ValidationFailed,
    WebhookVerificationError,
    new_timer,
    verify_webhook,
)
from tests.support.app import served
from tests.support.processes import free_port
from tests.support.receiver import Delivery, Receiver, headers_of, serve_on_loopback

ADMIN_KEY = "tsk_admin_" + "k" * 40


class Threaded:
    """A blocking `Client` whose methods are awaited, each run in a worker thread."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.client, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await asyncio.to_thread(method, *args, **kwargs)

        return call


Api = Any  # an AsyncClient or a Threaded Client: the same awaited methods


async def listed(api: Api, **query: Any) -> list[TimerView]:
    if isinstance(api, AsyncClient):
        return [view async for view in api.list_timers(**query)]
    return await asyncio.to_thread(lambda: list(api.client.list_timers(**query)))


async def collected(api: Api, method: str, *args: Any, **query: Any) -> list[Any]:
    """The items of an iterating method (list_schedules, schedule_runs) of either client."""
    if isinstance(api, AsyncClient):
        return [item async for item in getattr(api, method)(*args, **query)]
    return await asyncio.to_thread(lambda: list(getattr(api.client, method)(*args, **query)))


async def pages(api: Api, **query: Any) -> list[Any]:
    if isinstance(api, AsyncClient):
        return [page async for page in api.timer_pages(**query)]
    return await asyncio.to_thread(lambda: list(api.client.timer_pages(**query)))


ClientMaker = Callable[..., AbstractAsyncContextManager[Api]]


@pytest.fixture(params=["sync", "async"])
def connect(request: pytest.FixtureRequest) -> ClientMaker:
    """`async with connect(base_url, **options) as api:` with the blocking or the asyncio client."""

    @asynccontextmanager
    async def make(base_url: str, **options: Any) -> AsyncIterator[Api]:
        if request.param == "async":
            async with AsyncClient(base_url, **options) as client:
                yield client
        else:
            with Client(base_url, **options) as blocking:
                yield Threaded(blocking)

    return make


@pytest.fixture
def serve(make_settings: Callable[..., Settings]) -> Callable[..., AbstractAsyncContextManager[str]]:
    """`async with serve(**settings) as base_url:` the real app (dispatcher off unless `dispatch`)."""

    def start(*, dispatch: bool = False, **overrides: Any) -> AbstractAsyncContextManager[str]:
        return served(create_app(make_settings(**overrides), run_dispatcher=dispatch))

    return start


async def test_bulk_actions(serve: Any, connect: ClientMaker) -> None:
    settings = {"dispatch": True, "bulk_batch_size": 2, "bulk_poll_interval_seconds": 0.05}
    async with serve(**settings) as base_url, connect(base_url) as api:
        ids = [
            (
                await api.create_timer(
                    url="http://example.com/b", delay=timedelta(hours=1), labels={"batch": "lib"}
                )
            ).timer_id
            for _ in range(3)
        ]
        where = BulkFilter(labels={"batch": "lib"})
        assert await api.count_bulk("cancel", where=where) == 3
        assert await api.count_bulk("cancel", where=BulkFilter(destination="http://example.com:80")) == 3
        assert await api.count_bulk("cancel", where=BulkFilter(destination="billing")) == 0
        job = await api.start_bulk("reschedule", where=where, offset=timedelta(minutes=5))
        assert (job.state, job.action, job.offset_seconds, job.filter) == (
            "queued",
            "reschedule",
            300.0,
            {"labels": {"batch": "lib"}},
        )
        for _ in range(400):
            job = await api.get_bulk_job(job.job_id)
            if job.state != "queued" and job.state != "running":
                break
            await asyncio.sleep(0.05)
        assert (job.state, job.matched, job.done, job.last_timer_id) == ("done", 3, 3, ids[-1])
        for timer_id in ids:
            assert (await api.get_timer(timer_id)).time_left > 3600 + 290
        with pytest.raises(Conflict):
            await api.cancel_bulk_job(job.job_id)
        with pytest.raises(ValidationFailed) as empty:
            await api.count_bulk("cancel", where=BulkFilter())
        assert empty.value.field == "filter"
        with pytest.raises(NotFound):
            await api.get_bulk_job(job.job_id + 1)


async def test_destinations(serve: Any, connect: ClientMaker) -> None:
    async with serve() as base_url, connect(base_url) as api:
        timer = await api.create_timer(url="http://example.com:8080/x", delay=timedelta(hours=1))
        view = await api.get_timer(timer.timer_id)
        assert (view.destination, view.held_reason) == ("http://example.com:8080", None)
        paused = await api.pause_destination("http://example.com:8080")
        assert (paused.key, paused.paused, paused.breaker_state) == (
            "http://example.com:8080",
            True,
            "closed",
        )
        assert (await api.get_timer(timer.timer_id)).held_reason == "destination_paused"
        await api.pause_destination("b/c", paused=True)
        assert [d.key for d in await api.list_destinations(page_size=1)] == ["b/c", "http://example.com:8080"]
        shown = await api.get_destination("http://example.com:8080")
        assert (shown.paused, shown.waiting) == (True, 0)  # its timer is not due yet
        resumed = await api.resume_destination("http://example.com:8080")
        assert (resumed.paused, resumed.breaker_state) == (False, "closed")
        limited = await api.set_destination_limits(
            "http://example.com:8080", rate_per_second=0.5, parallelism=2
        )
        assert (limited.rate_per_second, limited.burst, limited.parallelism) == (0.5, 1, 2)
        lifted = await api.set_destination_limits("http://example.com:8080")
        assert (lifted.rate_per_second, lifted.burst, lifted.parallelism, lifted.paused) == (
            None,
            None,
            None,
            False,
        )
        with pytest.raises(ValidationFailed) as refused:
            await api.set_destination_limits("b/c", rate_per_second=0)
        assert refused.value.field == "rate_per_second"
        with pytest.raises(ValidationFailed) as bad:
            await api.get_destination("a\tb")
        assert bad.value.field == "key"


async def test_create_get_edit_cancel_and_retry(serve: Any, connect: ClientMaker) -> None:
    async with serve() as base_url, connect(base_url) as api:
        created = await api.create_timer(
            url="http://example.com/a",
            delay=timedelta(hours=2),
            method="PUT",
            headers={"X-Order": "7"},
            body={"order": 7},
            labels={"kind": "reminder"},
            max_lateness=timedelta(minutes=5),
            retry=RetryPolicy(max_attempts=3),
        )
        assert 7190 <= created.time_left <= 7200
        assert not created.replayed
        view = await api.get_timer(created.timer_id)
        assert (view.status, view.url, view.method, view.body) == (
            "pending",
            "http://example.com/a",
            "PUT",
            {"order": 7},
        )
        assert (view.headers, view.labels, view.retry.max_attempts) == (
            {"X-Order": "7"},
            {"kind": "reminder"},
            3,
        )
        assert view.etag is not None

        moved = await api.update_timer(
            created.timer_id, if_match=view.etag, hours=3, labels={"kind": "moved"}, max_lateness=60.0
        )
        assert moved.labels == {"kind": "moved"}
        assert moved.etag not in (None, view.etag)
        with pytest.raises(PreconditionFailed) as stale:
            await api.update_timer(created.timer_id, if_match=view.etag, minutes=1)
        assert (stale.value.status, stale.value.code) == (412, "precondition_failed")

        with pytest.raises(Conflict) as pending:
            await api.retry_timer(created.timer_id)
        assert (pending.value.status, pending.value.field) == (409, "status")
        assert (await api.cancel_timer(created.timer_id)).status == "cancelled"
        with pytest.raises(Conflict) as again:
            await api.cancel_timer(created.timer_id)
        assert again.value.message == f"timer {created.timer_id} is cancelled and cannot be cancelled"
        assert await api.timer_attempts(created.timer_id) == []
        replay = await api.replay_timer(created.timer_id, delay=timedelta(minutes=10))
        assert (replay.replay_of, replay.status, replay.labels) == (
            created.timer_id,
            "pending",
            {"kind": "moved"},
        )
        assert 590 <= replay.time_left <= 600
        with pytest.raises(Conflict):
            await api.replay_timer(replay.timer_id)

        due = datetime.now(UTC) + timedelta(days=1)
        at = await api.create_timer(url="http://example.com/at", fire_at=due, idempotency_key="order-8")
        assert abs((await api.get_timer(at.timer_id)).due_at - due) < timedelta(milliseconds=1)
        replay = await api.create_timer(url="http://example.com/at", fire_at=due, idempotency_key="order-8")
        assert (replay.timer_id, replay.replayed) == (at.timer_id, True)


async def test_errors_carry_the_envelope(serve: Any, connect: ClientMaker) -> None:
    async with serve() as base_url, connect(base_url) as api:
        with pytest.raises(NotFound) as missing:
            await api.get_timer(999999)
        error = missing.value
        assert (error.status, error.code, error.message) == (404, "not_found", "timer 999999 does not exist")
        assert error.field == "timer_id"
        assert str(error) == "404 not_found: timer 999999 does not exist"

        with pytest.raises(ValidationFailed) as invalid:
            await api.create_timer(url="ftp://example.com/x", hours=1)
        assert (invalid.value.status, invalid.value.code, invalid.value.field) == (
            422,
            "validation_error",
            "url",
        )
        assert invalid.value.message == "url: must be an absolute http:// or https:// URL"

        with pytest.raises(ValidationFailed) as batch:
            await api.create_timers(
                [new_timer(url="http://example.com/", minutes=1), new_timer(url="ftp://x")]
            )
        assert batch.value.field == "timers.1.url"
        assert batch.value.details[0].field == "timers.1.url"
        with pytest.raises(NotFound):
            await api.timer_attempts(999999)


async def test_a_batch_and_the_iterator_across_pages(serve: Any, connect: ClientMaker) -> None:
    async with serve() as base_url, connect(base_url) as api:
        batch_a = [
            new_timer(url=f"http://example.com/{i}", hours=2, minutes=i, labels={"batch": "a"})
            for i in range(25)
        ]
        batch_b = [new_timer(url="http://example.com/b", hours=5, labels={"batch": "b"})] * 3
        created = await api.create_timers([*batch_a, *batch_b])
        assert len(created) == 28

        every = await listed(api, labels={"batch": "a"}, page_size=10)
        assert [view.timer_id for view in every] == [c.timer_id for c in created[:25]]  # by due time
        assert [len(page.timers) for page in await pages(api, labels={"batch": "a"}, page_size=10)] == [
            10,
            10,
            5,
        ]

        # no page goes past max_timers, so the last next_cursor is where to resume
        first = await pages(api, labels={"batch": "a"}, page_size=10, max_timers=12)
        assert [len(page.timers) for page in first] == [10, 2]
        rest = await listed(api, labels={"batch": "a"}, cursor=first[-1].next_cursor)
        assert [view.timer_id for view in rest] == [view.timer_id for view in every[12:]]

        await api.cancel_timer(every[3].timer_id)
        assert [view.timer_id for view in await listed(api, status="cancelled")] == [every[3].timer_id]
        later = await listed(api, due_after=datetime.now(UTC) + timedelta(hours=4))
        assert {view.url for view in later} == {"http://example.com/b"}
        assert await listed(api, due_before=datetime.now(UTC)) == []


async def test_a_schedule_from_create_to_delete(serve: Any, connect: ClientMaker) -> None:
    async with serve() as base_url, connect(base_url) as api:
        with pytest.raises(ValidationFailed) as bad:
            await api.create_schedule(cron="61 * * * *", url="http://example.com/s")
        assert (bad.value.status, bad.value.field) == (422, "cron")

        created = await api.create_schedule(
            cron="0 9 * * 1-5",
            timezone="Europe/Berlin",
            url="http://example.com/s",
            labels={"team": "ops"},
            overlap="skip",
            max_lateness=timedelta(minutes=2),
            retry=RetryPolicy(max_attempts=2),
        )
        assert (created.status, created.timezone, created.overlap) == ("active", "Europe/Berlin", "skip")
        assert created.description
        assert len(created.next_runs) == 5
        assert all(run.local.hour == 9 and run.local.weekday() < 5 for run in created.next_runs)
        assert (created.max_lateness_seconds, created.retry.max_attempts) == (120.0, 2)
        view = await api.get_schedule(created.schedule_id)
        assert (view.schedule_id, view.labels, view.etag is not None) == (
            created.schedule_id,
            {"team": "ops"},
            True,
        )

        changed = await api.update_schedule(created.schedule_id, if_match=view.etag, cron="0 10 * * 1-5")
        assert changed.cron == "0 10 * * 1-5"
        assert changed.etag not in (None, view.etag)
        assert all(run.local.hour == 10 for run in changed.next_runs)
        with pytest.raises(PreconditionFailed) as stale:
            await api.update_schedule(created.schedule_id, if_match=view.etag, labels={"team": "dev"})
        assert stale.value.status == 412

        assert (await api.pause_schedule(created.schedule_id)).status == "paused"
        with pytest.raises(Conflict):
            await api.pause_schedule(created.schedule_id)
        assert (await api.resume_schedule(created.schedule_id)).status == "active"

        triggered = await api.trigger_schedule(created.schedule_id)
        assert (triggered.occurrence_at, triggered.status) == (None, "pending")

        deleted = await api.delete_schedule(created.schedule_id, cancel_pending=True)
        assert (deleted.status, deleted.next_runs) == ("ended", [])
        assert (await api.get_schedule(created.schedule_id)).status == "ended"
        with pytest.raises(Conflict):
            await api.resume_schedule(created.schedule_id)
        with pytest.raises(NotFound):
            await api.get_schedule(created.schedule_id + 10_000)


async def test_schedules_across_pages_runs_and_a_backfill(serve: Any, connect: ClientMaker) -> None:
    async with serve() as base_url, connect(base_url) as api:
        hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        made = [
            await api.create_schedule(
                cron="0 * * * *",
                url="http://example.com/h",
                labels={"set": "pages"},
                start_at=hour - timedelta(days=1),
            )
            for _ in range(3)
        ]
        await api.create_schedule(cron="@daily", url="http://example.com/d", labels={"set": "other"})
        listed_ids = [
            s.schedule_id
            for s in await collected(api, "list_schedules", page_size=2, labels={"set": "pages"})
        ]
        assert listed_ids == [s.schedule_id for s in made]
        await api.pause_schedule(made[0].schedule_id)
        paused = await collected(api, "list_schedules", status="paused")
        assert [s.schedule_id for s in paused] == [made[0].schedule_id]

        schedule_id = made[1].schedule_id
        backfill = await api.backfill_schedule(
            schedule_id, start=hour - timedelta(hours=3), end=hour - timedelta(hours=1)
        )
        assert len(backfill.runs) + backfill.already_run == 3
        occurrences = [run.occurrence_at for run in backfill.runs]
        assert occurrences == sorted(occurrences)  # oldest first
        again = await api.backfill_schedule(
            schedule_id, start=hour - timedelta(hours=3), end=hour - timedelta(hours=1)
        )
        assert (again.runs, again.already_run) == ([], 3)
        with pytest.raises(ValidationFailed) as future:
            await api.backfill_schedule(schedule_id, start=hour, end=hour + timedelta(days=1))
        assert future.value.field == "to"

        triggered = await api.trigger_schedule(schedule_id)
        runs = await collected(api, "schedule_runs", schedule_id)
        assert {triggered.timer_id} | {run.timer_id for run in backfill.runs} <= {
            run.timer_id for run in runs
        }
        assert await collected(api, "schedule_runs", schedule_id, page_size=1) == runs
        assert len(await collected(api, "schedule_runs", schedule_id, page_size=1, max_runs=2)) == 2
        assert (await api.delete_schedule(schedule_id)).status == "ended"


async def test_keys_and_signing_secrets(serve: Any, connect: ClientMaker) -> None:
    async with serve(admin_api_key=ADMIN_KEY) as base_url, connect(base_url, api_key=ADMIN_KEY) as admin:
        key = await admin.create_key(tenant="acme", role="writer", name="billing")
        assert (key.tenant, key.role, key.name, key.revoked_at) == ("acme", "writer", "billing", None)
        assert key.key_id in {listed_key.key_id for listed_key in await admin.list_keys()}

        async with connect(base_url, api_key=key.api_key) as writer:
            secret = await writer.create_secret()
            assert secret.secret.startswith("whsec_")
            assert [s.secret_id for s in await writer.list_secrets()] == [secret.secret_id]
            assert await writer.revoke_secret(secret.secret_id) is None
            assert await writer.list_secrets() == []
            with pytest.raises(NotFound):
                await writer.revoke_secret(secret.secret_id)

            hook = await writer.add_tenant_webhook("https://example.com/events")
            assert (hook.url, hook.events) == (
                "https://example.com/events",
                ["timer.failed", "timer.expired"],
            )
            assert await writer.list_tenant_webhooks() == [hook]
            assert await writer.remove_tenant_webhook(hook.webhook_id) is None
            assert await writer.list_tenant_webhooks() == []
            with pytest.raises(NotFound):
                await writer.remove_tenant_webhook(hook.webhook_id)

        revoked = await admin.revoke_key(key.key_id)
        assert revoked.revoked_at is not None


async def test_a_429_is_retried_after_retry_after(serve: Any, connect: ClientMaker) -> None:
    statuses: list[int] = []
    async with serve(admin_api_key=ADMIN_KEY, rate_limit_per_second=1, rate_limit_burst=1) as base_url:
        async with connect(base_url, api_key=ADMIN_KEY, max_retries=0) as impatient:
            await impatient.list_keys()
            with pytest.raises(RateLimited) as limited:
                await impatient.list_keys()
            assert (limited.value.status, limited.value.code, limited.value.retry_after) == (
                429,
                "too_many_requests",
                1,
            )

        hooks = {"response": [lambda response: statuses.append(response.status_code)]}
        async with connect(base_url, api_key=ADMIN_KEY) as api:
            http = api._http if isinstance(api, AsyncClient) else api.client._http
            hooks_for = [_async_hook(statuses)] if isinstance(api, AsyncClient) else hooks["response"]
            http.event_hooks = {"response": hooks_for}
            for _ in range(3):
                assert await api.list_keys()
    assert 429 in statuses
    assert statuses[-1] == 200


def _async_hook(statuses: list[int]) -> Callable[[httpx.Response], Any]:
    async def hook(response: httpx.Response) -> None:
        statuses.append(response.status_code)

    return hook


class LosesFirstAnswer(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """The real HTTP transport, except that the first answer to `path` is read and thrown away
    (the server did the work), and the client sees a cut connection instead."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sent: list[httpx.Request] = []
        self._sync = httpx.HTTPTransport()
        self._async = httpx.AsyncHTTPTransport()

    def _lose(self, request: httpx.Request) -> bool:
        self.sent.append(request)
        return request.url.path == self.path and len([r for r in self.sent if r.url.path == self.path]) == 1

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._sync.handle_request(request)
        if not self._lose(request):
            return response
        response.read()
        response.close()
        raise httpx.ReadError("connection lost", request=request)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._async.handle_async_request(request)
        if not self._lose(request):
            return response
        await response.aread()
        await response.aclose()
        raise httpx.ReadError("connection lost", request=request)

    def close(self) -> None:
        self._sync.close()

    async def aclose(self) -> None:
        await self._async.aclose()


async def test_a_create_whose_answer_is_lost_creates_one_timer(serve: Any, connect: ClientMaker) -> None:
    async with serve() as base_url:
        lossy = LosesFirstAnswer("/timer")
        async with connect(base_url, transport=lossy) as api:
            created = await api.create_timer(url="http://example.com/once", minutes=5)
            assert created.replayed  # the second attempt found the first one's timer
            assert [view.timer_id for view in await listed(api)] == [created.timer_id]
        keys = [request.headers["Idempotency-Key"] for request in lossy.sent if request.url.path == "/timer"]
        assert len(keys) == 2
        assert keys[0] == keys[1]

        batch_lossy = LosesFirstAnswer("/timers/batch")
        async with connect(base_url, transport=batch_lossy) as api:
            with pytest.raises(TransportError) as unknown:
                await api.create_timers([new_timer(url="http://example.com/batch", minutes=5)])
            assert unknown.value.maybe_sent  # a batch has no idempotency key: not sent twice
            assert len(await listed(api)) == 2


async def test_no_service_and_something_else(connect: ClientMaker, receiver: Receiver) -> None:
    async with connect(
        f"http://127.0.0.1:{free_port()}", max_retries=1, backoff_base_seconds=0.01
    ) as nothing:
        with pytest.raises(TransportError) as refused:
            await nothing.get_timer(1)
    assert not refused.value.maybe_sent
    assert "connection refused" in str(refused.value)

    async with connect(f"http://127.0.0.1:{receiver.port}") as other:
        with pytest.raises(UnexpectedResponse, match="is this a task-scheduler service"):
            await other.get_timer(1)


async def test_a_retry_after_no_date_can_hold_is_the_apis_error(connect: ClientMaker) -> None:
    """Regression: a 429 whose Retry-After is a date no datetime holds raised OverflowError out
    of the client (a traceback from the CLI) instead of RateLimited."""
    envelope = {"error": {"code": "rate_limited", "message": "slow down", "field": None}}

    async def answer(_request: web.Request) -> web.Response:
        return web.json_response(envelope, status=429, headers={"Retry-After": "0 JAN 10000000000 0:0"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner, port = await serve_on_loopback(app)
    try:
        async with connect(f"http://127.0.0.1:{port}", max_retries=1) as api:
            with pytest.raises(RateLimited, match="slow down") as refused:
                await api.get_timer(1)
    finally:
        await runner.cleanup()
    assert refused.value.retry_after is None


@pytest.fixture
async def delivery(serve: Any, receiver: Receiver) -> Delivery:
    """A real webhook, signed by the service with two secrets (a rotation in progress)."""
    secrets = f"{OLD_SECRET},{NEW_SECRET}"
    async with serve(dispatch=True, webhook_secrets=secrets) as base_url, AsyncClient(base_url) as api:
        created = await api.create_timer(url=receiver.url, seconds=0, labels={"order": "7"})
        assert await receiver.wait_for(lambda: receiver.counts()[created.timer_id] == 1, within=30)
    (sent,) = receiver.deliveries
    return sent


OLD_SECRET = generate_secret()
NEW_SECRET = generate_secret()


def test_verify_webhook_accepts_a_real_delivery_with_any_current_secret(delivery: Delivery) -> None:
    for secrets in (NEW_SECRET, [OLD_SECRET], [generate_secret(), NEW_SECRET]):
        body = verify_webhook(secrets, delivery.headers, delivery.raw)
        assert isinstance(body, dict)
        assert (body["timer_id"], body["labels"]) == (delivery.timer_id, {"order": "7"})
    assert verify_webhook(NEW_SECRET, headers_of(delivery), delivery.raw.decode()) == json.loads(delivery.raw)


def test_verify_webhook_refuses_what_is_not_authentic(delivery: Delivery) -> None:
    def refusal(secrets: str | list[str], headers: dict[str, str], body: bytes, **options: Any) -> str:
        with pytest.raises(WebhookVerificationError) as refused:
            verify_webhook(secrets, headers, body, **options)
        return refused.value.reason

    headers, raw = delivery.headers, delivery.raw
    assert (
        refusal(NEW_SECRET, headers, raw.replace(b'"7"', b'"8"'))
        == "no signature matches (1 secret(s) tried)"
    )
    assert refusal([generate_secret(), generate_secret()], headers, raw).startswith("no signature matches (2")
    sent_at = int(headers_of(delivery)["webhook-timestamp"])
    assert refusal(NEW_SECRET, headers, raw, now=sent_at + 301).startswith("webhook-timestamp is 301 s old")
    assert "in the future" in refusal(
        NEW_SECRET, headers, raw, now=datetime.fromtimestamp(sent_at - 400, UTC)
    )
    assert verify_webhook(NEW_SECRET, headers, raw, now=sent_at + 3000, tolerance_seconds=3600)
    unsigned = {k: v for k, v in headers_of(delivery).items() if k != "webhook-signature"}
    assert refusal(NEW_SECRET, unsigned, raw) == "missing webhook-signature header"
    other_id = {**headers_of(delivery), "webhook-id": "msg_other"}
    assert refusal(NEW_SECRET, other_id, raw).startswith("no signature matches")
    with pytest.raises(ValueError, match="not 'whsec_' \\+ base64"):
        verify_webhook("whsec_not base64!", headers, raw)
