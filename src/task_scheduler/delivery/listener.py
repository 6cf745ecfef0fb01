"""The LISTEN connection: a NOTIFY about a timer due soon wakes the claim loop at once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import asyncpg

from task_scheduler.delivery.backoff import RetryBackoff
from task_scheduler.logs import log_event
from task_scheduler.timers import repository

logger = logging.getLogger(__name__)

LISTEN_APPLICATION_NAME = "task-scheduler-listen"
# Without traffic, the connection is checked this often (a dead one is only noticed when used).
_PING_SECONDS = 5.0


class Listener:
    """Keeps one LISTEN connection open, reconnecting with backoff; polling covers the gaps."""

    def __init__(self, *, dsn: str, wake: Callable[[], None], instance: str) -> None:
        self._dsn = dsn
        self._wake = wake
        self._instance = instance

    async def run(self) -> None:
        backoff = RetryBackoff(first=0.5, cap=10.0)
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(
                    self._dsn, timeout=10, server_settings={"application_name": LISTEN_APPLICATION_NAME}
                )
                closed = asyncio.Event()
                conn.add_termination_listener(lambda _c, ev=closed: ev.set())
                await conn.add_listener(repository.NOTIFY_CHANNEL, self._on_notify)
                log_event(logger, "dispatcher.listening", logging.DEBUG, instance=self._instance)
                self._wake()  # catch up on whatever was created while not listening
                backoff.succeeded()
                while not closed.is_set():
                    try:
                        await asyncio.wait_for(closed.wait(), timeout=_PING_SECONDS)
                    except TimeoutError:
                        await conn.execute("SELECT 1", timeout=_PING_SECONDS)
            except Exception as exc:  # noqa: BLE001 - reconnect; polling covers the gap
                delay = backoff.failed()
                log_event(
                    logger,
                    "dispatcher.listen_failed",
                    logging.WARNING,
                    instance=self._instance,
                    error=repr(exc),
                    retry_in=delay,
                )
                await asyncio.sleep(delay)
            finally:
                if conn is not None and not conn.is_closed():
                    conn.terminate()

    def _on_notify(self, *_args: object) -> None:
        self._wake()
