"""HTTP plumbing shared by every route: the error envelope handlers and ASGI middlewares."""

from __future__ import annotations

import itertools
import json
import logging
import os
import time
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from task_scheduler import metrics
from task_scheduler.errors import ServiceError, error_body
from task_scheduler.logs import bind_request_id, log_event, reset_request_id
from task_scheduler.timers.storable import printable

logger = logging.getLogger("task_scheduler.http")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
    503: "service_unavailable",
}

_UNAVAILABLE = (
    OperationalError,
    InterfaceError,
    OSError,
    asyncpg.PostgresConnectionError,
    TimeoutError,
)


def _field_of(loc: tuple[Any, ...]) -> str | None:
    """("body", "retry", "timeout_seconds") → "retry.timeout_seconds": the first part only says
    where the input came from (and a field may itself be called "body")."""
    parts = loc[1:] if loc and loc[0] in ("body", "path", "query", "header") else loc
    return printable(".".join(str(p) for p in parts)) or None


def _validation_message(err: dict[str, Any]) -> tuple[str | None, str]:
    loc = tuple(err.get("loc", ()))
    kind = err.get("type", "")
    if kind == "json_invalid":
        return (
            None,
            f"request body is not valid JSON: {err.get('ctx', {}).get('error', 'parse error')}",
        )
    if kind == "missing" and loc == ("body",):
        return None, "request body is required: a JSON object"
    field = _field_of(loc)
    if kind in ("recursion_depth_exceeded", "recursion_loop") and field:
        # The path down to where validation gave up (`body.list.0.list.0...`, 7 KB) says nothing
        # more than the field it starts from.
        field = field.split(".", 1)[0]
        return field, f"{field}: nested too deeply"
    if kind == "extra_forbidden":
        return field, f"{field}: unknown field"
    if kind == "model_attributes_type" or (kind.endswith("_type") and field is None):
        return field, "request body must be a JSON object"
    msg = printable(str(err.get("msg", "invalid value")))
    msg = msg.removeprefix("Value error, ")
    return field, f"{field}: {msg}" if field else msg


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    content_type = request.headers.get("content-type")
    errors = list(exc.errors())
    body_error = any(tuple(e.get("loc", ()))[:1] == ("body",) for e in errors)
    if body_error and content_type is not None and not _is_json(content_type):
        return JSONResponse(
            error_body(
                "unsupported_media_type",
                f"the request body must be JSON sent with Content-Type: application/json, "
                f"not {content_type[:100]!r}",
            ),
            status_code=415,
        )
    field, message = _validation_message(errors[0]) if errors else (None, "invalid request")
    body = error_body("validation_error", message, field)
    body["error"]["details"] = [
        {"field": f, "message": m} for f, m in (_validation_message(e) for e in errors)
    ]
    return JSONResponse(body, status_code=422)


async def _on_service_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return JSONResponse(
        error_body(exc.code, printable(exc.message), exc.field and printable(exc.field)),
        status_code=exc.status_code,
        headers=exc.headers or None,
    )


async def _on_http_exception(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "error")
    message = str(exc.detail)
    if exc.status_code == 400 and message == "There was an error parsing the body":
        # FastAPI's answer when json.loads fails with something other than a syntax error.
        message = _unreadable_body_message(exc.__cause__)
    return JSONResponse(error_body(code, message), status_code=exc.status_code, headers=exc.headers)


def _unreadable_body_message(cause: BaseException | None) -> str:
    if isinstance(cause, UnicodeDecodeError):
        return "request body is not valid UTF-8 JSON"
    if isinstance(cause, RecursionError):
        return "request body is nested too deeply"
    if isinstance(cause, ValueError) and "digits" in str(cause):
        return "a number in the request body has more than 4300 digits"
    return "request body could not be read as JSON"


async def _on_database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log_event(logger, "http.database_unavailable", logging.WARNING, path=request.url.path, error=repr(exc))
    return JSONResponse(
        error_body("database_unavailable", "the database is unreachable; try again shortly"),
        status_code=503,
        headers={"Retry-After": "1"},
    )


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, _UNAVAILABLE) or (isinstance(exc, DBAPIError) and exc.connection_invalidated):
        return await _on_database_unavailable(request, exc)
    logger.error(
        "unhandled error",
        exc_info=exc,
        extra={"action": "http.unhandled_error", "path": request.url.path},
    )
    return JSONResponse(error_body("internal_error", "internal server error"), status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(ServiceError, _on_service_error)
    app.add_exception_handler(HTTPException, _on_http_exception)
    for exc_type in _UNAVAILABLE:
        app.add_exception_handler(exc_type, _on_database_unavailable)
    app.add_exception_handler(Exception, _on_unexpected)


class BodyLimitMiddleware:
    """413 for request bodies over `max_bytes`, whether announced by Content-Length or streamed."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    too_large = int(value) > self.max_bytes
                except ValueError:
                    too_large = False
                if too_large:
                    await self._reject(send)
                    return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, self._message())
            return message

        await self.app(scope, limited_receive, send)

    def _message(self) -> str:
        return f"request body is larger than {self.max_bytes} bytes"

    async def _reject(self, send: Send) -> None:
        body = json.dumps(error_body("payload_too_large", self._message())).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class RequestLogMiddleware:
    """One `http.request` log line per request with its id, status and duration.

    Request ids: unique, not secret. A random per-app prefix and a counter, 32 hex digits like a
    UUID; uuid4() per request reads the kernel's random source each time (measured: see
    docs/performance.md, "Measurements behind code choices").
    Per app, not per module: forked server processes share the module's state.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._request_id_prefix = os.urandom(8).hex()
        self._request_counter = itertools.count()

    def _new_request_id(self) -> str:
        return f"{self._request_id_prefix}{next(self._request_counter):016x}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id = value.decode("latin-1")[:100]
        request_id = request_id or self._new_request_id()
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
            await send(message)

        token = bind_request_id(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            reset_request_id(token)
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            metrics.HTTP_REQUESTS.labels(scope["method"], template, str(status)).inc()
            metrics.HTTP_DURATION.labels(scope["method"], template).observe(elapsed)
            log_event(
                logger,
                "http.request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                duration_ms=round(elapsed * 1000, 2),
                request_id=request_id,
            )


_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
# The API serves JSON only; the interactive docs page needs its scripts, so it is left out.
_API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
_NO_STORE = (b"cache-control", b"no-store")
_DOCS_PATHS = ("/docs", "/redoc")
# The dashboard: its own files only; no inline script or style, so stored text can never run.
_UI_CSP = (
    b"content-security-policy",
    b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    b"form-action 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'",
)
_UI_PREFIX = "/ui"
# Same-origin referrers on the dashboard: with no-referrer a browser sends `Origin: null` on its
# own form posts, and the origin check could not tell them from another site's.
_UI_HEADERS = [
    *(h for h in _SECURITY_HEADERS if h[0] != b"referrer-policy"),
    (b"referrer-policy", b"same-origin"),
    _UI_CSP,
    _NO_STORE,
]


class SecurityHeadersMiddleware:
    """Headers that keep browsers from sniffing, framing or caching API answers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path == _UI_PREFIX or path.startswith(_UI_PREFIX + "/"):
            extra = _UI_HEADERS
        else:
            extra = list(_SECURITY_HEADERS)
            if not path.startswith(_DOCS_PATHS):
                extra += [_API_CSP, _NO_STORE]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)
