"""A webhook receiver that answers badly: a raw asyncio TCP server on 127.0.0.1 whose reply to each
request is a script of steps (send bytes, wait, reset, half-close, close), so it can send what no
HTTP server library would: any status, broken or huge headers, NUL and invalid UTF-8, bodies that
lie about their length or encoding, slow drips, resets before or after the headers, garbage.

A reply is chosen by the request's path: `receiver.url_for(reply)` registers the reply under a
fresh path. `replies()` is the hypothesis strategy that draws one. Every wait is bounded, and
`stop()` cancels whatever is still running.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import itertools
import os
import socket
import string
import struct
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

_MAX_REQUEST_HEAD = 64 * 1024
_MAX_REQUEST_BODY = 1024 * 1024
_IO_TIMEOUT = 10.0  # no single read or write of the receiver waits longer
_MAX_WAIT = 5.0  # no scripted wait lasts longer


@dataclass(frozen=True)
class Send:
    data: bytes


@dataclass(frozen=True)
class Wait:
    seconds: float


@dataclass(frozen=True)
class Reset:
    """Abort with an RST (SO_LINGER 0): the client sees 'connection reset by peer'."""


@dataclass(frozen=True)
class HalfClose:
    """Shut down the write side and keep reading until the client closes (bounded)."""


Step = Send | Wait | Reset | HalfClose


@dataclass(frozen=True)
class Reply:
    """What the receiver does after reading a request; the connection is closed at the end."""

    steps: tuple[Step, ...]
    description: str = ""

    def __repr__(self) -> str:  # hypothesis prints this for a failing example
        shown = [
            f"Send({s.data[:120]!r}{'...' if len(s.data) > 120 else ''} {len(s.data)} B)"
            if isinstance(s, Send)
            else repr(s)
            for s in self.steps
        ]
        return f"Reply({self.description!r}, [{', '.join(shown)}])"


@dataclass(frozen=True)
class Arrival:
    path: str
    head: bytes  # the request line and headers
    arrived_at: float


@dataclass
class HostileReceiver:
    default: Reply = field(default_factory=lambda: http_reply(200, body=b"ok"))
    arrivals: list[Arrival] = field(default_factory=list)
    port: int = 0
    _replies: dict[str, Reply] = field(default_factory=dict)
    _server: asyncio.Server | None = None
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)
    _paths: itertools.count[int] = field(default_factory=itertools.count)

    def url_for(self, reply: Reply) -> str:
        path = f"/hostile/{next(self._paths)}"
        self._replies[path] = reply
        return f"http://127.0.0.1:{self.port}{path}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._on_connection, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._handlers):
            task.cancel()
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=_IO_TIMEOUT)
        if self._server is not None:
            await self._server.wait_closed()

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:  # one request per connection: every reply ends it
            request = await _read_request(reader)
            if request is None:
                return
            path, head = request
            self.arrivals.append(Arrival(path, head, time.time()))
            await _play(self._replies.get(path, self.default), reader, writer)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return
        finally:
            writer.transport.abort()
            self._handlers.discard(task)


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, bytes] | None:
    """The path and head of a request, its body read and dropped; None if the head is too big."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _IO_TIMEOUT)
    if len(head) > _MAX_REQUEST_HEAD:
        return None
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    parts = request_line.split(" ")
    length = 0
    for line in header_lines:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = min(int(value.strip()), _MAX_REQUEST_BODY)
    if length:
        await asyncio.wait_for(reader.readexactly(length), _IO_TIMEOUT)
    return (parts[1] if len(parts) > 1 else "/"), head


async def _play(reply: Reply, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    for step in reply.steps:
        if isinstance(step, Send):
            writer.write(step.data)
            await asyncio.wait_for(writer.drain(), _IO_TIMEOUT)
        elif isinstance(step, Wait):
            await asyncio.sleep(min(step.seconds, _MAX_WAIT))
        elif isinstance(step, Reset):
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return
        else:
            if writer.can_write_eof():
                writer.write_eof()
            deadline = time.monotonic() + _MAX_WAIT
            while time.monotonic() < deadline:
                with contextlib.suppress(TimeoutError):
                    if not await asyncio.wait_for(reader.read(65536), deadline - time.monotonic()):
                        break
            return
    with contextlib.suppress(OSError, TimeoutError):
        await asyncio.wait_for(writer.drain(), _IO_TIMEOUT)


# --- Building replies -------------------------------------------------------------------------


def http_head(
    status: int,
    headers: Sequence[tuple[bytes, bytes]] = (),
    *,
    reason: bytes = b"Whatever",
    newline: bytes = b"\r\n",
) -> bytes:
    lines = [b"HTTP/1.1 %d %s" % (status, reason), *(name + b": " + value for name, value in headers)]
    return newline.join(lines) + newline + newline


def http_reply(status: int, *, body: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None) -> Reply:
    """A well-formed answer with a Content-Length, then close (announced: the client does not
    reuse the connection)."""
    all_headers = [*(headers or []), (b"Content-Length", b"%d" % len(body)), (b"Connection", b"close")]
    return Reply((Send(http_head(status, all_headers) + body),), f"HTTP {status}")


def dripped(data: bytes, *, pieces: int, delay: float) -> tuple[Step, ...]:
    """`data` in `pieces` parts with `delay` seconds between them."""
    size = max(1, -(-len(data) // pieces))
    steps: list[Step] = []
    for start in range(0, len(data), size):
        if steps:
            steps.append(Wait(delay))
        steps.append(Send(data[start : start + size]))
    return tuple(steps)


# --- The hypothesis strategy -------------------------------------------------------------------

_TOKEN = st.text(
    alphabet=string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~", min_size=1, max_size=20
).map(str.encode)
_PLAIN_NAMES = st.one_of(
    st.sampled_from(
        [
            b"Content-Type",
            b"Location",
            b"Retry-After",
            b"Set-Cookie",
            b"Content-Encoding",
            b"X-Thing",
            b"Server",
        ]
    ),
    _TOKEN,
)
# A value a lenient parser takes: any byte but NUL, CR and LF (so invalid UTF-8 and controls).
_PLAIN_VALUES = st.one_of(
    st.binary(max_size=100).map(lambda b: b.translate(None, b"\x00\r\n")),
    st.sampled_from(
        [b"120", b"\xb2", b"99999999999999999999999999", b"Wed, 21 Oct 2015 07:28:00 GMT", b"-1"]
    ),
)
_WILD_NAMES = st.one_of(_PLAIN_NAMES, st.binary(min_size=1, max_size=20))  # invalid bytes in a name
_WILD_VALUES = st.one_of(
    _PLAIN_VALUES,
    st.binary(max_size=100),  # NUL, CR, LF
    st.integers(min_value=60 * 1024, max_value=80 * 1024).map(lambda n: b"v" * n),  # beyond any parser limit
)
_BODIES = st.one_of(
    st.binary(max_size=2048),
    st.sampled_from([b"abc\x00def", b"\xff\xfe\xfd invalid utf-8 \xc3", b"ok \xed\xa0\x80 surrogate", b""]),
    st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.integers(min_value=1, max_value=4 * 1024 * 1024).map(lambda n: b"\x00x" * (n // 2)),  # megabytes
)
_ENCODINGS = st.sampled_from([None, b"gzip", b"deflate", b"br", b"gzip, br", b"x-\x00weird"])
_ENDINGS = st.sampled_from(["close", "reset", "half_close", "stall"])


def _encode(body: bytes, encoding: bytes | None, matching: bool) -> bytes:
    if not matching or encoding is None:
        return body
    if encoding == b"gzip":
        return gzip.compress(body[: 256 * 1024], compresslevel=1)
    if encoding == b"deflate":
        return zlib.compress(body[: 256 * 1024], 1)
    return body  # br and others: no encoder here, the bytes are just labelled


@st.composite
def _http_answers(draw: st.DrawFn) -> Reply:
    # Half the answers break HTTP's syntax somewhere; the other half a parser takes, whatever they carry.
    wild = draw(st.booleans())
    status = draw(st.one_of(st.integers(100, 599), st.sampled_from([200, 204, 302, 410, 429, 500, 503, 599])))
    reason = draw(st.one_of(st.just(b"OK"), st.binary(max_size=40).map(lambda b: b.translate(None, b"\r\n"))))
    if wild:
        headers = draw(st.lists(st.tuples(_WILD_NAMES, _WILD_VALUES), max_size=6))
    else:
        headers = draw(st.lists(st.tuples(_PLAIN_NAMES, _PLAIN_VALUES), max_size=6))
    if draw(st.booleans()) and headers:
        headers.append(headers[0])  # duplicated
    encoding = draw(_ENCODINGS)
    body = _encode(draw(_BODIES), encoding, draw(st.booleans()))
    if encoding is not None:
        headers.append((b"Content-Encoding", encoding))
    framings = ["length", "length_too_long", "none", "chunked"]
    framing = draw(st.sampled_from([*framings, "bad_chunked"] if wild else framings))
    if framing == "length":
        headers.append((b"Content-Length", b"%d" % len(body)))
    elif framing == "length_too_long":
        headers.append((b"Content-Length", b"%d" % (len(body) + 100)))
    elif framing in ("chunked", "bad_chunked"):
        headers.append((b"Transfer-Encoding", b"chunked"))
        size = b"%x" % len(body) if framing == "chunked" else b"zz"
        body = size + b"\r\n" + body + b"\r\n0\r\n\r\n" if body else b"0\r\n\r\n"
    newline = draw(st.sampled_from([b"\r\n", b"\n"])) if wild else b"\r\n"  # bare LF: missing CR
    wire = http_head(status, headers, reason=reason, newline=newline) + body
    if 100 <= status < 200 and draw(st.booleans()):
        wire = http_head(status, reason=reason)  # informational, then nothing
    if draw(st.integers(0, 4)) == 0:
        steps = dripped(
            wire[:4096],
            pieces=draw(st.integers(2, 12)),
            delay=draw(st.floats(0.0, 0.05)),
        )
    else:
        steps = (Send(wire),)
    ending = draw(_ENDINGS)
    endings: dict[str, tuple[Step, ...]] = {
        "close": (),
        "reset": (Reset(),),
        "half_close": (HalfClose(),),
        "stall": (Wait(draw(st.floats(0.0, 2.0))),),
    }
    tail = endings[ending]
    return Reply(steps + tail, f"HTTP {status}, {framing}, {encoding!r}, then {ending}")


def replies() -> st.SearchStrategy[Reply]:
    """Any reply a receiver could send, well-formed or not."""
    garbage = st.binary(min_size=1, max_size=512).map(lambda b: Reply((Send(b),), "garbage"))
    return st.one_of(
        _http_answers(),
        garbage,
        st.just(Reply((Reset(),), "reset before the status line")),
        st.just(Reply((HalfClose(),), "half-closed before the status line")),
        st.floats(0.0, 2.0).map(lambda s: Reply((Wait(s),), "silent, then close")),
        st.just(
            Reply(
                (Send(http_head(200, [(b"Content-Length", b"100")])), Reset()),
                "200 with Content-Length 100, then reset",
            )
        ),
        st.just(
            Reply(
                (Send(http_head(200, [(b"Content-Length", b"100")])), Wait(5.0)),
                "200 with Content-Length 100, then stall",
            )
        ),
    )


def hostile_settings(default_examples: int) -> settings:
    """The property suites' settings: HOSTILE_EXAMPLES drawn replies (a long run in `make chaos`),
    no deadline, and no complaint about slow examples or big replies (both are the point)."""
    return settings(
        max_examples=int(os.environ.get("HOSTILE_EXAMPLES", str(default_examples))),
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
    )
