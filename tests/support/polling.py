"""Wait for a timer's state through the public API (the receiver sees a delivery a moment before
the service records it)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx


async def wait_for_status(
    client: httpx.AsyncClient, timer_id: int, status: str, within: float = 10.0
) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        view: dict[str, Any] = (await client.get(f"/timer/{timer_id}")).json()
        if view.get("status") == status or time.monotonic() > deadline:
            return view
        await asyncio.sleep(0.05)
