"""Fold the dashboard's rollups now, from a test (the app's own loop may hold the lock)."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy.ext.asyncio import AsyncEngine

from task_scheduler.ui.rollups import Fold, fold
from tests.support.polling import WAIT


async def fold_now(engine: AsyncEngine) -> list[Fold]:
    """One turn of the fold made by this caller, begun after it was called: another folder
    holding the lock (the app's loop) makes `fold` skip, so try again, at most `WAIT` seconds."""
    deadline = time.monotonic() + WAIT
    for _ in range(10_000):
        folds = await fold(engine)
        if folds:
            return folds
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.02)
    raise AssertionError("another instance held the rollup lock all along")
