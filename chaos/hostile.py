"""Hostile data in the middle of a normal run: a receiver that answers badly, and creates that
carry boundary values.

`python -m chaos.hostile --port P` answers every request with the next behaviour of `REPLIES`
(NUL and invalid UTF-8 bodies, gzip with and without its header, an invalid status line, a
100 KiB header, resets before and after the headers, a slow drip past the request timeout, a
1xx with nothing after it, 599, a half-closed connection). The `hostile` injector sends a share
of the timers there, and a stream of poison creates (a year-1 `fire_at`, NaN, lone surrogates,
unsendable URLs, extreme offsets) to the API; `check` then holds the service to it: never a
5xx, every hostile timer finished in a state the state machine allows, with a readable error,
and readable through the API.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import logging
import socket
import struct
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from chaos.cluster import stop_process
from chaos.faults import Context, Fault, sleep_until
from tests.support.processes import free_port

log = logging.getLogger("chaos")

HOSTILE_LABEL = "hostile"
_GZIPPED = gzip.compress(b"not for a text column" * 20)
_LONG = b"x" * 100_000


def _reply(status: str, headers: list[bytes], body: bytes) -> bytes:
    head = [f"HTTP/1.1 {status}".encode(), *headers, b"Content-Length: %d" % len(body), b"", b""]
    return b"\r\n".join(head) + body


# Each: (name, what to write, then: "close" | "reset" | "drip" | "half-close" | "hold").
REPLIES: list[tuple[str, bytes, str]] = [
    ("nul body 200", _reply("200 OK", [], b"abc\x00def"), "close"),
    ("nul body 500", _reply("500 Internal Server Error", [], b"\x00" * 50), "close"),
    ("gzip with header", _reply("200 OK", [b"Content-Encoding: gzip"], _GZIPPED), "close"),
    ("gzip without header", _reply("503 Service Unavailable", [], _GZIPPED), "close"),
    ("invalid utf-8 body", _reply("400 Bad Request", [], b"\xff\xfe\xc3\x28 bad"), "close"),
    ("100 KiB header", _reply("200 OK", [b"X-Big: " + _LONG], b"ok"), "close"),
    ("invalid header bytes", _reply("200 OK", [b"X-Bad: \x00\x01\xff"], b"ok"), "close"),
    ("garbage status line", b"HTTZ/9 abc\r\n\r\n", "close"),
    ("reset before status", b"", "reset"),
    ("reset after headers", b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial", "reset"),
    ("slow drip", b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", "drip"),
    ("1xx then nothing", b"HTTP/1.1 102 Processing\r\n\r\n", "hold"),
    ("status 599", _reply("599 Whatever", [b"Retry-After: \x00soon"], b"\x00"), "close"),
    ("half-closed", b"", "half-close"),
    ("redirect to nul", _reply("302 Found", [b"Location: http://x/\x01"], b""), "close"),
]


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, turn: list[int]) -> None:
    try:
        with contextlib.suppress(asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await asyncio.wait_for(reader.readexactly(length), timeout=10)
        _, data, then = REPLIES[turn[0] % len(REPLIES)]
        turn[0] += 1
        writer.write(data)
        if then == "drip":
            for _ in range(30):  # 3 s, past the chaos request timeout of 2 s
                writer.write(b"\x00")
                await writer.drain()
                await asyncio.sleep(0.1)
        elif then == "hold":
            await asyncio.sleep(5)
        elif then == "half-close":
            writer.write_eof()
            await asyncio.sleep(3)
        if then == "reset":
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


async def serve(port: int) -> None:
    turn = [0]
    server = await asyncio.start_server(lambda r, w: _answer(r, w, turn), "127.0.0.1", port, limit=1 << 20)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


class HostileProcess:
    """`python -m chaos.hostile` on a free loopback port, stopped by its PID."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.log_path = workdir / "hostile.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "chaos.hostile", "--port", str(self.port)],
                stdout=subprocess.PIPE,
                stderr=log,
            )
        assert self.process.stdout is not None
        self.process.stdout.readline()  # "ready"

    def stop(self) -> None:
        stop_process(self.process)


# Creates at the edges of what the schema admits, as raw JSON text (NaN and lone surrogates
# cannot be written by json.dumps in strict form).
POISON_BODIES: list[str] = [
    '{"fire_at": "0001-01-01T00:00:00Z", "url": "%(url)s"}',
    '{"fire_at": "9999-12-31T23:59:59-23:59", "url": "%(url)s"}',
    '{"fire_at": "1969-12-31T23:59:59+00:00", "url": "%(url)s"}',
    '{"seconds": 1, "url": "%(url)s", "deliver_before": "0001-01-01T00:00:00+23:59"}',
    '{"seconds": 1, "url": "%(url)s", "body": {"x": NaN}}',
    '{"seconds": 1, "url": "%(url)s", "body": [Infinity, -Infinity]}',
    '{"seconds": 1, "url": "%(url)s", "body": "\\ud800"}',
    '{"seconds": 1, "url": "%(url)s", "labels": {"k": "\\udfff"}}',
    '{"seconds": 1, "url": "%(url)s", "headers": {"X-A": "\\ud83d"}}',
    '{"seconds": 1, "url": "%(url)s", "body": "nul \\u0000 inside"}',
    '{"seconds": 1, "url": "http://127..0.1/hook"}',
    '{"seconds": 1, "url": "http://exa\\u00admple.com/hook"}',
    '{"seconds": 1, "url": "http://exa\\u200bmple.com/hook"}',
    '{"seconds": 1, "url": "http://a\\\\b@example.com/hook"}',
    '{"seconds": 1, "url": "%(url)s", "body": 1e999}',
    '{"seconds": 100000000000000000000000, "url": "%(url)s"}',
    '{"seconds": 1, "url": "%(url)s", "body": {"deep": [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]}}',
    '{"timers": [{"seconds": 1, "url": "%(url)s"}, {"fire_at": "0001-01-01T00:00:00Z", "url": "%(url)s"}]}',
]


@dataclass
class HostileLoad:
    """What the injector did, for the checks after the run."""

    timer_ids: list[int] = field(default_factory=list)
    poison_statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)


def hostile_traffic(load: HostileLoad, hostile_url: str, *, timers: int, poison_rounds: int) -> Any:
    """Over the spread: `timers` timers to the hostile receiver (labelled, so the ordinary
    analysis leaves them out), and `poison_rounds` rounds of every poison create."""

    async def run(ctx: Context) -> None:
        await sleep_until(ctx.t0)
        began = time.time()
        pause = ctx.spread / max(1, timers + poison_rounds * len(POISON_BODIES))
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            for n in range(max(timers, poison_rounds * len(POISON_BODIES))):
                urls = ctx.cluster.ready_urls()
                if not urls:
                    await asyncio.sleep(0.2)
                    continue
                base = urls[n % len(urls)]
                if n < timers:
                    body = {"seconds": 1, "url": hostile_url, "labels": {HOSTILE_LABEL: "1"}}
                    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                        async with session.post(f"{base}/timer", json=body) as response:
                            if response.status == 201:
                                load.timer_ids.append((await response.json())["timer_id"])
                if n < poison_rounds * len(POISON_BODIES):
                    raw = POISON_BODIES[n % len(POISON_BODIES)] % {"url": ctx.receiver.url}
                    path = "/timers/batch" if raw.startswith('{"timers"') else "/timer"
                    headers = {"Content-Type": "application/json"}
                    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                        async with session.post(
                            f"{base}{path}", data=raw.encode(), headers=headers
                        ) as response:
                            load.poison_statuses[response.status] += 1
                            text = await response.text()
                            if response.status >= 500:
                                load.server_errors.append(f"{raw[:120]} -> {response.status} {text[:200]}")
                await asyncio.sleep(pause)
        detail = f"{len(load.timer_ids)} hostile timers, poison creates answered {dict(load.poison_statuses)}"
        ctx.faults.append(Fault("hostile data", began, time.time(), detail))
        log.info("hostile: %s", detail)

    return run


async def check(load: HostileLoad, base_url: str, database_rows: dict[int, str]) -> list[str]:
    """The hostile side's invariants; each violation as a sentence."""
    problems = list(load.server_errors)
    for tid in load.timer_ids:
        status = database_rows.get(tid)
        if status not in ("delivered", "failed"):
            problems.append(f"hostile timer {tid} ended {status}")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        for tid in load.timer_ids[:200]:
            for path in (f"/timer/{tid}", f"/timer/{tid}/attempts"):
                async with session.get(f"{base_url}{path}") as response:
                    if response.status != 200:
                        problems.append(f"GET {path} answered {response.status}")
                        continue
                    json.loads(await response.text())  # readable JSON, whatever the receiver sent
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description="a receiver that answers every request badly")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()
