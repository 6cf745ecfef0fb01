"""The chaos suite's webhook receiver: its own process on 127.0.0.1, so that it never competes with
the controller's event loop. It records every request it sees (arrival wall time, timer id,
`webhook-id`, attempt, what it answered; for a schedule's run, its schedule id and occurrence) as
JSON lines, and misbehaves on command.

    python -m chaos.receiver --port 9001 --control-port 9002 --records records.jsonl

Control (on --control-port, always up): `GET /health`, `POST /mode {"mode": ..., "retry_after":
1, "sleep": 3}` (answers `{"began": t, "done": t}`, wall times around the switch) and
`POST /flush` (writes every record so far, answers `{"records": n}`).

Modes: `ok` (200), `unavailable` (503 with Retry-After), `timeout` (sleeps `sleep` seconds, then
503), `reset` (closes the connection with a TCP RST, no answer), `down` (stops listening on the
hook port and drops open connections; `ok` listens on the same port again).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import socket
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

MODES = ("ok", "unavailable", "timeout", "reset", "down")
# Outcomes written in the records; only OK counts as a delivery.
OK = 200
UNAVAILABLE = 503
_FLUSH_EVERY_SECONDS = 0.5


@dataclass
class _State:
    records_path: Path
    hook_port: int
    mode: str = "ok"
    retry_after: int = 1
    sleep_seconds: float = 3.0
    pending: list[str] = field(default_factory=list)
    written: int = 0
    hook_runner: web.AppRunner | None = None

    def record(self, request: web.Request, arrived: float, outcome: int | str) -> None:
        headers = request.headers
        self.pending.append(
            json.dumps(
                {
                    "t": arrived,
                    "id": int(headers.get("X-Timer-Id", "-1")),
                    "wid": headers.get("webhook-id", ""),
                    "a": int(headers.get("X-Timer-Attempt", "0")),
                    "ts": int(headers.get("webhook-timestamp", "0")),
                    "o": outcome,
                    # a schedule's run: its schedule and the occurrence it stands for
                    "sid": headers.get("X-Schedule-Id"),
                    "occ": headers.get("X-Schedule-Occurrence"),
                },
                separators=(",", ":"),
            )
        )

    def flush(self) -> int:
        if self.pending:
            lines, self.pending = self.pending, []
            with self.records_path.open("a") as out:
                out.write("\n".join(lines) + "\n")
            self.written += len(lines)
        return self.written


def _reset(request: web.Request) -> None:
    """Close the connection with a TCP RST: SO_LINGER 0, then abort."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def _hook_app(state: _State) -> web.Application:
    async def hook(request: web.Request) -> web.StreamResponse:
        arrived = time.time()
        await request.read()
        mode = state.mode
        if mode == "ok":
            state.record(request, arrived, OK)
            return web.Response(status=OK, text="ok")
        if mode == "unavailable":
            state.record(request, arrived, UNAVAILABLE)
            return web.Response(
                status=UNAVAILABLE, text="unavailable", headers={"Retry-After": str(state.retry_after)}
            )
        if mode == "timeout":
            state.record(request, arrived, "timeout")
            await asyncio.sleep(state.sleep_seconds)
            return web.Response(status=UNAVAILABLE, text="too late")
        # "reset", or "down" for a request on a connection opened before the switch
        state.record(request, arrived, mode)
        _reset(request)
        raise asyncio.CancelledError  # nothing more to say on a connection that is gone

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", hook)
    return app


async def _listen(state: _State) -> None:
    runner = web.AppRunner(_hook_app(state), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", state.hook_port, backlog=4096, reuse_address=True)
    await site.start()
    state.hook_runner = runner


async def _stop_listening(state: _State) -> None:
    runner, state.hook_runner = state.hook_runner, None
    if runner is not None:
        await runner.cleanup()


def _control_app(state: _State) -> web.Application:
    async def health(_request: web.Request) -> web.Response:
        return web.json_response({"mode": state.mode})

    async def set_mode(request: web.Request) -> web.Response:
        wish: dict[str, Any] = await request.json()
        mode = wish["mode"]
        if mode not in MODES:
            return web.json_response({"error": f"unknown mode {mode!r}"}, status=422)
        began = time.time()
        state.retry_after = int(wish.get("retry_after", state.retry_after))
        state.sleep_seconds = float(wish.get("sleep", state.sleep_seconds))
        state.mode = mode
        if mode == "down":
            await _stop_listening(state)
        elif state.hook_runner is None:
            await _listen(state)
        return web.json_response({"began": began, "done": time.time()})

    async def flush(_request: web.Request) -> web.Response:
        return web.json_response({"records": state.flush()})

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_post("/mode", set_mode)
    app.router.add_post("/flush", flush)
    return app


async def serve(*, port: int, control_port: int, records: Path) -> None:
    state = _State(records_path=records, hook_port=port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await _listen(state)
    control = web.AppRunner(_control_app(state), access_log=None, shutdown_timeout=1.0)
    await control.setup()
    await web.TCPSite(control, "127.0.0.1", control_port, reuse_address=True).start()
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=_FLUSH_EVERY_SECONDS)
            state.flush()
    finally:
        await control.cleanup()
        await _stop_listening(state)
        state.flush()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--control-port", type=int, required=True)
    parser.add_argument("--records", type=Path, required=True)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        asyncio.run(serve(port=args.port, control_port=args.control_port, records=args.records))
    else:
        uvloop.run(serve(port=args.port, control_port=args.control_port, records=args.records))


if __name__ == "__main__":
    main()
