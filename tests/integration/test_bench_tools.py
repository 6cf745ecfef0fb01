"""The benchmark's own tools over real sockets on 127.0.0.1: the lean load client (bench.loadgen,
open_loop, closed_loop) against the lean receiver (bench.receiver), an aiohttp server, and
servers that misbehave."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from bench.harness import Receiver, closed_loop, open_loop
from bench.loadgen import Client, Response
from bench.receiver import Record, listen
from tests.support.processes import free_port

pytestmark = pytest.mark.timeout(15)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def lean_receiver(delay: float = 0.0) -> AsyncIterator[tuple[str, list[Record]]]:
    server, records = await listen(0, delay)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hook", records
    finally:
        server.close()


@asynccontextmanager
async def aiohttp_server(peers: list[object] | None = None) -> AsyncIterator[str]:
    """Answers /NNN with status NNN, and /chunked in chunks; `peers` gets each request's client
    address."""

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        await request.read()
        if peers is not None:
            peers.append(request.transport.get_extra_info("peername") if request.transport else None)
        if request.path != "/chunked":
            return web.Response(status=int(request.path.strip("/")), text="answer")
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for part in (b"one ", b"two ", b"three"):
            await response.write(part)
        await response.write_eof()
        return response

    runner = web.ServerRunner(web.Server(handle, access_log=None))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def raw_server(handle: Handler) -> AsyncIterator[str]:
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    finally:
        server.close()


async def test_every_request_is_recorded_with_its_ids_and_counted() -> None:
    async with lean_receiver() as (url, records), Client(url, timeout=5.0) as client:

        async def send(timer_id: int) -> bytes:
            headers = {"X-Timer-Id": str(timer_id), "webhook-id": f"msg_{timer_id}"}
            response = await client.request(client.encode(b"{}", headers=headers))
            assert response.status == 200
            return response.body

        assert set(await asyncio.gather(*(send(i) for i in range(300)))) == {b"ok"}
        count = await client.request(client.encode(method="GET", path="/count"))

    assert (count.status, count.body) == (200, b"300")
    assert sorted((timer_id, webhook_id) for timer_id, _, webhook_id in records) == [
        (i, f"msg_{i}") for i in range(300)
    ]
    assert all(abs(arrived - time.time()) < 30 for _, arrived, _ in records)


async def test_requests_without_a_timer_id_are_recorded_as_minus_one() -> None:
    async with lean_receiver() as (url, records), Client(url, timeout=5.0) as client:
        await client.request(client.encode(b"{}"))
        await client.request(client.encode(method="GET", path="/anything"))
    assert [(timer_id, webhook_id) for timer_id, _, webhook_id in records] == [(-1, ""), (-1, "")]


async def test_statuses_are_counted() -> None:
    async with aiohttp_server() as base:
        created = await open_loop(f"{base}/201", 200, 0.2, {}, request_timeout=5.0)
        refused = await open_loop(f"{base}/503", 200, 0.2, {}, request_timeout=5.0)
        peak = await closed_loop(f"{base}/500", 4, 0.2, {}, request_timeout=5.0)
    assert (created["requests"], created["errors"], created["statuses"]) == (40, 0, {"201": 40})
    assert (refused["errors"], refused["statuses"]) == (40, {"503": 40})
    assert peak["requests"] > 0
    assert peak["errors"] == peak["requests"]


async def test_a_chunked_answer_is_read_whole_and_the_connection_kept() -> None:
    peers: list[object] = []
    async with aiohttp_server(peers) as base, Client(f"{base}/chunked", timeout=5.0) as client:
        payload = client.encode(b"{}")
        answers = [await client.request(payload) for _ in range(3)]
    assert answers == [Response(200, b"one two three")] * 3
    assert len(set(peers)) == 1


async def test_a_refused_connection_is_an_error_not_a_hang() -> None:
    url = f"http://127.0.0.1:{free_port()}/timer"
    async with asyncio.timeout(10):
        peak = await closed_loop(url, 4, 0.3, {}, request_timeout=1.0)
        latency = await open_loop(url, 100, 0.3, {}, request_timeout=1.0)
    assert peak["requests"] == 0
    assert peak["errors"] > 0
    assert latency["errors"] == 30
    assert latency["statuses"] == {"ConnectionRefusedError": 30}


async def test_a_closed_receiver_refuses_and_a_hung_up_connection_is_reopened() -> None:
    connections = 0

    async def hang_up_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await reader.readuntil(b"\r\n\r\n")
        if connections > 1:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
        writer.close()

    async with raw_server(hang_up_once) as url, Client(url, timeout=5.0) as client:
        payload = client.encode(method="GET")
        with pytest.raises(ConnectionResetError):
            await client.request(payload)
        assert (await client.request(payload)).body == b"ok"
    assert connections == 2

    async with lean_receiver() as (url, _):
        pass
    async with Client(url, timeout=5.0) as client:
        with pytest.raises(ConnectionRefusedError):
            await client.request(client.encode(b"{}"))


async def test_a_server_that_never_answers_times_out() -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            await reader.read()  # until the client gives up
        writer.close()

    async with raw_server(never_answer) as url:
        started = time.monotonic()
        result = await open_loop(url, 50, 0.1, {}, request_timeout=0.3)
    assert result["statuses"] == {"TimeoutError": 5}
    assert time.monotonic() - started < 3
    assert 300 <= result["p50_ms"] <= result["max_ms"] < 2000


async def test_open_loop_latency_is_sane() -> None:
    async with lean_receiver() as (url, records):
        result = await open_loop(url, 500, 0.5, {}, request_timeout=5.0)
    assert result["statuses"] == {"200": 250}
    assert len(records) == 250
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"] < 1000


async def test_open_loop_latency_counts_from_the_schedule() -> None:
    # The generator stalls for 0.4 s from its first request: the requests due meanwhile leave
    # late, and that lateness is part of their latency. (The stall waits for the first request,
    # not for a fixed time: a slow setup would otherwise see it pass before the schedule began.)

    async def stall_at_the_first_request(records: list[Record]) -> None:
        for _ in range(10_000):  # at most ~10 s
            if records:
                break
            await asyncio.sleep(0.001)
        asyncio.get_running_loop().call_soon(time.sleep, 0.4)  # the whole loop: generator and receiver

    async with lean_receiver() as (url, records):
        stall = asyncio.create_task(stall_at_the_first_request(records))
        try:
            result = await open_loop(url, 100, 0.4, {}, request_timeout=5.0)
            stalled = stall.done()
        finally:
            stall.cancel()
    assert stalled
    assert result["statuses"] == {"200": 40}
    assert result["p50_ms"] >= 100
    assert result["max_ms"] >= 300


async def test_open_loop_drops_what_finds_every_connection_busy() -> None:
    async with lean_receiver(delay=0.2) as (url, _):
        result = await open_loop(url, 100, 0.5, {}, max_outstanding=10, request_timeout=5.0)
    # 10 connections, each busy 0.2 s: at 100 requests/s about half find none free
    assert result["statuses"]["200"] + result["statuses"]["dropped"] == 50
    assert 0 < result["statuses"]["dropped"] < 50
    assert result["p50_ms"] >= 200


async def test_a_delayed_answer_does_not_hold_up_other_connections() -> None:
    async with lean_receiver(delay=1.0) as (url, records), Client(url, timeout=5.0) as client:
        started = time.monotonic()
        slow = [asyncio.create_task(client.request(client.encode(b"{}"))) for _ in range(2)]
        for _ in range(500):  # at most ~5 s, until both slow requests are in, held for their 1 s
            if len(records) == 2:
                break
            await asyncio.sleep(0.01)
        count = await client.request(client.encode(method="GET", path="/count"))
        # The count is answered while the slow answers are still held back.
        still_held = [not task.done() for task in slow]
        answers = await asyncio.gather(*slow)
        answered_after = time.monotonic() - started
    assert count.body == b"2"
    assert still_held == [True, True]
    assert [a.body for a in answers] == [b"ok", b"ok"]
    assert 1.0 <= answered_after < 1.9  # both at once, not one after the other (2 s)


async def test_pipelined_requests_and_connection_close() -> None:
    async with lean_receiver() as (url, records):
        port = int(url.split(":")[2].split("/")[0])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        one = b"POST /hook HTTP/1.1\r\nHost: x\r\nX-Timer-Id: %d\r\nContent-Length: 2\r\n\r\n{}"
        writer.write(one % 1 + one % 2)
        for _ in range(2):
            assert await reader.readuntil(b"ok") == (
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
            )
        writer.write(b"GET /count HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        closing = await asyncio.wait_for(reader.read(), 5)  # up to EOF: the receiver closes
        writer.close()
    assert closing.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Connection: close\r\n" in closing
    assert closing.endswith(b"\r\n\r\n2")
    assert [r[0] for r in records] == [1, 2]


async def test_aiohttp_as_a_client_keeps_alive_and_handles_connection_close() -> None:
    async with lean_receiver() as (url, records):
        connector = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(connector=connector) as session:
            for i in range(20):
                headers = {"X-Timer-Id": str(i), "webhook-id": f"msg_{i}"}
                if i % 10 == 9:
                    headers["Connection"] = "close"
                async with session.post(url, json={"timer_id": i}, headers=headers) as response:
                    assert (response.status, await response.text()) == (200, "ok")
                    assert response.headers.get("Connection") == ("close" if i % 10 == 9 else None)
    assert [(r[0], r[2]) for r in records] == [(i, f"msg_{i}") for i in range(20)]


async def test_receiver_process_writes_its_records_on_sigterm(tmp_path: Path) -> None:
    receiver = Receiver(tmp_path)
    receiver.start()  # returns once it printed "ready"
    try:
        async with Client(receiver.url, timeout=5.0) as client:
            for i in range(3):
                await client.request(client.encode(b"{}", headers={"X-Timer-Id": str(i), "webhook-id": "m"}))
        assert await receiver.wait_for(3, within=5.0) < 5.0
    finally:
        records = receiver.stop()
    assert [(r[0], r[2]) for r in records] == [(0, "m"), (1, "m"), (2, "m")]
    assert receiver.process is not None
    assert receiver.process.returncode == 0
