"""Additions to the shared webhook receiver, kept apart so the shared one stays unchanged."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from tests.support.receiver import Receiver

# Extra response headers for a request: (timer_id, how many times this timer was seen before)
HeaderResponder = Callable[[int, int], dict[str, str]]


@dataclass
class HeaderReceiver(Receiver):
    """A `Receiver` that can also set response headers, e.g. a redirect's `Location`."""

    respond_headers: HeaderResponder = field(default_factory=lambda: lambda _timer_id, _seen: {})

    async def _handle(self, request: web.Request) -> web.Response:
        response = await super()._handle(request)
        timer_id = int(request.headers.get("X-Timer-Id", -1))
        # This request is recorded already: the ones before it are one fewer.
        seen = sum(1 for d in self.deliveries if d.timer_id == timer_id) - 1
        response.headers.update(self.respond_headers(timer_id, seen))
        return response
