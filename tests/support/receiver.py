"""A real HTTP webhook receiver on 127.0.0.1 that records every delivery (a test double of the
outside world, never of our own code)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from aiohttp import web


@dataclass(frozen=True)
class Delivery:
    timer_id: int
    arrived_at: float  # time.time() on arrival
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    status: int  # what the receiver answered
    raw: bytes = b""


def headers_of(delivery: Delivery) -> dict[str, str]:
    """The delivery's request headers, names in lower case."""
    return {name.lower(): value for name, value in delivery.headers.items()}


async def serve_on_loopback(app: web.Application, host: str = "127.0.0.1") -> tuple[web.AppRunner, int]:
    """Serve `app` on `host` (a loopback address) on a free port: (its runner, to clean up; the port)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    server = site._server
    assert server is not None
    return runner, server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]


# Decides the answer for a request: (timer_id, how many times this timer was seen before) -> status
Responder = Callable[[int, int], int]


def always(status: int) -> Responder:
    return lambda _timer_id, _seen: status


@dataclass
class Receiver:
    respond: Responder = field(default_factory=lambda: always(200))
    delay_seconds: float = 0.0
    deliveries: list[Delivery] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    port: int = 0
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)
    host: str = "127.0.0.1"  # a loopback address (127.0.0.2 is another host to the service)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/hook"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner, self.port = await serve_on_loopback(app, self.host)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {"raw": raw.decode(errors="replace")}
        if not isinstance(body, dict):
            body = {"value": body}
        timer_id = int(request.headers.get("X-Timer-Id") or body.get("timer_id", -1))
        seen = sum(1 for d in self.deliveries if d.timer_id == timer_id)
        status = self.respond(timer_id, seen)
        self.deliveries.append(
            Delivery(
                timer_id=timer_id,
                arrived_at=time.time(),
                method=request.method,
                path=request.path,
                headers=dict(request.headers),
                body=body,
                status=status,
                raw=raw,
            )
        )
        self._arrived.set()
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        return web.Response(status=status, text="ok" if status < 400 else "nope")

    def counts(self) -> Counter[int]:
        """Deliveries answered 2xx, by timer id."""
        return Counter(d.timer_id for d in self.deliveries if 200 <= d.status < 300)

    async def wait_for(self, predicate: Callable[[], bool], within: float) -> bool:
        """Wait until `predicate()` holds (checked on every arrival), at most `within` seconds."""
        deadline = time.monotonic() + within
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), timeout=min(left, 0.5))
        return True


class _Server(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


ServerT = TypeVar("ServerT", bound=_Server)


@contextlib.asynccontextmanager
async def running(server: ServerT) -> AsyncIterator[ServerT]:
    """`server` (a receiver of any kind) listening for the block, stopped after."""
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
