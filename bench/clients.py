"""Webhook HTTP clients side by side (issue 12): each candidate POSTs the same webhook-shaped
requests to the lean receiver (bench/receiver.py, its own process) and reports requests/s and the
CPU seconds its own process spent per 1,000 requests (every thread counted: the Rust-backed
clients run their I/O on their own threads).

    python -m bench.clients [--requests 30000] [--concurrency 200] [--rounds 3] [--only NAME ...]

Each candidate runs in a fresh process (no state or imports shared), in rounds interleaved
A B C A B C, so a neighbour's load on the shared machine hits every candidate alike; the table
quotes medians and ratios against `aiohttp` (the session as src/ configures it today).
Optional clients (pyreqwest, rnet, aiosonic, httpx, niquests) are imported only in their own
process; one that is not installed is skipped with a note. Install them outside the project:

    python3 -m venv /tmp/clients-venv
    /tmp/clients-venv/bin/pip install -e . pyreqwest rnet aiosonic httpx niquests
    /tmp/clients-venv/bin/python -m bench.clients
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import uvloop

BODY = b'{"timer_id":123456789,"due_at":"2026-01-01T00:00:00+00:00","attempt":1,"labels":{"k":"v"}}'
# The headers the service sends (signature headers of the usual size; signing itself costs
# every client the same, so it is left out).
HEADERS = {
    "Content-Type": "application/json",
    "Accept-Encoding": "identity",
    "User-Agent": "task-scheduler/0.1.0 (+webhook timer service)",
    "webhook-id": "msg_" + "0" * 32,
    "webhook-timestamp": "1767225600",
    "webhook-signature": "v1," + "A" * 44,
}
RESPONSE_BODY_LIMIT = 1024
CONNECT_TIMEOUT = 5.0
TOTAL_TIMEOUT = 30.0
WARMUP = 1000

Send = Callable[[int], Awaitable[int]]  # timer id -> HTTP status
Factory = Callable[[str, int], Any]  # (url, concurrency) -> async context manager yielding Send


def _headers(timer_id: int) -> dict[str, str]:
    return {**HEADERS, "X-Timer-Id": str(timer_id), "X-Timer-Attempt": "1"}


# ---------------------------------------------------------------- aiohttp


def _aiohttp_session(concurrency: int, **session_options: Any) -> Any:
    import aiohttp

    connector_options = {"ttl_dns_cache": 60, "enable_cleanup_closed": True}
    connector_options |= session_options.pop("connector_options", {})
    connector = aiohttp.TCPConnector(limit=concurrency, **connector_options)
    options: dict[str, Any] = {
        "timeout": aiohttp.ClientTimeout(total=TOTAL_TIMEOUT, connect=CONNECT_TIMEOUT),
        "auto_decompress": False,
        "trust_env": False,
        "cookie_jar": aiohttp.DummyCookieJar(),
    }
    return aiohttp.ClientSession(connector=connector, **(options | session_options))


async def _read_excerpt(response: Any, *, stop_at_eof: bool = False) -> None:
    """As client.py reads the first KiB; `stop_at_eof` skips the last read that returns b''."""
    raw = bytearray()
    while len(raw) < RESPONSE_BODY_LIMIT:
        chunk = await response.content.read(RESPONSE_BODY_LIMIT - len(raw))
        if not chunk:
            break
        raw += chunk
        if stop_at_eof and response.content.at_eof():
            break


def _aiohttp(
    *,
    multidict_headers: bool = True,
    timeout_per_request: bool = True,
    context_manager: bool = True,
    url_object: bool = False,
    read_once: bool = False,
    stop_at_eof: bool = False,
    **session_options: Any,
) -> Factory:
    """aiohttp as WebhookClient.send uses it today; each keyword undoes one of its habits."""

    @asynccontextmanager
    async def factory(url: str, concurrency: int) -> AsyncIterator[Send]:
        import aiohttp
        from multidict import CIMultiDict
        from yarl import URL

        target: Any = URL(url) if url_object else url
        shared_timeout = aiohttp.ClientTimeout(total=TOTAL_TIMEOUT, connect=CONNECT_TIMEOUT)

        async def send(timer_id: int) -> int:
            headers: Any = CIMultiDict(_headers(timer_id)) if multidict_headers else _headers(timer_id)
            timeout = (
                aiohttp.ClientTimeout(total=TOTAL_TIMEOUT, connect=CONNECT_TIMEOUT)
                if timeout_per_request
                else shared_timeout
            )
            options = {"data": BODY, "headers": headers, "allow_redirects": False, "timeout": timeout}
            if context_manager:
                async with session.request("POST", target, proxy=None, **options) as response:
                    await read(response)
                    return response.status
            response = await session.request("POST", target, proxy=None, **options)
            try:
                await read(response)
                return response.status
            finally:
                response.release()

        async def read(response: Any) -> None:
            if read_once:  # not what client.py may do: one read can return less than a KiB
                await response.content.read(RESPONSE_BODY_LIMIT)
            else:
                await _read_excerpt(response, stop_at_eof=stop_at_eof)

        async with _aiohttp_session(concurrency, **session_options) as session:
            yield send

    return factory


@asynccontextmanager
async def _webhook_client(url: str, concurrency: int) -> AsyncIterator[Send]:
    """The service's own WebhookClient.send: headers, signing, the SSRF check and the verdict."""
    import uuid
    from datetime import UTC, datetime

    from task_scheduler.delivery.client import WebhookClient, WebhookRequest
    from task_scheduler.delivery.signing import WebhookSigner
    from task_scheduler.delivery.ssrf import AddressPolicy
    from task_scheduler.timers.shape import RequestSpec

    client = WebhookClient(
        connect_timeout=CONNECT_TIMEOUT,
        total_timeout=TOTAL_TIMEOUT,
        max_connections=concurrency,
        signer=WebhookSigner(["whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]),
        policy=AddressPolicy(["127.0.0.0/8"]),
    )
    await client.start()
    due_at = datetime.now(UTC)
    body = json.loads(BODY)

    async def send(timer_id: int) -> int:
        result = await client.send(
            WebhookRequest(
                url=url,
                timer_id=timer_id,
                delivery_id=uuid.uuid4(),
                attempt=1,
                due_at=due_at,
                request=RequestSpec(body=body),
            )
        )
        if result.status_code is None:
            raise ConnectionError(result.error)
        return result.status_code

    try:
        yield send
    finally:
        await client.close()


# ---------------------------------------------------------------- the others


@asynccontextmanager
async def _lean(url: str, concurrency: int) -> AsyncIterator[Send]:
    """The bench's own client (bench/loadgen.py): the floor, not a candidate (no TLS, proxy, ...)."""
    from bench.loadgen import Client

    async with Client(url, max_connections=concurrency) as client:

        async def send(timer_id: int) -> int:
            head = {k: v for k, v in _headers(timer_id).items() if k != "Content-Type"}
            return (await client.request(client.encode(BODY, headers=head))).status

        yield send


def _pyreqwest(*, multithreaded: bool = False) -> Factory:
    @asynccontextmanager
    async def factory(url: str, concurrency: int) -> AsyncIterator[Send]:
        from datetime import timedelta

        from pyreqwest.client import ClientBuilder

        builder = (
            ClientBuilder()
            .follow_redirects(False)
            .connect_timeout(timedelta(seconds=CONNECT_TIMEOUT))
            .timeout(timedelta(seconds=TOTAL_TIMEOUT))
            .max_connections(concurrency)
            .http1_only()
            .no_proxy()
        )
        if multithreaded:
            builder = builder.runtime_multithreaded(True)
        async with builder.build() as client:

            async def send(timer_id: int) -> int:
                request = client.post(url).headers(_headers(timer_id)).body_bytes(BODY).build_streamed()
                async with request as response:
                    await response.body_reader.read(RESPONSE_BODY_LIMIT)
                    return int(response.status)

            yield send

    return factory


@asynccontextmanager
async def _rnet(url: str, concurrency: int) -> AsyncIterator[Send]:
    import rnet

    client = rnet.Client(
        allow_redirects=False,
        connect_timeout=int(CONNECT_TIMEOUT),
        timeout=int(TOTAL_TIMEOUT),
        pool_max_size=concurrency,
        http1_only=True,
        no_proxy=True,
        cookie_store=False,
    )

    async def send(timer_id: int) -> int:
        response = await client.post(url, headers=_headers(timer_id), body=BODY)
        async with response:
            async with response.stream() as streamer:
                async for _chunk in streamer:
                    break  # the first chunk holds the first KiB and more here
            return int(response.status)

    yield send


@asynccontextmanager
async def _aiosonic(url: str, concurrency: int) -> AsyncIterator[Send]:
    import aiosonic
    from aiosonic.connectors import TCPConnector
    from aiosonic.pools import PoolConfig
    from aiosonic.timeout import Timeouts

    timeouts = Timeouts(sock_connect=CONNECT_TIMEOUT, request_timeout=TOTAL_TIMEOUT)
    connector = TCPConnector(pool_configs={":default": PoolConfig(size=concurrency)}, timeouts=timeouts)
    async with aiosonic.HTTPClient(connector=connector) as client:

        async def send(timer_id: int) -> int:
            response = await client.post(url, data=BODY, headers=_headers(timer_id), follow=False)
            await response.content()
            return int(response.status_code)

        yield send


@asynccontextmanager
async def _httpx(url: str, concurrency: int) -> AsyncIterator[Send]:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    timeout = httpx.Timeout(TOTAL_TIMEOUT, connect=CONNECT_TIMEOUT)
    async with httpx.AsyncClient(limits=limits, timeout=timeout, trust_env=False) as client:

        async def send(timer_id: int) -> int:
            request = client.build_request("POST", url, content=BODY, headers=_headers(timer_id))
            response = await client.send(request, stream=True)
            try:
                async for _chunk in response.aiter_raw(RESPONSE_BODY_LIMIT):
                    break
                return response.status_code
            finally:
                await response.aclose()

        yield send


@asynccontextmanager
async def _niquests(url: str, concurrency: int) -> AsyncIterator[Send]:
    import niquests

    async with niquests.AsyncSession(pool_maxsize=concurrency, disable_http2=True, disable_http3=True) as s:
        s.trust_env = False

        async def send(timer_id: int) -> int:
            response = await s.post(
                url,
                data=BODY,
                headers=_headers(timer_id),
                allow_redirects=False,
                timeout=(CONNECT_TIMEOUT, TOTAL_TIMEOUT),
                stream=True,
            )
            await response.raw.read(RESPONSE_BODY_LIMIT)
            await response.close()
            return int(response.status_code or 0)

        yield send


CANDIDATES: dict[str, tuple[str, Factory]] = {
    "aiohttp": ("aiohttp", _aiohttp()),
    "webhookclient": ("aiohttp", _webhook_client),
    "aiohttp+timeout-reused": ("aiohttp", _aiohttp(timeout_per_request=False)),
    "aiohttp+dict-headers": ("aiohttp", _aiohttp(multidict_headers=False)),
    "aiohttp+url-object": ("aiohttp", _aiohttp(url_object=True)),
    "aiohttp+read-once": ("aiohttp", _aiohttp(read_once=True)),
    "aiohttp+stop-at-eof": ("aiohttp", _aiohttp(stop_at_eof=True)),
    "aiohttp+release": ("aiohttp", _aiohttp(context_manager=False)),
    "aiohttp+skip-auto-headers": ("aiohttp", _aiohttp(skip_auto_headers=("Accept",))),
    "aiohttp+read-bufsize-4k": ("aiohttp", _aiohttp(read_bufsize=4096)),
    "aiohttp+no-cleanup-closed": ("aiohttp", _aiohttp(connector_options={"enable_cleanup_closed": False})),
    "aiohttp+all": (
        "aiohttp",
        _aiohttp(timeout_per_request=False, stop_at_eof=True, context_manager=False),
    ),
    "lean (bench/loadgen)": ("httptools", _lean),
    "pyreqwest": ("pyreqwest", _pyreqwest()),
    "pyreqwest (multithreaded)": ("pyreqwest", _pyreqwest(multithreaded=True)),
    "rnet": ("rnet", _rnet),
    "aiosonic": ("aiosonic", _aiosonic),
    "httpx": ("httpx", _httpx),
    "niquests": ("niquests", _niquests),
}
DEFAULT = [
    "aiohttp",
    "webhookclient",
    "aiohttp+all",
    "lean (bench/loadgen)",
    "pyreqwest",
    "rnet",
    "aiosonic",
    "httpx",
    "niquests",
]


# ---------------------------------------------------------------- one candidate, in its own process


async def _measure(name: str, url: str, requests: int, concurrency: int, time_limit: float) -> dict[str, Any]:
    _, factory = CANDIDATES[name]
    errors: list[str] = []
    async with factory(url, concurrency) as send:

        async def run(count: int, deadline: float) -> int:
            next_id = 0
            done = 0

            async def worker() -> None:
                nonlocal next_id, done
                while next_id < count and time.monotonic() < deadline:
                    next_id += 1
                    try:
                        status = await send(next_id)
                    except Exception as exc:  # counted and shown; the run goes on
                        errors.append(repr(exc)[:200])
                        continue
                    if status == 200:
                        done += 1
                    else:
                        errors.append(f"HTTP {status}")

            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return done

        await run(WARMUP, time.monotonic() + time_limit)
        cpu, started = time.process_time(), time.perf_counter()
        done = await run(requests, time.monotonic() + time_limit)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"done": done, "seconds": seconds, "cpu": cpu, "errors": len(errors), "error": errors[:1]}


def _child(args: argparse.Namespace) -> None:
    module, _ = CANDIDATES[args.child]
    try:
        __import__(module)
    except ImportError:
        print(json.dumps({"skip": f"{module} is not installed"}), flush=True)
        return
    result = uvloop.run(_measure(args.child, args.url, args.requests, args.concurrency, args.time_limit))
    print(json.dumps(result), flush=True)


# ---------------------------------------------------------------- the rounds


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_receiver(port: int, out: str) -> subprocess.Popen[str]:
    receiver = subprocess.Popen(
        [sys.executable, "-m", "bench.receiver", "--port", str(port), "--out", out],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert receiver.stdout is not None
    if receiver.stdout.readline().strip() != "ready":
        receiver.kill()
        raise RuntimeError("the receiver did not start")
    return receiver


def _arrived(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/count", timeout=10) as reply:
        return int(reply.read())


def _run_one(name: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.clients", "--child", name, "--url", url]
    command += ["--requests", str(args.requests), "--concurrency", str(args.concurrency)]
    command += ["--time-limit", str(args.time_limit)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=2 * args.time_limit + 60)
    except subprocess.TimeoutExpired:
        return {"fail": "timed out"}
    lines = done.stdout.strip().splitlines()
    if done.returncode or not lines:
        return {"fail": (done.stderr.strip().splitlines() or ["no output"])[-1][:200]}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=30_000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per candidate and round")
    parser.add_argument("--only", nargs="+", choices=list(CANDIDATES), help=f"default: {', '.join(DEFAULT)}")
    parser.add_argument("--all", action="store_true", help="every candidate, the aiohttp variants too")
    parser.add_argument("--child", choices=list(CANDIDATES), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    names = list(CANDIDATES) if args.all else args.only or DEFAULT
    if "aiohttp" not in names:
        names.insert(0, "aiohttp")
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for round_number in range(1, args.rounds + 1):
            port = _free_port()
            receiver = _start_receiver(port, os.path.join(scratch, f"arrivals-{round_number}.jsonl"))
            try:
                for name in names:
                    if name in skipped:
                        continue
                    before = _arrived(port)
                    result = _run_one(name, f"http://127.0.0.1:{port}/webhook", args)
                    if "skip" in result or "fail" in result:
                        skipped[name] = result.get("skip") or f"failed: {result['fail']}"
                        print(f"# {name}: skipped, {skipped[name]}", file=sys.stderr, flush=True)
                        continue
                    result["arrived"] = _arrived(port) - before - WARMUP
                    runs[name].append(result)
                    rate = result["done"] / result["seconds"]
                    per_1000 = result["cpu"] / max(result["done"], 1) * 1000
                    print(
                        f"# round {round_number} {name}: {rate:,.0f} req/s, {per_1000:.3f} CPU s/1000, "
                        f"{result['errors']} errors {result['error']}, {result['arrived']} arrived",
                        file=sys.stderr,
                        flush=True,
                    )
            finally:
                receiver.send_signal(signal.SIGTERM)
                receiver.wait(timeout=30)
    _print_table(runs, skipped, args)


def _print_table(
    runs: dict[str, list[dict[str, Any]]], skipped: dict[str, str], args: argparse.Namespace
) -> None:
    def medians(name: str) -> tuple[float, float]:
        rate = statistics.median(r["done"] / r["seconds"] for r in runs[name])
        cpu = statistics.median(r["cpu"] / max(r["done"], 1) * 1000 for r in runs[name])
        return rate, cpu

    print(
        f"\n{args.requests:,} POSTs per run, {args.concurrency} concurrent, keep-alive, "
        f"median of {args.rounds} interleaved rounds\n"
    )
    print("| client | requests/s | CPU s per 1,000 | rate vs aiohttp | CPU vs aiohttp | errors |")
    print("|---|---:|---:|---:|---:|---:|")
    if not runs.get("aiohttp"):
        print("| (aiohttp did not run: no ratios) | | | | | |")
        return
    base_rate, base_cpu = medians("aiohttp")
    for name, results in runs.items():
        if not results:
            print(f"| {name} | skipped: {skipped.get(name, '?')} | | | | |")
            continue
        rate, cpu = medians(name)
        errors = sum(r["errors"] for r in results)
        print(
            f"| {name} | {rate:,.0f} | {cpu:.3f} | x{rate / base_rate:.2f} | x{cpu / base_cpu:.2f} | {errors} |"
        )


if __name__ == "__main__":
    main()
