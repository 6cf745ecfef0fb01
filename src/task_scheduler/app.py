"""The application factory: everything is built here and in the lifespan, nothing at import."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from sqlalchemy.ext.asyncio import AsyncEngine

from task_scheduler import __version__, health
from task_scheduler.auth.dependencies import document_security
from task_scheduler.auth.router import router as auth_router
from task_scheduler.auth.service import AuthService
from task_scheduler.bulk.router import router as bulk_router
from task_scheduler.bulk.runner import BulkRunner
from task_scheduler.bulk.service import BulkService
from task_scheduler.config import Settings
from task_scheduler.db import (
    EmbeddedPostgres,
    asyncpg_dsn,
    create_engine,
    migrate,
    wait_for_database,
)
from task_scheduler.delivery.client import WebhookClient
from task_scheduler.delivery.dispatcher import Dispatcher
from task_scheduler.delivery.signers import TenantSigners
from task_scheduler.delivery.signing import WebhookSigner
from task_scheduler.delivery.ssrf import AddressPolicy
from task_scheduler.destinations.router import router as destinations_router
from task_scheduler.destinations.service import DestinationService
from task_scheduler.events.router import router as events_router
from task_scheduler.events.service import EventService
from task_scheduler.schedules.router import router as schedules_router
from task_scheduler.schedules.service import ScheduleCreator, ScheduleService
from task_scheduler.supervision import Supervisor
from task_scheduler.timers.inserter import BatchInserter
from task_scheduler.timers.retention import Housekeeper
from task_scheduler.timers.router import router as timers_router
from task_scheduler.timers.service import TimerService
from task_scheduler.ui.rollups import RollupFolder
from task_scheduler.ui.router import STATIC_DIR
from task_scheduler.ui.router import router as ui_router
from task_scheduler.ui.service import Dashboard
from task_scheduler.web import (
    BodyLimitMiddleware,
    RequestLogMiddleware,
    SecurityHeadersMiddleware,
    install_error_handlers,
)

if TYPE_CHECKING:  # imported only when tracing is on
    from task_scheduler.tracing.otel import Tracing

DESCRIPTION = """
Schedule a webhook: `POST /timer` with a duration and a URL; the service POSTs to the URL once
when the time is up, durably (PostgreSQL), precisely (milliseconds) and exactly once across any
number of instances. `GET /timer/{id}` tells the time left and the delivery status.
"""


def create_app(settings: Settings | None = None, *, run_dispatcher: bool = True) -> FastAPI:
    """Build the service; `run_dispatcher=False` serves the API without firing timers."""
    settings = settings or Settings()
    tracing = _tracing(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            if tracing is not None:
                tracing.start()
                stack.push_async_callback(tracing.stop)  # last: after the deliveries ended
            url = await _database_url(stack, settings)
            app.state.engine = engine = await _open_database(stack, settings, url)
            app.state.timer_service, app.state.auth_service = await _start_services(stack, settings, engine)
            creator = ScheduleCreator(engine=engine, notify_within=settings.lookahead_seconds)
            await creator.start()
            stack.push_async_callback(creator.stop)
            app.state.schedule_service = ScheduleService(
                engine=engine,
                settings=settings,
                pending_cap=app.state.timer_service.pending_cap,
                creator=creator,
            )
            app.state.event_service = EventService(engine=engine, settings=settings)
            app.state.destination_service = DestinationService(engine=engine, settings=settings)
            app.state.bulk_service = BulkService(engine=engine, settings=settings)
            app.state.dashboard = Dashboard(engine=engine, timers=app.state.timer_service)
            app.state.dispatcher = None
            app.state.supervisor = supervisor = Supervisor()
            stack.push_async_callback(supervisor.stop)  # whatever the components left running
            folder = RollupFolder(
                engine=engine, supervisor=supervisor, interval=settings.rollup_interval_seconds
            )
            await folder.start()
            stack.push_async_callback(folder.stop)
            app.state.rollups = folder
            if run_dispatcher:
                app.state.dispatcher = await _start_delivery(
                    stack, settings, url, engine, supervisor, tracing
                )
            # Everything built so far lives as long as the process: out of the cyclic GC's reach
            # (full collections stall requests; measurements in docs/performance.md).
            gc.collect()
            gc.freeze()
            yield
            gc.unfreeze()

    return _build_api(settings, lifespan, tracing)


def _tracing(settings: Settings) -> Tracing | None:
    """OpenTelemetry when the OTEL_* settings turn it on; None (nothing imported) otherwise."""
    if not settings.tracing_enabled:
        return None
    from task_scheduler.tracing.otel import Tracing

    return Tracing(settings)


async def _database_url(stack: AsyncExitStack, settings: Settings) -> str:
    """DATABASE_URL, or an embedded PostgreSQL started for this process."""
    if settings.database_url is not None:
        return settings.database_url
    embedded = EmbeddedPostgres(settings.data_dir)
    url = await asyncio.to_thread(embedded.start)
    stack.callback(embedded.stop)
    return url


async def _open_database(stack: AsyncExitStack, settings: Settings, url: str) -> AsyncEngine:
    """The API's engine, once the database answers and the schema is current."""
    engine = create_engine(url, pool_size=settings.db_pool_size)
    stack.push_async_callback(engine.dispose)
    await wait_for_database(engine, within_seconds=60)
    await migrate(engine)
    return engine


async def _start_services(
    stack: AsyncExitStack, settings: Settings, engine: AsyncEngine
) -> tuple[TimerService, AuthService]:
    inserter = BatchInserter(engine=engine, notify_within=settings.lookahead_seconds)
    await inserter.start()
    stack.push_async_callback(inserter.stop)
    timers = TimerService(engine=engine, settings=settings, inserter=inserter)
    stack.push_async_callback(timers.close)
    auth = AuthService(engine=engine, settings=settings)
    bootstrap_key = settings.bootstrap_admin_key()
    if bootstrap_key is not None:
        await auth.bootstrap(bootstrap_key)
    return timers, auth


async def _start_delivery(
    stack: AsyncExitStack,
    settings: Settings,
    url: str,
    engine: AsyncEngine,
    supervisor: Supervisor,
    tracing: Tracing | None,
) -> Dispatcher:
    """Retention, the bulk-job runner, the webhook client and the dispatcher, stopped in the
    reverse order."""
    housekeeper = Housekeeper(engine=engine, settings=settings, supervisor=supervisor)
    await housekeeper.start()
    stack.push_async_callback(housekeeper.stop)
    bulk_runner = BulkRunner(engine=engine, settings=settings, supervisor=supervisor)
    await bulk_runner.start()
    stack.push_async_callback(bulk_runner.stop)
    client = WebhookClient(
        connect_timeout=settings.connect_timeout_seconds,
        total_timeout=settings.request_timeout_seconds,
        max_connections=settings.max_concurrent_deliveries,
        signer=WebhookSigner(settings.webhook_secret_list),
        policy=AddressPolicy.parse_allowed(settings.webhook_allowed_networks),
        proxy=settings.webhook_proxy,
    )
    await client.start()
    stack.push_async_callback(client.close)
    signers = TenantSigners(
        engine=engine,
        service_secrets=settings.webhook_secret_list,
        refresh_seconds=settings.api_key_cache_seconds,
    )
    await signers.refresh()
    # Its own pool: a flood of API requests cannot starve claims and outcome writes.
    dispatch_engine = create_engine(url, pool_size=settings.db_pool_size)
    stack.push_async_callback(dispatch_engine.dispose)
    dispatcher = Dispatcher(
        engine=dispatch_engine,
        client=client,
        settings=settings,
        listen_dsn=asyncpg_dsn(url),
        signers=signers,
        supervisor=supervisor,
        tracing=tracing,
    )
    await dispatcher.start()
    stack.push_async_callback(dispatcher.stop)
    return dispatcher


def _build_api(
    settings: Settings,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
    tracing: Tracing | None,
) -> FastAPI:
    """The FastAPI application: routes, the error envelope, the OpenAPI security and middleware."""
    app = FastAPI(
        title="Task Scheduler Service",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # FastAPI's own OpenTelemetry (global providers, FASTAPI_OTEL_AUTO_CONFIGURE) stays off: the
        # spans are ours alone (tracing/otel.py), made only when the OTEL_* settings ask.
        telemetry={"tracing": False, "metrics": False, "logs": False, "auto_configure": False},
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(timers_router)
    app.include_router(schedules_router)
    app.include_router(bulk_router)
    app.include_router(auth_router)
    app.include_router(health.router)
    app.include_router(events_router)
    app.include_router(destinations_router)
    app.include_router(ui_router)
    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static")
    document_security(
        app, timers_router, bulk_router, schedules_router, auth_router, events_router, destinations_router
    )
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_request_body_bytes)
    if settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "Idempotency-Key", "If-Match"],
            expose_headers=["ETag", "Location", "Retry-After", "X-Request-ID"],
        )
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(RequestLogMiddleware)
    if tracing is not None:  # outermost: the span covers every other middleware
        from task_scheduler.tracing.otel import ServerSpans

        app.add_middleware(ServerSpans, tracing=tracing)
    app.state.tracing = tracing
    return app
