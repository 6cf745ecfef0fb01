"""OpenTelemetry traces: a server span per API request, a client span per delivery attempt, both
exported over OTLP/HTTP (protobuf) by a batch span processor. Built only when
`Settings.tracing_enabled`; with tracing off nothing here is imported or installed.

One trace from the client to the receiver: the server span continues a valid `traceparent` the
request carried; a create keeps that span's traceparent with the timer (routes read it from the
ASGI scope); each delivery attempt is a child span of it, and the webhook carries the attempt's
own traceparent. The provider is not made global: the app's objects hold it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from urllib.parse import urlsplit, urlunsplit

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind, StatusCode, TraceFlags
from opentelemetry.util.types import AttributeValue
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from task_scheduler import __version__
from task_scheduler.config import Settings
from task_scheduler.delivery.client import DeliveryResult, WebhookClient, WebhookRequest
from task_scheduler.logs import log_event
from task_scheduler.tracing.traceparent import SCOPE_KEY, TraceParent, parse_traceparent

logger = logging.getLogger(__name__)

DEFAULT_SERVICE_NAME = "task-scheduler"
# HTTP semantic conventions: other methods are "_OTHER" (span names stay few).
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
REDACTED = "REDACTED"
_DEFAULT_PORTS = {"http": 80, "https": 443}


class Tracing:
    """The tracer of one app: its provider is built by `start()` in the lifespan (a batch
    processor runs a thread: none before a prefork parent forks), flushed and shut by `stop()`."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._provider: TracerProvider | None = None
        self.tracer: trace.Tracer = trace.NoOpTracer()

    def start(self) -> None:
        settings = self._settings
        # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES are read here; only our default differs.
        resource = Resource.create(
            {"service.version": __version__, "service.instance.id": settings.instance_id}
        )
        if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
            resource = resource.merge(Resource({"service.name": DEFAULT_SERVICE_NAME}))
        # The sampler comes from OTEL_TRACES_SAMPLER (default: parent-based, always on).
        provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        exporter = OTLPSpanExporter(endpoint=settings.otlp_traces_url)
        provider.add_span_processor(BatchSpanProcessor(exporter))  # OTEL_BSP_* tune it
        self._provider = provider
        self.tracer = provider.get_tracer("task_scheduler", __version__)
        log_event(
            logger,
            "tracing.started",
            endpoint=settings.otlp_traces_url,
            service_name=resource.attributes.get("service.name"),
        )

    async def stop(self) -> None:
        """Export what is left (the processor's flush), then stop its thread."""
        provider, self._provider = self._provider, None
        self.tracer = trace.NoOpTracer()
        if provider is not None:
            await asyncio.to_thread(provider.shutdown)  # blocking HTTP: off the event loop

    async def send_webhook(
        self, client: WebhookClient, webhook: WebhookRequest, *, parent: str | None
    ) -> DeliveryResult:
        """One delivery attempt in a client span, a child of `parent` (the timer's traceparent;
        a new trace when it has none or a malformed one); the webhook names the span."""
        method, span_name = _method(webhook.request.method)
        attributes: dict[str, AttributeValue] = {
            "http.request.method": method,
            "task_scheduler.timer_id": webhook.timer_id,
            "task_scheduler.attempt": webhook.attempt,
            **url_attributes(webhook.url),
        }
        if webhook.attempt > 1:
            attributes["http.request.resend_count"] = webhook.attempt - 1
        if webhook.schedule_id is not None:
            attributes["task_scheduler.schedule_id"] = webhook.schedule_id
        span = self.tracer.start_span(
            span_name,
            context=remote_parent(parse_traceparent(parent)),
            kind=SpanKind.CLIENT,
            attributes=attributes,
        )
        try:
            result = await client.send(replace(webhook, traceparent=traceparent_of(span)))
            if result.status_code is not None:
                span.set_attribute("http.response.status_code", result.status_code)
            if not result.ok:
                code = result.status_code
                _failed(span, str(code) if code is not None else result.error_class or "_OTHER")
            return result
        except BaseException as exc:  # cancelled at shutdown: the span says so
            _failed(span, type(exc).__qualname__)
            raise
        finally:
            span.end()


class ServerSpans:
    """A server span for each HTTP request, named `METHOD /route/{template}`; a child of the
    request's `traceparent` when valid. Its own traceparent waits in the scope for the routes."""

    def __init__(self, app: ASGIApp, *, tracing: Tracing) -> None:
        self.app = app
        self._tracing = tracing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        parent = None
        for name, value in scope["headers"]:
            if name == b"traceparent":
                parent = parse_traceparent(value)
                break
        method, span_name = _method(scope["method"])
        span = self._tracing.tracer.start_span(
            span_name,
            context=remote_parent(parent),
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": method,
                "url.path": scope["path"],
                "url.scheme": scope.get("scheme", "http"),
            },
        )
        own = traceparent_of(span)
        if own is not None:
            scope[SCOPE_KEY] = own
        status = 0

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        except BaseException as exc:
            _failed(span, type(exc).__qualname__)
            raise
        finally:
            # The router left the matched route in the scope (a low-cardinality name).
            template = getattr(scope.get("route"), "path", None)
            if isinstance(template, str):
                span.update_name(f"{span_name} {template}")
                span.set_attribute("http.route", template)
            if status:
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    _failed(span, str(status))
            span.end()


def remote_parent(parent: TraceParent | None) -> Context | None:
    """The context whose span is `parent` (from another process); None: a new trace."""
    if parent is None:
        return None
    context = SpanContext(
        trace_id=parent.trace_id,
        span_id=parent.span_id,
        is_remote=True,
        trace_flags=TraceFlags(parent.flags),
    )
    return trace.set_span_in_context(NonRecordingSpan(context))


def traceparent_of(span: Span) -> str | None:
    """The `traceparent` header naming `span`; None for an invalid (no-op) span."""
    context = span.get_span_context()
    if not context.is_valid:
        return None
    return TraceParent(context.trace_id, context.span_id, int(context.trace_flags)).header()


def url_attributes(url: str) -> dict[str, AttributeValue]:
    """`url.full` without secrets (user info and query values redacted, no fragment), and the
    server's address and port; never raises (a URL it cannot read gives what it can)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return {}
    netloc = parts.netloc.rpartition("@")[2]
    if "@" in parts.netloc:
        netloc = f"{REDACTED}:{REDACTED}@{netloc}"
    query = "&".join(_redacted(part) for part in parts.query.split("&")) if parts.query else ""
    attributes: dict[str, AttributeValue] = {
        "url.full": urlunsplit((parts.scheme, netloc, parts.path, query, "")),
    }
    if parts.hostname:
        attributes["server.address"] = parts.hostname
    port = port or _DEFAULT_PORTS.get(parts.scheme)
    if port is not None:
        attributes["server.port"] = port
    return attributes


def _method(method: str) -> tuple[str, str]:
    """(http.request.method, span name) of a request method: few names, whatever clients send."""
    return (method, method) if method in _KNOWN_METHODS else ("_OTHER", "HTTP")


def _redacted(part: str) -> str:
    name, sep, _value = part.partition("=")
    return f"{name}={REDACTED}" if sep else REDACTED


def _failed(span: Span, error_type: str) -> None:
    span.set_attribute("error.type", error_type)
    span.set_status(StatusCode.ERROR)
