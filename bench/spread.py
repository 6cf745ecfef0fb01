"""How the kernel spreads one client's keep-alive connections over the processes of one instance.

    SCHEDULER_WORKERS=2 python -m bench.spread [--trials 20]

Each trial opens 16 (then 64) connections at once from one client, sends one request on each with
its own X-Request-ID, and reads from the service's request log which process answered it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import uuid
from collections import Counter
from pathlib import Path

import uvloop

from bench.harness import fresh_database, postgres_server, start_service


async def _one_trial(port: int, connections: int) -> list[str]:
    opened = [await asyncio.open_connection("127.0.0.1", port) for _ in range(connections)]
    request_ids = []
    for _, writer in opened:
        request_id = uuid.uuid4().hex
        request_ids.append(request_id)
        writer.write(f"GET /healthz HTTP/1.1\r\nHost: bench\r\nX-Request-ID: {request_id}\r\n\r\n".encode())
    for reader, _ in opened:
        await reader.readuntil(b"\r\n\r\n")
    for _, writer in opened:
        writer.close()
    return request_ids


def _pids(log: Path) -> dict[str, str]:
    found = {}
    for line in log.read_text(errors="replace").splitlines():
        if '"http.request"' in line:
            event = json.loads(line)
            found[event.get("request_id")] = event["instance"].rsplit("-", 1)[1]
    return found


async def run(trials: int) -> None:
    workers = int(os.environ.get("SCHEDULER_WORKERS", "2"))
    with postgres_server() as server_url, tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        proc = start_service(await fresh_database(server_url), Path(tmp), "spread")
        try:
            await proc.wait_ready()
            await asyncio.sleep(3)  # every process listening
            for connections in (16, 64):
                splits = []
                for _ in range(trials):
                    request_ids = await _one_trial(proc.port, connections)
                    await asyncio.sleep(0.3)  # log lines are written just after the replies
                    pid_of = _pids(proc.log_path)
                    counts = Counter(pid_of[r] for r in request_ids)
                    splits.append(sorted([counts.get(p, 0) for p in set(pid_of.values())], reverse=True))
                busiest = [split[0] / connections for split in splits]
                print(
                    f"{connections} connections, {workers} processes, {trials} trials: busiest process"
                    f" median {statistics.median(busiest):.0%}, worst {max(busiest):.0%};"
                    f" splits {[tuple(s[:workers]) for s in splits]}"
                )
        finally:
            proc.terminate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=20)
    uvloop.run(run(parser.parse_args().trials))


if __name__ == "__main__":
    main()
