"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy.ext.asyncio import AsyncEngine

from task_scheduler import metrics
from task_scheduler.config import Settings
from task_scheduler.db import schema_is_current
from task_scheduler.delivery.dispatcher import Dispatcher
from task_scheduler.errors import ErrorResponse, error_body
from task_scheduler.supervision import Supervisor
from task_scheduler.ui.rollups import RollupFolder

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
async def metrics_endpoint() -> PlainTextResponse:
    return PlainTextResponse(metrics.render(), media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/readyz",
    summary="Database reachable, schema current, every background task running and making progress",
    description='200 `{"status": "ready"}`, with `degraded` (a list of lines) when something that '
    "delivery does not depend on is not current (the dashboard's rollup fold failing on every turn "
    "for longer than SCHEDULER_READINESS_STALL_SECONDS): ready, but look.",
    responses={503: {"model": ErrorResponse, "description": "Not ready; the error says why."}},
)
async def readyz(request: Request) -> JSONResponse:
    engine: AsyncEngine = request.app.state.engine
    dispatcher: Dispatcher | None = request.app.state.dispatcher
    supervisor: Supervisor | None = getattr(request.app.state, "supervisor", None)
    try:
        current = await schema_is_current(engine)
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        return _not_ready(f"database unreachable: {type(exc).__name__}")
    if not current:
        return _not_ready("database schema is not at the latest migration")
    problems = [
        *(supervisor.problems() if supervisor is not None else ()),
        *(dispatcher.problems() if dispatcher is not None else ()),
    ]
    if problems:
        return _not_ready("; ".join(problems))
    folder: RollupFolder | None = getattr(request.app.state, "rollups", None)
    settings: Settings = request.app.state.settings
    degraded = folder.degraded(settings.readiness_stall_seconds) if folder is not None else []
    if degraded:
        return JSONResponse({"status": "ready", "degraded": degraded})
    return JSONResponse({"status": "ready"})


def _not_ready(reason: str) -> JSONResponse:
    return JSONResponse(error_body("not_ready", reason), status_code=503)
