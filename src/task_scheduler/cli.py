"""`task-scheduler serve | migrate | keys | timers | schedules` (also `python -m task_scheduler`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from types import FrameType
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from task_scheduler.config import Settings
from task_scheduler.logs import configure_logging


def _settings(args: argparse.Namespace) -> Settings:
    """Flags win over the environment; both are validated by Settings."""
    flags = {name: getattr(args, name, None) for name in ("host", "port")}
    settings = Settings()
    given = {name: value for name, value in flags.items() if value is not None}
    return Settings.model_validate({**settings.model_dump(), **given}) if given else settings


def serve(settings: Settings) -> int:
    import uvicorn

    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "loop": "uvloop",
        "http": "httptools",
        "ws": "none",  # no WebSocket routes: nothing to load
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": int(settings.shutdown_grace_seconds) + 5,
    }
    workers = settings.worker_count
    if workers > 1:
        return _serve_workers(settings, options, workers)
    from task_scheduler.app import create_app

    # uvicorn re-raises the stop signal after its graceful shutdown, so the process would end
    # "killed by SIGTERM"; a no-op handler underneath makes a graceful stop exit 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _after_graceful_shutdown)
    uvicorn.Server(uvicorn.Config(create_app(settings), **options)).run()
    return 0


def _serve_workers(settings: Settings, options: dict[str, Any], workers: int) -> int:
    """Several processes on one port, each with its own dispatcher (there is no leader anyway),
    forked from this one (see prefork). The embedded database, if any, is started once here and
    shared; metrics are summed across the processes through a shared PROMETHEUS_MULTIPROC_DIR."""
    import tempfile

    from task_scheduler.db import EmbeddedPostgres

    embedded = None
    if settings.database_url is None:
        embedded = EmbeddedPostgres(settings.data_dir)
        settings = settings.model_copy(update={"database_url": embedded.start()})
    with tempfile.TemporaryDirectory(prefix="task-scheduler-metrics-") as metrics_dir:
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", metrics_dir)
        from task_scheduler.prefork import serve_forked  # imports metrics: after the line above

        try:
            return serve_forked(settings, options, workers=workers)
        finally:
            if embedded is not None:
                embedded.stop()


def _after_graceful_shutdown(_signum: int, _frame: FrameType | None) -> None:
    """Runs only once uvicorn has finished its own graceful shutdown."""


@contextlib.asynccontextmanager
async def _database(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """A migrated database: DATABASE_URL, or the embedded one in SCHEDULER_DATA_DIR."""
    from task_scheduler.db import EmbeddedPostgres, create_engine, migrate, wait_for_database

    embedded = None
    url = settings.database_url
    if url is None:
        embedded = EmbeddedPostgres(settings.data_dir)
        url = await asyncio.to_thread(embedded.start)
    engine = create_engine(url, pool_size=1)
    try:
        await wait_for_database(engine, within_seconds=60)
        await migrate(engine)
        yield engine
    finally:
        await engine.dispose()
        if embedded is not None:
            embedded.stop()


async def _migrate(settings: Settings) -> int:
    async with _database(settings):
        return 0


async def _keys(settings: Settings, args: argparse.Namespace) -> int:
    from task_scheduler.auth.models import Role
    from task_scheduler.auth.service import AuthService
    from task_scheduler.errors import NotFoundError

    async with _database(settings) as engine:
        auth = AuthService(engine=engine, settings=settings)
        if args.keys_command == "create":
            raw_key, row = await auth.create_key(name=args.name, tenant=args.tenant, role=Role(args.role))
            print(f"created key {row.key_id} (tenant {row.tenant}, role {row.role}); it is shown only now:")
            print(raw_key)
        elif args.keys_command == "list":
            print(f"{'KEY_ID':<14}{'TENANT':<20}{'ROLE':<8}{'CREATED':<22}{'REVOKED':<22}NAME")
            for key in await auth.list_keys():
                revoked = key.revoked_at.strftime("%Y-%m-%d %H:%M:%S") if key.revoked_at else "-"
                created = key.created_at.strftime("%Y-%m-%d %H:%M:%S")
                print(f"{key.key_id:<14}{key.tenant:<20}{key.role:<8}{created:<22}{revoked:<22}{key.name}")
        else:
            try:
                row = await auth.revoke_key(args.key_id)
            except NotFoundError as exc:
                print(f"task-scheduler: {exc.message}", file=sys.stderr)
                return 1
            print(f"revoked key {row.key_id}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="task-scheduler", description="Durable, precise webhook timers on PostgreSQL."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="run the HTTP API and the dispatcher")
    serve_cmd.add_argument("--host", help="bind address (default: HOST or 127.0.0.1)")
    serve_cmd.add_argument("--port", type=int, help="port (default: PORT or 8080)")
    commands.add_parser("migrate", help="apply database migrations and exit")
    keys_cmd = commands.add_parser("keys", help="manage API keys in the database")
    keys = keys_cmd.add_subparsers(dest="keys_command", required=True)
    create = keys.add_parser("create", help="create a key and print it (once)")
    create.add_argument("--role", choices=["admin", "writer", "reader"], required=True)
    create.add_argument("--tenant", default="default", type=_tenant, help="tenant (default: default)")
    create.add_argument("--name", default="", help="what the key is for")
    keys.add_parser("list", help="list keys (never the keys themselves)")
    revoke = keys.add_parser("revoke", help="revoke a key by its key_id")
    revoke.add_argument("key_id")
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] != ["serve"]:
        # The client commands import the client library and httpx: the service never needs them,
        # and they cost its start-up about 8 % of the import CPU and 7 MiB (docs/performance.md).
        from task_scheduler.client import (
            add_destinations_commands,
            add_schedules_commands,
            add_timers_commands,
        )

        add_timers_commands(commands)
        add_schedules_commands(commands)
        add_destinations_commands(commands)
    args = parser.parse_args(argv)
    if args.command in ("timers", "schedules", "destinations"):  # a client of a running service
        from task_scheduler.client import run_client_command

        return run_client_command(args)
    try:
        settings = _settings(args)
    except ValidationError as exc:
        print(f"task-scheduler: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format, settings.instance_id)
    if args.command == "serve":
        return serve(settings)
    from task_scheduler.db import DatabaseUnusable

    try:
        if args.command == "keys":
            return asyncio.run(_keys(settings, args))
        return asyncio.run(_migrate(settings))
    except DatabaseUnusable as exc:
        print(f"task-scheduler: {exc}", file=sys.stderr)
        return 2


def _tenant(value: str) -> str:
    from task_scheduler.auth.schemas import TENANT_PATTERN

    if not re.match(TENANT_PATTERN, value):
        raise argparse.ArgumentTypeError("1-63 of A-Z a-z 0-9 _ . - starting alphanumeric")
    return value
