"""The dashboard's routes (/ui), left out of the OpenAPI document: parse the form, check the
session, CSRF token and role, call the same services as the API, render a template."""

from __future__ import annotations

import json
import re
import shlex
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import jinja2
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from task_scheduler.auth.models import Role
from task_scheduler.auth.schemas import KeyCreate
from task_scheduler.auth.service import AuthService, Principal
from task_scheduler.errors import PreconditionFailed, ServiceError, Unauthorized
from task_scheduler.schedules.models import ScheduleStatus
from task_scheduler.schedules.router import schedules_of
from task_scheduler.timers.models import TimerStatus
from task_scheduler.timers.router import MAX_TIMER_ID, parse_labels
from task_scheduler.timers.schemas import TimerUpdate, TimerView
from task_scheduler.timers.service import TimerService, etag_of
from task_scheduler.ui import session
from task_scheduler.ui.service import (
    ERROR_CLASSES,
    SEARCH_WINDOW,
    Dashboard,
    TimerScope,
    deliveries_chart,
    destinations,
    duration_chart,
    hourly_chart,
    lateness_chart,
    lateness_day_chart,
)

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
PAGE_SIZE = 50
_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True, undefined=jinja2.StrictUndefined
)
_ENV.filters["num"] = lambda n: f"{n:,}"
_ENV.filters["when"] = lambda t: f"{t.astimezone(UTC):%Y-%m-%d %H:%M:%S}"
_ENV.filters["local"] = lambda t: f"{t:%Y-%m-%d %H:%M:%S %Z}"
templates = Jinja2Templates(env=_ENV)


class _SignInRequired(Exception):
    """No valid session: a page redirects to the sign-in form, a POST is refused."""


class _Refused(Exception):
    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code, self.message = status_code, message


@dataclass(frozen=True, slots=True)
class Viewer:
    principal: Principal
    session: session.SessionCookie
    mac_key: bytes
    new_cookie: bool  # a loopback browser's first visit: its CSRF nonce goes out with the page

    @property
    def csrf(self) -> str:
        return session.csrf_token(self.session, self.mac_key)

    @property
    def can_write(self) -> bool:
        return self.principal.allows(Role.WRITER)

    @property
    def is_admin(self) -> bool:
        return self.principal.allows(Role.ADMIN)


def _server_secret(request: Request) -> bytes:
    secret = request.app.state.settings.ui_session_secret
    return b"" if secret is None else secret.get_secret_value().encode()


def _auth(request: Request) -> AuthService:
    service: AuthService = request.app.state.auth_service
    return service


def _timers(request: Request) -> TimerService:
    service: TimerService = request.app.state.timer_service
    return service


def _dashboard(request: Request) -> Dashboard:
    dashboard: Dashboard = request.app.state.dashboard
    return dashboard


async def _viewer(request: Request) -> Viewer:
    """The signed-in caller; a revoked key or a bad signature ends the session here."""
    secret = _server_secret(request)
    raw = request.cookies.get(session.COOKIE_NAME)
    decoded = session.decode_unverified(raw) if raw else None
    if decoded is not None and decoded[0].key_id is not None:
        found = await _auth(request).session_key(decoded[0].key_id)
        if found is not None:
            principal, key_hash = found
            key = session.mac_key(secret, key_hash)
            if session.verify(decoded[1], decoded[2], key):
                return Viewer(principal, decoded[0], key, new_cookie=False)
        raise _SignInRequired
    client = request.client.host if request.client is not None else None
    try:  # protected mode: a loopback browser is the local admin, as for the API
        principal = await _auth(request).authenticate(None, client)
    except Unauthorized:
        raise _SignInRequired from None
    key = session.mac_key(secret, b"")
    if decoded is not None and session.verify(decoded[1], decoded[2], key):
        return Viewer(principal, decoded[0], key, new_cookie=False)
    return Viewer(principal, session.new_session(None), key, new_cookie=True)


def _set_cookie(request: Request, response: Response, cookie: session.SessionCookie, key: bytes) -> None:
    response.set_cookie(
        session.COOKIE_NAME,
        session.encode(cookie, key),
        max_age=max(0, cookie.expires_at - int(time.time())),
        path="/ui",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )


async def _form(request: Request, viewer: Viewer, role: Role) -> dict[str, list[str]]:
    """The POSTed form, once its CSRF token and the caller's role are checked."""
    form = await request.form()
    fields: dict[str, list[str]] = {}
    for name, value in form.multi_items():
        if isinstance(value, str):
            fields.setdefault(name, []).append(value)
    if not session.csrf_ok(viewer.session, viewer.mac_key, _one(fields, "csrf")):
        raise _Refused(
            403, "the form's CSRF token is missing or does not belong to this session; reload the page"
        )
    if not viewer.principal.allows(role):
        raise _Refused(
            403, f"this API key's role ({viewer.principal.role}) does not allow this; it needs {role}"
        )
    return fields


def _one(fields: dict[str, list[str]], name: str) -> str | None:
    values = fields.get(name)
    return values[0] if values else None


def _page(
    request: Request, viewer: Viewer | None, name: str, status_code: int = 200, **context: Any
) -> Response:
    response = templates.TemplateResponse(
        request,
        name,
        {"viewer": viewer, "page": name.removesuffix(".html"), **context},
        status_code=status_code,
    )
    if viewer is not None and viewer.new_cookie:
        _set_cookie(request, response, viewer.session, viewer.mac_key)
    return response


def _same_origin(request: Request) -> bool:
    """A post that names another site as its origin is refused before anything else (the
    SameSite=Strict cookie already stays off it; this covers the sign-in form too). `null`
    (privacy settings, sandboxed frames) proves nothing either way: the CSRF token decides."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")


class _UiRoute(APIRoute):
    """Every dashboard answer is HTML: refusals become pages, not the API's JSON envelope."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            if request.method == "POST" and not _same_origin(request):
                return _error(request, 403, "cross-origin form posts are refused")
            try:
                return await handler(request)
            except _SignInRequired:
                if request.method == "GET" and not request.url.path.endswith(".json"):
                    response: Response = RedirectResponse("/ui/login", status_code=303)
                else:
                    response = _error(request, 401, "sign in first")
                response.delete_cookie(session.COOKIE_NAME, path="/ui")
                return response
            except _Refused as exc:
                return _error(request, exc.status_code, exc.message)
            except ServiceError as exc:
                return _error(request, exc.status_code, exc.message)

        return handle


def _error(request: Request, status_code: int, message: str) -> Response:
    return _page(request, None, "error.html", status_code, code=status_code, message=message)


router = APIRouter(prefix="/ui", route_class=_UiRoute, include_in_schema=False)


# -- signing in and out ---------------------------------------------------------------------


@router.get("/login")
async def login_form(request: Request) -> Response:
    return _page(request, None, "login.html", message=None)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await request.form()
    raw_key = form.get("api_key")
    if not isinstance(raw_key, str) or not raw_key.strip():
        return _page(request, None, "login.html", 401, message="enter an API key")
    auth = _auth(request)
    try:
        principal = await auth.authenticate(raw_key.strip(), None)
    except Unauthorized as exc:
        return _page(request, None, "login.html", 401, message=exc.message)
    assert principal.key_id is not None
    found = await auth.session_key(principal.key_id)
    if found is None:  # revoked between the two lookups
        return _page(request, None, "login.html", 401, message="invalid or revoked API key")
    cookie = session.new_session(principal.key_id)
    response = RedirectResponse("/ui", status_code=303)
    _set_cookie(request, response, cookie, session.mac_key(_server_secret(request), found[1]))
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    viewer = await _viewer(request)
    await _form(request, viewer, Role.READER)
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(session.COOKIE_NAME, path="/ui")
    return response


# -- overview and live data -----------------------------------------------------------------


@router.get("")
async def overview(request: Request) -> Response:
    viewer = await _viewer(request)
    dashboard = _dashboard(request)
    tenant = viewer.principal.visible_tenant
    counts = await dashboard.counts(tenant=tenant)
    attempts = await dashboard.attempts(tenant=tenant)
    next_due = await dashboard.next_due(tenant=tenant)
    failing = [d for d in destinations(attempts) if d.failing_now or d.success_rate < 1][:10]
    now = datetime.now(UTC)
    return _page(
        request,
        viewer,
        "overview.html",
        counts=counts,
        charts=[
            deliveries_chart(attempts, now),
            hourly_chart(attempts, now),
            lateness_chart(attempts),
            lateness_day_chart(attempts),
            duration_chart(attempts),
        ],
        next_due=next_due,
        failing=failing,
    )


@router.get("/live.json")
async def live(request: Request) -> Response:
    viewer = await _viewer(request)
    return JSONResponse(await _dashboard(request).live(tenant=viewer.principal.visible_tenant))


@router.get("/destinations")
async def destinations_page(request: Request) -> Response:
    viewer = await _viewer(request)
    attempts = await _dashboard(request).attempts(tenant=viewer.principal.visible_tenant)
    return _page(request, viewer, "destinations.html", destinations=destinations(attempts))


# -- timers ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TimerFilter:
    status: TimerStatus | None
    labels: dict[str, str]
    due_after: datetime | None
    due_before: datetime | None
    host: str | None
    error_class: str | None
    text: dict[str, str]  # as typed, to refill the form and build links

    def scope(self, tenant: str | None, status: TimerStatus | None) -> TimerScope:
        return TimerScope(
            tenant, status, self.labels, self.due_after, self.due_before, self.host, self.error_class
        )

    @property
    def query(self) -> str:
        # status stays even when empty: "any" differs from a first visit's default
        return urlencode({k: v for k, v in self.text.items() if v or k == "status"})


def _parse_time(value: str, name: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _Refused(422, f"{name}: not a date and time (YYYY-MM-DDTHH:MM, UTC)") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def _labels(typed: str) -> dict[str, str]:
    """The label filter as typed: `key:value` pairs separated by commas."""
    try:
        return parse_labels([part.strip() for part in typed.split(",") if part.strip()])
    except ServiceError as exc:
        raise _Refused(422, exc.message) from None


def _filter(values: Callable[[str], str | None], default_status: str = "") -> TimerFilter:
    text = {
        name: (values(name) or "").strip()[:500]
        for name in ("status", "label", "host", "error_class", "due_after", "due_before")
    }
    if values("status") is None:
        text["status"] = default_status
    status = None
    if text["status"]:
        try:
            status = TimerStatus(text["status"])
        except ValueError:
            raise _Refused(422, f"status: not one of {', '.join(TimerStatus)}") from None
    return TimerFilter(
        status=status,
        labels=_labels(text["label"]),
        due_after=_parse_time(text["due_after"], "due after"),
        due_before=_parse_time(text["due_before"], "due before"),
        host=_host(text["host"]),
        error_class=_error_class(text["error_class"]),
        text=text,
    )


_HOST = re.compile(r"[^\s/?#@\\\x00-\x1f\x7f]{1,255}")  # no control character (a NUL answered 500)
_ERROR_CLASS = re.compile(r"[a-z0-9_]{1,100}")


def _host(typed: str) -> str | None:
    """A destination as the destinations page shows it: host, or host:port (any port without)."""
    if not typed:
        return None
    host = typed.lower()
    if "://" in host:  # a pasted URL: its authority
        host = urlsplit(host).netloc.rpartition("@")[2]
    if not _HOST.fullmatch(host):
        raise _Refused(422, "host: a host name or address, optionally with :port (no scheme or path)")
    return host


def _error_class(typed: str) -> str | None:
    if not typed:
        return None
    if not _ERROR_CLASS.fullmatch(typed):
        raise _Refused(422, f"error class: a name such as {', '.join(ERROR_CLASSES[:4])}")
    return typed


@router.get("/timers")
async def timers_page(request: Request) -> Response:
    viewer = await _viewer(request)
    lookup = (request.query_params.get("id") or "").strip()
    if lookup:
        timer_id = _positive_id(lookup)
        if timer_id is None:
            raise _Refused(422, "id: a timer id is a positive whole number")
        return RedirectResponse(f"/ui/timers/{timer_id}", status_code=303)
    # A first visit of every tenant's timers lists the pending ones: their partial index has them in
    # due order, and nothing else does across tenants. A tenant's own are in order in its index.
    chosen = _filter(request.query_params.get, "pending" if viewer.principal.visible_tenant is None else "")
    cursor = request.query_params.get("cursor") or None
    scope = chosen.scope(viewer.principal.visible_tenant, chosen.status)
    page = await _dashboard(request).page(scope, cursor[:200] if cursor else None, PAGE_SIZE)
    next_link = f"?{chosen.query}&{urlencode({'cursor': page.next_cursor})}" if page.next_cursor else None
    return _page(
        request,
        viewer,
        "timers.html",
        timers=page.timers,
        chosen=chosen,
        statuses=list(TimerStatus),
        error_classes=ERROR_CLASSES,
        scanned=page.scanned,
        window=SEARCH_WINDOW,
        next_link=next_link,
        notice=request.query_params.get("notice"),
    )


def _bulk_status(action: str, chosen: TimerFilter) -> TimerStatus:
    if action == "cancel":
        return TimerStatus.PENDING
    if chosen.status in (TimerStatus.FAILED, TimerStatus.EXPIRED):
        return chosen.status
    return TimerStatus.FAILED


@router.post("/timers/bulk")
async def bulk(request: Request) -> Response:
    viewer = await _viewer(request)
    fields = await _form(request, viewer, Role.WRITER)
    action = _one(fields, "action")
    if action not in ("cancel", "retry"):
        raise _Refused(422, "action: cancel or retry")
    timers, dashboard = _timers(request), _dashboard(request)
    tenant = viewer.principal.visible_tenant

    async def act(timer_id: int) -> TimerView:
        if action == "cancel":
            return await timers.cancel(timer_id, tenant=tenant)
        return await timers.redrive(timer_id, tenant=tenant)

    chosen = _filter(lambda name: _one(fields, name))
    if _one(fields, "scope") == "all":
        status = _bulk_status(action, chosen)
        scope = chosen.scope(tenant, status)
        if _one(fields, "confirmed") != "yes":
            count, cut_short = await dashboard.matching(scope)
            return _page(
                request,
                viewer,
                "confirm.html",
                action=action,
                status=status,
                count=count,
                cut_short=cut_short,
                chosen=chosen,
            )
        done, skipped = await dashboard.apply_matching(act, scope)
    else:
        ids = [i for i in map(_positive_id, fields.get("timer_id", [])[:1000]) if i is not None]
        if not ids:
            raise _Refused(422, "select at least one timer")
        done, skipped = await dashboard.apply(act, ids)
    verb = "cancelled" if action == "cancel" else "sent again"
    notice = f"{done} timers {verb}" + (f", {skipped} skipped (status changed or gone)" if skipped else "")
    return RedirectResponse(f"/ui/timers?{urlencode({'notice': notice})}", status_code=303)


def curl_command(view: TimerView, base_url: str) -> str:
    """A command that creates the same timer through the API (redacted headers stay redacted)."""
    body: dict[str, Any] = {"url": view.url, "fire_at": view.due_at.isoformat(), "method": view.method}
    for name in ("headers", "labels"):
        if getattr(view, name):
            body[name] = getattr(view, name)
    if view.body is not None:
        body["body"] = view.body
    body["retry"] = view.retry.model_dump()
    return (
        f"curl -X POST {shlex.quote(base_url.rstrip('/') + '/timer')} \\\n"
        f"  -H 'Content-Type: application/json' -H \"Authorization: Bearer $SCHEDULER_API_KEY\" \\\n"
        f"  -d {shlex.quote(json.dumps(body, indent=2))}"
    )


async def _detail(
    request: Request, viewer: Viewer, timer_id: int, status_code: int = 200, message: str | None = None
) -> Response:
    tenant = viewer.principal.visible_tenant
    view = await _timers(request).get(timer_id, tenant=tenant)
    attempts = await _timers(request).attempts(timer_id, tenant=tenant)
    return _page(
        request,
        viewer,
        "timer.html",
        status_code,
        timer=view,
        attempts=attempts.attempts,
        etag=etag_of(view.updated_at),
        curl=curl_command(view, str(request.base_url)),
        message=message,
        labels_text="\n".join(f"{k}={v}" for k, v in view.labels.items()),
    )


def _positive_id(text: str) -> int | None:
    """An id typed or posted: ASCII digits only (int() refuses some that isdigit() allows)."""
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_TIMER_ID:
        return None
    return int(text)


def _timer_id(raw: str) -> int:
    timer_id = _positive_id(raw)
    if timer_id is None:
        raise _Refused(404, "no such timer")
    return timer_id


@router.get("/timers/{timer_id}")
async def timer_page(request: Request, timer_id: str) -> Response:
    viewer = await _viewer(request)
    return await _detail(request, viewer, _timer_id(timer_id))


@router.post("/timers/{timer_id}/cancel")
async def cancel(request: Request, timer_id: str) -> Response:
    viewer = await _viewer(request)
    await _form(request, viewer, Role.WRITER)
    await _timers(request).cancel(_timer_id(timer_id), tenant=viewer.principal.visible_tenant)
    return RedirectResponse(f"/ui/timers/{_timer_id(timer_id)}", status_code=303)


@router.post("/timers/{timer_id}/retry")
async def retry(request: Request, timer_id: str) -> Response:
    viewer = await _viewer(request)
    await _form(request, viewer, Role.WRITER)
    await _timers(request).redrive(_timer_id(timer_id), tenant=viewer.principal.visible_tenant)
    return RedirectResponse(f"/ui/timers/{_timer_id(timer_id)}", status_code=303)


def _edit_of(fields: dict[str, list[str]]) -> TimerUpdate:
    """A PATCH body from the edit form: a field left as it was is not sent."""
    changes: dict[str, Any] = {}
    url = (_one(fields, "url") or "").strip()
    if url and url != _one(fields, "url_was"):
        changes["url"] = url
    fire_at = (_one(fields, "fire_at") or "").strip()
    if fire_at and fire_at != _one(fields, "fire_at_was"):
        changes["fire_at"] = fire_at
    labels_text = _one(fields, "labels") or ""
    if labels_text.replace("\r\n", "\n").strip() != (_one(fields, "labels_was") or "").strip():
        pairs = [line.partition("=") for line in labels_text.splitlines() if line.strip()]
        if any(not sep or not key.strip() for key, sep, _ in pairs):
            raise _Refused(422, "labels: one key=value per line")
        changes["labels"] = {key.strip(): value.strip() for key, _, value in pairs}
    return TimerUpdate.model_validate(changes)


@router.post("/timers/{timer_id}/edit")
async def edit(request: Request, timer_id: str) -> Response:
    viewer = await _viewer(request)
    fields = await _form(request, viewer, Role.WRITER)
    timer_id_ = _timer_id(timer_id)
    try:
        changes = _edit_of(fields)
        await _timers(request).update(
            timer_id_, changes, tenant=viewer.principal.visible_tenant, if_match=_one(fields, "etag") or None
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return await _detail(request, viewer, timer_id_, 422, f"{where}: {first.get('msg', 'invalid')}")
    except PreconditionFailed as exc:
        return await _detail(
            request,
            viewer,
            timer_id_,
            412,
            f"Conflict: the timer changed since this page was loaded ({exc.message}); "
            "the form now shows its current values",
        )
    except (_Refused, ServiceError) as exc:
        if isinstance(exc, ServiceError) and exc.status_code == 404:
            raise
        code = exc.status_code
        return await _detail(request, viewer, timer_id_, code, exc.message)
    return RedirectResponse(f"/ui/timers/{timer_id_}", status_code=303)


# -- schedules ------------------------------------------------------------------------------

RUNS_SHOWN = 20


def _schedule_id(raw: str) -> int:
    schedule_id = _positive_id(raw)
    if schedule_id is None:
        raise _Refused(404, "no such schedule")
    return schedule_id


@router.get("/schedules")
async def schedules_page(request: Request) -> Response:
    viewer = await _viewer(request)
    tenant = viewer.principal.visible_tenant
    text = {name: (request.query_params.get(name) or "").strip()[:500] for name in ("status", "label")}
    status = None
    if text["status"]:
        try:
            status = ScheduleStatus(text["status"])
        except ValueError:
            raise _Refused(422, f"status: not one of {', '.join(ScheduleStatus)}") from None
    cursor = request.query_params.get("cursor") or None
    service = schedules_of(request)
    page = await service.list(
        tenant=tenant,
        labels=_labels(text["label"]),
        status=status,
        cursor=cursor[:200] if cursor else None,
        limit=PAGE_SIZE,
    )
    outcomes = await service.latest_outcomes([s.schedule_id for s in page.schedules], tenant=tenant)
    query = urlencode({k: v for k, v in text.items() if v})
    next_link = f"?{query}&{urlencode({'cursor': page.next_cursor})}" if page.next_cursor else None
    return _page(
        request,
        viewer,
        "schedules.html",
        schedules=page.schedules,
        outcomes=outcomes,
        chosen=text,
        statuses=list(ScheduleStatus),
        next_link=next_link,
    )


@router.get("/schedules/{schedule_id}")
async def schedule_page(request: Request, schedule_id: str) -> Response:
    viewer = await _viewer(request)
    tenant = viewer.principal.visible_tenant
    service = schedules_of(request)
    view = await service.get(_schedule_id(schedule_id), tenant=tenant)
    cursor = request.query_params.get("cursor") or None
    runs = await service.runs(
        view.schedule_id, tenant=tenant, cursor=cursor[:200] if cursor else None, limit=RUNS_SHOWN
    )
    return _page(
        request,
        viewer,
        "schedule.html",
        schedule=view,
        runs=runs.runs,
        older_link=f"?{urlencode({'cursor': runs.next_cursor})}" if runs.next_cursor else None,
        notice=request.query_params.get("notice"),
    )


@router.post("/schedules/{schedule_id}/pause")
async def pause_schedule(request: Request, schedule_id: str) -> Response:
    viewer = await _viewer(request)
    await _form(request, viewer, Role.WRITER)
    view = await schedules_of(request).pause(
        _schedule_id(schedule_id), tenant=viewer.principal.visible_tenant
    )
    return RedirectResponse(f"/ui/schedules/{view.schedule_id}", status_code=303)


@router.post("/schedules/{schedule_id}/resume")
async def resume_schedule(request: Request, schedule_id: str) -> Response:
    viewer = await _viewer(request)
    await _form(request, viewer, Role.WRITER)
    view = await schedules_of(request).resume(
        _schedule_id(schedule_id), tenant=viewer.principal.visible_tenant
    )
    return RedirectResponse(f"/ui/schedules/{view.schedule_id}", status_code=303)


@router.post("/schedules/{schedule_id}/trigger")
async def trigger_schedule(request: Request, schedule_id: str) -> Response:
    viewer = await _viewer(request)
    await _form(request, viewer, Role.WRITER)
    schedule_id_ = _schedule_id(schedule_id)
    run = await schedules_of(request).trigger(schedule_id_, tenant=viewer.principal.visible_tenant)
    notice = urlencode({"notice": f"run {run.timer_id} created, due now"})
    return RedirectResponse(f"/ui/schedules/{schedule_id_}?{notice}", status_code=303)


# -- API keys (admin) -----------------------------------------------------------------------


async def _keys_page(request: Request, viewer: Viewer, status_code: int = 200, **context: Any) -> Response:
    keys = await _auth(request).list_keys()
    context.setdefault("created", None)
    context.setdefault("message", None)
    return _page(request, viewer, "keys.html", status_code, keys=keys, roles=list(Role), **context)


@router.get("/keys")
async def keys_page(request: Request) -> Response:
    viewer = await _viewer(request)
    if not viewer.is_admin:
        raise _Refused(403, "API keys are managed by admins")
    return await _keys_page(request, viewer)


@router.post("/keys")
async def create_key(request: Request) -> Response:
    viewer = await _viewer(request)
    fields = await _form(request, viewer, Role.ADMIN)
    try:
        new = KeyCreate.model_validate(
            {
                "name": _one(fields, "name") or "",
                "tenant": _one(fields, "tenant") or "",
                "role": _one(fields, "role"),
            }
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return await _keys_page(request, viewer, 422, message=f"{where}: {first.get('msg', 'invalid')}")
    raw_key, row = await _auth(request).create_key(name=new.name, tenant=new.tenant, role=new.role)
    return await _keys_page(request, viewer, 201, created=(raw_key, row))


@router.post("/keys/{key_id}/revoke")
async def revoke_key(request: Request, key_id: str) -> Response:
    viewer = await _viewer(request)
    await _form(request, viewer, Role.ADMIN)
    if not (key_id.isascii() and key_id.isalnum() and len(key_id) <= 12):
        raise _Refused(404, "no such key")
    await _auth(request).revoke_key(key_id)
    return RedirectResponse("/ui/keys", status_code=303)
