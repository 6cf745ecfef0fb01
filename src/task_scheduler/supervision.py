"""Supervision of the background tasks (claim, writer, heartbeat, listener, signers, retention, rollups,
gauges, bulk): a task that crashes, returns or is cancelled by anything but `stop` is logged, counted
(`scheduler_background_task_restarts_total{task=...}`) and started again after a backoff."""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Callable, Coroutine
from typing import Any

from task_scheduler import metrics
from task_scheduler.delivery.backoff import RetryBackoff
from task_scheduler.logs import log_event

logger = logging.getLogger(__name__)

TaskFactory = Callable[[], Coroutine[Any, Any, None]]


class Supervisor:
    def __init__(self, *, first_delay: float = 0.5, max_delay: float = 30.0) -> None:
        self._first_delay = first_delay
        self._max_delay = max_delay
        self._runners: dict[str, asyncio.Task[None]] = {}
        self._current: dict[str, asyncio.Task[None] | None] = {}

    def start(self, name: str, factory: TaskFactory) -> None:
        """Run `factory()` as the task `name`, and again whenever it ends."""
        if name in self._runners:
            raise ValueError(f"a background task named {name!r} is already supervised")
        first = self._current[name] = asyncio.create_task(factory(), name=name)
        self._runners[name] = asyncio.create_task(
            self._supervise(name, factory, first), name=f"supervise-{name}"
        )

    async def stop(self, *names: str) -> None:
        """Cancel the named tasks (all when none are named) and wait for them to end."""
        for name in names or list(self._runners):
            runner = self._runners.pop(name, None)
            if runner is not None:
                runner.cancel()
                await asyncio.gather(runner, return_exceptions=True)
            # A runner cancelled before its first step never cancels the task it watches.
            current = self._current.pop(name, None)
            if current is not None and not current.done():
                current.cancel()
                await asyncio.gather(current, return_exceptions=True)

    def task(self, name: str) -> asyncio.Task[None] | None:
        """The task now running as `name` (None while it waits to be restarted)."""
        return self._current.get(name)

    def problems(self) -> list[str]:
        """One line per supervised task that is not running now."""
        return [
            f"background task {name} is not running (restarting after a crash)"
            for name, task in self._current.items()
            if task is None or task.done()
        ]

    async def _supervise(self, name: str, factory: TaskFactory, task: asyncio.Task[None]) -> None:
        loop = asyncio.get_running_loop()
        backoff = RetryBackoff(first=self._first_delay, cap=self._max_delay)
        while True:
            started = loop.time()
            try:
                # wait(), not await: a cancelled task must not look like this runner's own cancel.
                await asyncio.wait([task])
            except asyncio.CancelledError:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                raise
            self._current[name] = None
            if loop.time() - started > self._max_delay:
                backoff.succeeded()  # it ran for long: this is a new crash, not a crash loop
            delay = backoff.failed()
            exc = None if task.cancelled() else task.exception()
            error = "cancelled" if task.cancelled() else repr(exc) if exc else "returned"
            metrics.BACKGROUND_TASK_RESTARTS.labels(name).inc()
            log_event(
                logger,
                "background_task.crashed",
                logging.ERROR,
                task=name,
                error=error,
                restart_in=delay,
                traceback="".join(traceback.format_exception(exc)) if exc else None,
            )
            await asyncio.sleep(delay)
            task = self._current[name] = asyncio.create_task(factory(), name=name)
            log_event(logger, "background_task.restarted", logging.WARNING, task=name)
