"""A lean webhook receiver in its own process (asyncio Protocols, httptools): records (timer id,
arrival time, webhook-id) of every request and answers 200 "ok" (after --delay seconds, without
holding up other connections). `GET /count` returns how many arrived; SIGTERM writes every record
as JSON lines to --out and exits.

    python -m bench.receiver --port 9100 --out /tmp/arrivals.jsonl [--delay 10] [--host 127.0.0.2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from pathlib import Path
from typing import cast

import httptools
import uvloop

Record = tuple[int, float, str]  # timer id (X-Timer-Id, -1 without), time.time() on arrival, webhook-id


def _response(body: bytes, keep_alive: bool) -> bytes:
    close = b"" if keep_alive else b"Connection: close\r\n"
    return b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%s\r\n%s" % (
        len(body),
        close,
        body,
    )


class _Connection(asyncio.Protocol):
    """One client connection, requests answered in order; also the httptools parser's callback
    target."""

    transport: asyncio.Transport

    def __init__(self, records: list[Record], delay: float) -> None:
        self.records = records
        self.delay = delay
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.timer_id = b"-1"
        self.webhook_id = b""
        self.counting = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is one, unregistered

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_message_begin(self) -> None:
        self.url = b""
        self.timer_id = b"-1"
        self.webhook_id = b""

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"x-timer-id":
            self.timer_id = value
        elif name == b"webhook-id":
            self.webhook_id = value

    def on_headers_complete(self) -> None:
        self.counting = self.parser.get_method() == b"GET" and self.url.partition(b"?")[0] == b"/count"
        if not self.counting:
            self.records.append((int(self.timer_id), time.time(), self.webhook_id.decode()))

    def on_message_complete(self) -> None:
        keep_alive = self.parser.should_keep_alive()
        if self.counting:
            self.answer(str(len(self.records)).encode(), keep_alive)
        elif self.delay:
            asyncio.get_running_loop().call_later(self.delay, self.answer, b"ok", keep_alive)
        else:
            self.answer(b"ok", keep_alive)

    def answer(self, body: bytes, keep_alive: bool) -> None:
        if self.transport.is_closing():  # the client gave up while we waited
            return
        self.transport.write(_response(body, keep_alive))
        if not keep_alive:
            self.transport.close()


async def listen(
    port: int, delay: float = 0.0, host: str = "127.0.0.1"
) -> tuple[asyncio.Server, list[Record]]:
    """Listen on `host`:`port` (0: any free port); the records grow as requests arrive."""
    records: list[Record] = []
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Connection(records, delay), host, port, backlog=4096)
    return server, records


async def serve(port: int, out: str, delay: float, host: str) -> None:
    server, records = await listen(port, delay, host)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    server.close()
    text = "".join(json.dumps(record) + "\n" for record in records)
    await asyncio.to_thread(Path(out).write_text, text)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--host", default="127.0.0.1", help="a loopback address (127.0.0.0/8)")
    args = parser.parse_args()
    uvloop.run(serve(args.port, args.out, args.delay, args.host))


if __name__ == "__main__":
    main()
