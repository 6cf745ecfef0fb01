"""A fast webhook receiver in its own process: records (timer id, arrival time, webhook-id) of
every request and answers 200 (after --delay seconds). `GET /count` returns how many arrived;
SIGTERM writes every record as JSON lines to --out and exits.

    python -m bench.receiver --port 9100 --out /tmp/arrivals.jsonl [--delay 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from pathlib import Path

import uvloop
from aiohttp import web


async def serve(port: int, out: str, delay: float) -> None:
    records: list[tuple[int, float, str]] = []

    async def handle(request: web.BaseRequest) -> web.Response:
        arrived = time.time()
        if request.path == "/count":
            return web.Response(text=str(len(records)))
        timer_id = int(request.headers.get("X-Timer-Id", "-1"))
        records.append((timer_id, arrived, request.headers.get("webhook-id", "")))
        await request.read()
        if delay:
            await asyncio.sleep(delay)
        return web.Response(text="ok")

    server = web.Server(handle, access_log=None)
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(server, "127.0.0.1", port, backlog=4096)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    listener.close()
    text = "".join(json.dumps(record) + "\n" for record in records)
    await asyncio.to_thread(Path(out).write_text, text)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    uvloop.run(serve(args.port, args.out, args.delay))


if __name__ == "__main__":
    main()
