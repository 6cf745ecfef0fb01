"""`task-scheduler serve | migrate` (also `python -m task_scheduler`)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from pydantic import ValidationError

from task_scheduler.config import Settings
from task_scheduler.logs import configure_logging


def _settings(args: argparse.Namespace) -> Settings:
    """Flags win over the environment; both are validated by Settings."""
    flags = {name: getattr(args, name, None) for name in ("host", "port")}
    settings = Settings()
    given = {name: value for name, value in flags.items() if value is not None}
    return Settings.model_validate({**settings.model_dump(), **given}) if given else settings


def serve(settings: Settings) -> None:
    import uvicorn

    from task_scheduler.app import create_app

    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds) + 5,
    )
    # uvicorn re-raises the stop signal after its graceful shutdown, so the process would end
    # "killed by SIGTERM"; a no-op handler underneath makes a graceful stop exit 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _after_graceful_shutdown)
    uvicorn.Server(config).run()


def _after_graceful_shutdown(_signum: int, _frame: FrameType | None) -> None:
    """Runs only once uvicorn has finished its own graceful shutdown."""


async def _migrate(settings: Settings) -> None:
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
    finally:
        await engine.dispose()
        if embedded is not None:
            embedded.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="task-scheduler", description="Durable, precise webhook timers on PostgreSQL."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="run the HTTP API and the dispatcher")
    serve_cmd.add_argument("--host", help="bind address (default: HOST or 127.0.0.1)")
    serve_cmd.add_argument("--port", type=int, help="port (default: PORT or 8080)")
    commands.add_parser("migrate", help="apply database migrations and exit")
    args = parser.parse_args(argv)
    try:
        settings = _settings(args)
    except ValidationError as exc:
        print(f"task-scheduler: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    if args.command == "serve":
        serve(settings)
    else:
        asyncio.run(_migrate(settings))
    return 0
