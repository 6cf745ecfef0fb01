"""OpenTelemetry end to end: the real service (uvicorn on 127.0.0.1) exports over OTLP/HTTP to a
real local receiver, and the webhook receiver's request carries the trace on; with tracing off,
nothing of it is installed or sent."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import asyncpg
import httpx

from task_scheduler.app import create_app
from task_scheduler.config import Settings
from task_scheduler.db import asyncpg_dsn
from task_scheduler.tracing.otel import ServerSpans
from task_scheduler.tracing.traceparent import parse_traceparent
from tests.support.app import served
from tests.support.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.support.polling import WAIT, wait_for_status
from tests.support.receiver import Delivery, Receiver, headers_of, running

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
CLIENT_TRACEPARENT = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"


def _first_attempt_fails(_timer_id: int, seen: int) -> int:
    return 503 if seen == 0 else 200


def _one(spans: list[ReceivedSpan]) -> ReceivedSpan:
    assert len(spans) == 1, spans
    return spans[0]


async def test_create_and_delivery_are_one_trace_that_the_receiver_continues(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    async with running(OtlpReceiver()) as otlp, running(Receiver(respond=_first_attempt_fails)) as hook:
        settings = make_settings(otel_exporter_otlp_traces_endpoint=otlp.traces_url)
        app = create_app(settings)
        assert ServerSpans in {m.cls for m in app.user_middleware}
        async with served(app) as base_url, httpx.AsyncClient(base_url=base_url) as api:
            traced = await api.post(
                "/timer",
                json={"seconds": 0, "url": f"{hook.url}?token=s3cret"},
                headers={"traceparent": CLIENT_TRACEPARENT},
            )
            assert traced.status_code == 201
            malformed = await api.post(
                "/timer", json={"seconds": 0, "url": hook.url}, headers={"traceparent": "00-not-a-trace-01"}
            )
            assert malformed.status_code == 201  # ignored, never an error
            batch = await api.post("/timers/batch", json={"timers": [{"seconds": 0, "url": hook.url}]})
            assert batch.status_code == 201
            ids = [
                traced.json()["timer_id"],
                malformed.json()["timer_id"],
                batch.json()["timers"][0]["timer_id"],
            ]
            # Each timer's first attempt gets 503, its second 200.
            assert await hook.wait_for(lambda: all(hook.counts()[i] == 1 for i in ids), within=30)
            timer_id = ids[0]
            # The receiver sees the delivery a moment before the service records its outcome.
            view = await wait_for_status(api, timer_id, "delivered", WAIT)
            assert view["status"] == "delivered"
            replay = await api.post(f"/timer/{timer_id}/replay", json={"delay_seconds": 3600})
            assert replay.status_code == 201
            replay_id = replay.json()["timer_id"]
        # The service has stopped: its batch processor flushed every span.

    database = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        stored = await database.fetchval("SELECT traceparent FROM timers WHERE id = $1", timer_id)
        replay_stored = await database.fetchval("SELECT traceparent FROM timers WHERE id = $1", replay_id)
    finally:
        await database.close()

    assert set(otlp.content_types) == {"application/x-protobuf"}
    create = _one([s for s in otlp.named("POST /timer") if s.trace_id == CLIENT_TRACE])
    assert create.kind == "server"
    assert create.parent_span_id == CLIENT_SPAN  # the client's span is the parent
    assert create.attributes["http.route"] == "/timer"
    assert create.attributes["http.request.method"] == "POST"
    assert create.attributes["http.response.status_code"] == 201
    assert create.resource["service.name"] == "task-scheduler"
    assert create.resource["service.instance.id"] == settings.instance_id
    # What the timer keeps is the create's span: its deliveries are children of it.
    assert stored == f"00-{CLIENT_TRACE}-{create.span_id}-01"

    attempts = sorted(
        (s for s in otlp.spans if s.kind == "client" and s.attributes["task_scheduler.timer_id"] == timer_id),
        key=lambda s: s.attributes["task_scheduler.attempt"],
    )
    assert [s.attributes["task_scheduler.attempt"] for s in attempts] == [1, 2]
    for attempt in attempts:
        assert attempt.name == "POST"
        assert attempt.trace_id == CLIENT_TRACE
        assert attempt.parent_span_id == create.span_id
        assert attempt.attributes["http.request.method"] == "POST"
        assert attempt.attributes["url.full"] == f"{hook.url}?token=REDACTED"
        assert attempt.attributes["server.address"] == "127.0.0.1"
        assert attempt.attributes["server.port"] == hook.port
    failed, delivered = attempts
    assert failed.attributes["http.response.status_code"] == 503
    assert failed.attributes["error.type"] == "503"
    assert failed.status_code == 2  # error
    assert "http.request.resend_count" not in failed.attributes
    assert delivered.attributes["http.response.status_code"] == 200
    assert delivered.attributes["http.request.resend_count"] == 1
    assert "error.type" not in delivered.attributes
    assert delivered.status_code == 0  # unset: no error

    # Each webhook request names its own attempt's span: the receiver's trace continues ours.
    sent = [headers_of(d)["traceparent"] for d in hook.deliveries if d.timer_id == timer_id]
    assert sent == [f"00-{CLIENT_TRACE}-{a.span_id}-01" for a in attempts]

    # A malformed traceparent is ignored: that create starts a trace of its own.
    other = _one([s for s in otlp.named("POST /timer") if s.trace_id != CLIENT_TRACE])
    assert other.parent_span_id == ""
    assert parse_traceparent(headers_of(_delivery_of(hook, ids[1]))["traceparent"]) is not None
    # No traceparent sent: the batch's span is a root, and its timers' deliveries its children.
    batch_span = _one(otlp.named("POST /timers/batch"))
    assert batch_span.parent_span_id == ""
    batch_attempts = [
        s for s in otlp.spans if s.kind == "client" and s.attributes["task_scheduler.timer_id"] == ids[2]
    ]
    assert {(s.trace_id, s.parent_span_id) for s in batch_attempts} == {
        (batch_span.trace_id, batch_span.span_id)
    }
    # A replay is a new create: its deliveries would continue the replay request's trace.
    replay_span = _one(otlp.named("POST /timer/{timer_id}/replay"))
    # (a root span the SDK started says sampled and, W3C level 2, a random trace id: flags 03)
    assert replay_stored.startswith(f"00-{replay_span.trace_id}-{replay_span.span_id}-")
    # GET /timer/{timer_id} (polled until delivered): the span is named by the route template,
    # not the path.
    gets = otlp.named("GET /timer/{timer_id}")
    assert gets
    assert {s.attributes["url.path"] for s in gets} == {f"/timer/{timer_id}"}


def _delivery_of(hook: Receiver, timer_id: int) -> Delivery:
    return next(d for d in hook.deliveries if d.timer_id == timer_id)


async def test_with_tracing_off_nothing_is_installed_kept_or_sent(
    make_settings: Callable[..., Settings], receiver: Receiver, database_url: str
) -> None:
    app = create_app(make_settings())
    assert app.state.tracing is None
    assert ServerSpans not in {m.cls for m in app.user_middleware}
    async with served(app) as base_url, httpx.AsyncClient(base_url=base_url) as api:
        created = await api.post(
            "/timer",
            json={"seconds": 0, "url": receiver.url},
            headers={"traceparent": CLIENT_TRACEPARENT},
        )
        assert created.status_code == 201
        timer_id = created.json()["timer_id"]
        assert await receiver.wait_for(lambda: receiver.counts()[timer_id] == 1, within=30)
    headers = headers_of(receiver.deliveries[0])
    assert "traceparent" not in headers
    assert "tracestate" not in headers
    database = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        assert await database.fetchval("SELECT traceparent FROM timers WHERE id = $1", timer_id) is None
    finally:
        await database.close()


def test_with_tracing_off_the_sdk_and_exporter_are_not_even_imported() -> None:
    """(FastAPI imports the OpenTelemetry API itself; the SDK, its thread and the exporter are ours.)"""
    script = (
        "import sys\n"
        "from task_scheduler.app import create_app\n"
        "from task_scheduler.config import Settings\n"
        "create_app(Settings(database_url='postgresql://nobody@127.0.0.1:1/none'))\n"
        "ours = ('opentelemetry.sdk', 'opentelemetry.exporter', 'task_scheduler.tracing.otel')\n"
        "print(sorted(m for m in sys.modules if m.startswith(ours)))\n"
    )
    environment = {"PATH": "/usr/bin:/bin"}  # none of the caller's OTEL_* variables
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=environment
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
