"""The whole service (dispatcher included) and a receiver on an event loop in a thread, so that
hypothesis, which drives plain functions, can send requests to it and wait for deliveries."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

import httpx

from task_scheduler.app import create_app
from task_scheduler.config import Settings
from tests.support.app import running_app
from tests.support.receiver import Receiver

T = TypeVar("T")


class AppThread:
    def __init__(self, settings: Settings, *, headers: Mapping[str, str] | None = None) -> None:
        self._settings = settings
        self._headers = dict(headers or {})
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._stop: asyncio.Event | None = None
        self._stopped: concurrent.futures.Future[None] | None = None
        self.client: httpx.AsyncClient | None = None
        self.receiver = Receiver()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        assert self.client is not None
        return self.run(self.client.request(method, path, **kwargs))

    def start(self) -> None:
        self._thread.start()
        ready: asyncio.Future[None] = self._loop.create_future()

        async def serve() -> None:
            self._stop = asyncio.Event()
            await self.receiver.start()
            try:
                async with running_app(create_app(self._settings)) as client:
                    client.headers.update(self._headers)
                    self.client = client
                    ready.set_result(None)
                    await self._stop.wait()
            finally:
                await self.receiver.stop()

        self._stopped = asyncio.run_coroutine_threadsafe(serve(), self._loop)

        async def wait_ready() -> None:
            await ready

        self.run(wait_ready())

    def wait_delivered(self, timer_id: int, within: float = 15.0) -> bool:
        """Whether the receiver got `timer_id` within `within` seconds."""
        deadline = time.monotonic() + within
        while not any(d.timer_id == timer_id for d in self.receiver.deliveries):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._stopped is not None:
            self._stopped.result(60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
