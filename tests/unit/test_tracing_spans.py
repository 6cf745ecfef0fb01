"""The spans' attributes: URLs without secrets, few span names whatever the method, errors marked.
Spans are recorded by the SDK's in-memory exporter (the OTLP path is tested end to end in
tests/integration/test_tracing.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from starlette.types import Message, Receive, Scope, Send

from task_scheduler.config import Settings
from task_scheduler.tracing.otel import ServerSpans, Tracing, url_attributes
from task_scheduler.tracing.traceparent import SCOPE_KEY, parse_traceparent

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://hooks.example.com/a/b?token=s3cret&plain",
            {
                "url.full": "https://hooks.example.com/a/b?token=REDACTED&REDACTED",
                "server.address": "hooks.example.com",
                "server.port": 443,
            },
        ),
        (
            "http://user:pass@10.0.0.1:8080/hook#frag",
            {
                "url.full": "http://REDACTED:REDACTED@10.0.0.1:8080/hook",
                "server.address": "10.0.0.1",
                "server.port": 8080,
            },
        ),
        (
            "http://[::1]/hook",
            {"url.full": "http://[::1]/hook", "server.address": "::1", "server.port": 80},
        ),
        ("http://h:99999/", {}),  # a port no URL can have: nothing rather than an error
        ("http://[::1/", {}),
    ],
)
def test_url_attributes_leave_secrets_out(url: str, expected: dict[str, object]) -> None:
    assert url_attributes(url) == expected


@pytest.fixture
def recorded() -> Iterator[tuple[Tracing, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = Tracing(Settings(otel_traces_exporter="otlp"))
    tracing.tracer = provider.get_tracer("test")
    yield tracing, exporter
    provider.shutdown()


def _scope(method: str, headers: list[tuple[bytes, bytes]] | None = None) -> Scope:
    return {"type": "http", "method": method, "path": "/timer/7", "scheme": "http", "headers": headers or []}


async def _receive() -> Message:
    return {"type": "http.request", "body": b""}


def _answering(status: int) -> object:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return app


async def test_a_server_span_continues_the_callers_trace_and_leaves_its_own_in_the_scope(
    recorded: tuple[Tracing, InMemorySpanExporter],
) -> None:
    tracing, exporter = recorded
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = _scope("GET", [(b"traceparent", PARENT.encode())])
    await ServerSpans(_answering(404), tracing=tracing)(scope, _receive, send)  # type: ignore[arg-type]
    (span,) = exporter.get_finished_spans()
    parent = parse_traceparent(PARENT)
    assert parent is not None
    assert span.kind is SpanKind.SERVER
    assert span.parent is not None
    assert (span.context.trace_id, span.parent.span_id) == (parent.trace_id, parent.span_id)
    assert span.name == "GET"  # no route matched
    assert span.attributes is not None
    assert span.attributes["http.response.status_code"] == 404
    assert span.status.status_code is StatusCode.UNSET  # a 4xx is the client's error
    own = parse_traceparent(scope[SCOPE_KEY])
    assert own is not None
    assert own.span_id == span.context.span_id
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]


async def test_a_server_error_or_a_crash_marks_the_span(
    recorded: tuple[Tracing, InMemorySpanExporter],
) -> None:
    tracing, exporter = recorded

    async def send(message: Message) -> None:
        pass

    async def crash(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("boom")

    await ServerSpans(_answering(503), tracing=tracing)(_scope("POST"), _receive, send)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError):
        await ServerSpans(crash, tracing=tracing)(_scope("POST"), _receive, send)
    answered, crashed = exporter.get_finished_spans()
    assert answered.attributes is not None
    assert crashed.attributes is not None
    assert (answered.status.status_code, answered.attributes["error.type"]) == (StatusCode.ERROR, "503")
    assert (crashed.status.status_code, crashed.attributes["error.type"]) == (
        StatusCode.ERROR,
        "RuntimeError",
    )


async def test_an_unknown_method_does_not_name_a_span(recorded: tuple[Tracing, InMemorySpanExporter]) -> None:
    tracing, exporter = recorded

    async def send(message: Message) -> None:
        pass

    await ServerSpans(_answering(405), tracing=tracing)(_scope("BREW"), _receive, send)  # type: ignore[arg-type]
    (span,) = exporter.get_finished_spans()
    assert span.name == "HTTP"
    assert span.attributes is not None
    assert span.attributes["http.request.method"] == "_OTHER"
    assert span.parent is None  # no traceparent: a trace of its own
