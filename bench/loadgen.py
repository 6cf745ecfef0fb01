"""A lean HTTP/1.1 load client: keep-alive connections to one host:port on asyncio Protocols,
responses parsed by httptools, one request outstanding per connection, requests pre-encoded.

    async with Client("http://127.0.0.1:8080/timer") as client:
        payload = client.encode(b'{"hours": 1}')
        response = await client.request(payload)   # or client.submit(payload): a future, or None

A request fails with an OSError (refused, reset, closed, TimeoutError) or an httptools
HttpParserError; the failed connection is dropped and the next request opens a new one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urlsplit

import httptools

FAILURES = (OSError, httptools.HttpParserError)  # what a request can fail with


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes


class Client:
    """Keep-alive connections to the host:port of `url`, at most `max_connections` open. Opening
    a connection, or waiting for an answer, longer than `timeout` seconds fails with TimeoutError."""

    def __init__(self, url: str, *, max_connections: int = 1024, timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"an http:// URL with a host, not {url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.path = parts.path or "/"
        self.max_connections = max_connections
        self.timeout = timeout
        self.loop = asyncio.get_running_loop()
        self._open: set[_Connection] = set()
        self._idle: list[_Connection] = []
        self._connecting = 0

    def encode(
        self,
        body: bytes = b"",
        *,
        method: str = "POST",
        path: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> bytes:
        """One request, ready to write again and again (a JSON body unless headers say otherwise)."""
        fields = {"Host": f"{self.host}:{self.port}"}
        if method != "GET":
            fields |= {"Content-Type": "application/json", "Content-Length": str(len(body))}
        fields |= headers or {}
        head = "".join(f"{name}: {value}\r\n" for name, value in fields.items())
        return f"{method} {path or self.path} HTTP/1.1\r\n{head}\r\n".encode("latin-1") + body

    def submit(self, payload: bytes) -> asyncio.Future[Response] | None:
        """Send on an idle connection, or on a new one; None when `max_connections` are busy."""
        if self._idle:
            return self._idle.pop().send(payload)
        if len(self._open) + self._connecting >= self.max_connections:
            return None
        return asyncio.ensure_future(self._connect_and_send(payload))

    async def request(self, payload: bytes) -> Response:
        future = self.submit(payload)
        if future is None:
            raise ConnectionError(f"all {self.max_connections} connections are busy")
        return await future

    async def _connect_and_send(self, payload: bytes) -> Response:
        self._connecting += 1
        try:
            async with asyncio.timeout(self.timeout):
                transport, connection = await self.loop.create_connection(
                    lambda: _Connection(self), self.host, self.port
                )
        finally:
            self._connecting -= 1
        if transport.is_closing():  # closed before we got here: connection_lost already ran
            raise ConnectionResetError("the server closed the connection")
        # set here, not in connection_made: uvloop calls that only after create_connection returns
        connection.transport = transport
        self._open.add(connection)
        return await connection.send(payload)

    async def close(self) -> None:
        for connection in list(self._open):
            connection.transport.abort()
        await asyncio.sleep(0)  # connection_lost runs on the next loop iteration

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


class _Connection(asyncio.Protocol):
    """One keep-alive connection; also the httptools parser's callback target."""

    transport: asyncio.Transport

    def __init__(self, client: Client) -> None:
        self.client = client
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Response] | None = None
        self.deadline: asyncio.TimerHandle | None = None
        self.status = 0
        self.body: list[bytes] = []

    def send(self, payload: bytes) -> asyncio.Future[Response]:
        loop = self.client.loop
        self.waiter = loop.create_future()
        self.deadline = loop.call_later(self.client.timeout, self._time_out)
        self.transport.write(payload)
        return self.waiter

    def connection_lost(self, exc: Exception | None) -> None:
        self.client._open.discard(self)
        if self in self.client._idle:
            self.client._idle.remove(self)
        self._fail(exc or ConnectionResetError("the server closed the connection"))

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(exc)
            self.transport.abort()

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        response = Response(self.status, b"".join(self.body))
        self.body.clear()
        waiter = self._finish()
        if waiter is None:  # an answer nobody asked for: the connection is out of step
            self.transport.abort()
            return
        if not waiter.done():
            waiter.set_result(response)
        if self.parser.should_keep_alive():
            self.client._idle.append(self)
        else:
            self.transport.close()

    def _time_out(self) -> None:
        self._fail(TimeoutError(f"no answer within {self.client.timeout} s"))
        self.transport.abort()

    def _fail(self, exc: BaseException) -> None:
        waiter = self._finish()
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def _finish(self) -> asyncio.Future[Response] | None:
        waiter, self.waiter = self.waiter, None
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
        return waiter
