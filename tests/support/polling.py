"""Wait for a timer's state through the public API (the receiver sees a delivery a moment before
the service records it)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

# Generous: the machine is noisy; these bound waiting, they do not measure speed.
WAIT = 20.0


async def wait_for_status(
    client: httpx.AsyncClient, timer_id: int, status: str | tuple[str, ...], within: float = 10.0
) -> dict[str, Any]:
    """The timer's view once its status is `status` (or one of them), or after `within` seconds."""
    wanted = (status,) if isinstance(status, str) else status
    deadline = time.monotonic() + within
    while True:
        view: dict[str, Any] = (await client.get(f"/timer/{timer_id}")).json()
        if view.get("status") in wanted or time.monotonic() > deadline:
            return view
        await asyncio.sleep(0.05)


async def wait_for_job(
    client: httpx.AsyncClient,
    job_id: int,
    state: str | tuple[str, ...] = ("done", "failed", "cancelled"),
    within: float = WAIT,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A bulk job's view once its state is `state` (or one of them), or after `within` seconds."""
    wanted = (state,) if isinstance(state, str) else state
    deadline = time.monotonic() + within
    while True:
        view: dict[str, Any] = (await client.get(f"/timers/bulk/{job_id}", headers=headers)).json()
        if view.get("state") in wanted or time.monotonic() > deadline:
            return view
        await asyncio.sleep(0.05)
