"""Supervised background tasks: a crash is logged, counted and followed by a restart."""

from __future__ import annotations

import asyncio
import logging

import pytest

from task_scheduler import metrics
from task_scheduler.supervision import Supervisor


def restarts(task: str) -> float:
    return metrics.BACKGROUND_TASK_RESTARTS.labels(task)._value.get()


async def wait_until(predicate: object, within: float = 10.0) -> bool:
    assert callable(predicate)
    for _ in range(int(within / 0.01)):
        if predicate():
            return True
        await asyncio.sleep(0.01)
    return bool(predicate())


async def test_a_crashing_task_is_logged_counted_and_restarted(caplog: pytest.LogCaptureFixture) -> None:
    runs = 0
    steady = asyncio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs <= 2:
            raise RuntimeError(f"crash {runs}")
        steady.set()
        await asyncio.Event().wait()

    before = restarts("unit-flaky")
    supervisor = Supervisor(first_delay=0.01, max_delay=0.05)
    caplog.set_level(logging.WARNING, logger="task_scheduler.supervision")
    supervisor.start("unit-flaky", flaky)
    try:
        await asyncio.wait_for(steady.wait(), timeout=10)
        assert runs == 3
        assert restarts("unit-flaky") - before == 2
        crashes = [r for r in caplog.records if getattr(r, "action", "") == "background_task.crashed"]
        assert [getattr(r, "task", None) for r in crashes] == ["unit-flaky", "unit-flaky"]
        assert "crash 1" in getattr(crashes[0], "error", "")
        assert supervisor.problems() == []
    finally:
        await supervisor.stop()
    assert supervisor.task("unit-flaky") is None


async def test_a_task_cancelled_from_outside_is_restarted_and_reported_meanwhile() -> None:
    started = 0

    async def forever() -> None:
        nonlocal started
        started += 1
        await asyncio.Event().wait()

    before = restarts("unit-forever")
    supervisor = Supervisor(first_delay=0.2, max_delay=1.0)
    supervisor.start("unit-forever", forever)
    try:
        assert await wait_until(lambda: started == 1)
        first = supervisor.task("unit-forever")
        assert first is not None
        first.cancel()
        assert await wait_until(lambda: supervisor.task("unit-forever") is None or started == 2)
        if started == 1:  # waiting for its restart: /readyz hears of it
            assert supervisor.problems() == [
                "background task unit-forever is not running (restarting after a crash)"
            ]
        assert await wait_until(lambda: started == 2)
        assert restarts("unit-forever") - before == 1
        assert supervisor.problems() == []
    finally:
        await supervisor.stop("unit-forever")
    assert started == 2


async def test_stop_right_after_start_ends_the_task() -> None:
    """Regression: a runner cancelled before its first step left the task it watches running
    (the dashboard's rollup loop then outlived its app, on a dropped database)."""

    async def forever() -> None:
        await asyncio.Event().wait()

    supervisor = Supervisor()
    supervisor.start("unit-forever", forever)
    task = supervisor.task("unit-forever")
    assert task is not None
    await supervisor.stop("unit-forever")
    assert task.done()
