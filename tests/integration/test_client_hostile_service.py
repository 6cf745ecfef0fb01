"""The client library (and the CLI's API layer over it) against a "service" that answers badly: a
raw TCP server on 127.0.0.1 (tests/support/hostile_receiver.py) sending any status, broken or lying
headers and framing, bodies that lie about their encoding, resets and stalls, and JSON of any shape
where the endpoint's answer or the error envelope is expected (a proxy, another program on the
port, another version of the service).

Invariant: every call returns the endpoint's model or raises the library's own errors
(`TaskSchedulerError`; the CLI's `ClientError`), within the timeout and retries: never an httpx,
pydantic, JSON or decoding exception, which an application would not catch (and the CLI would
print as a traceback). Found: a body whose Content-Encoding lied (gzip that is not) escaped as
httpx.DecodingError.

HOSTILE_EXAMPLES=N runs N drawn answers (default 30), the same ones every run unless FUZZ_RANDOM=1."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

import task_scheduler_client as library
from task_scheduler.client._api import ApiClient
from task_scheduler.client._errors import ClientError
from tests.support.hostile_receiver import HostileReceiver, Reply, hostile_settings, http_reply, replies

TIMEOUT = 1.0
HOSTILE = [1e999, -1, 0, 2**63, -(2**63), "x", "", None, True, [], {}, "\x00", "\ud800", 1.5, "2026-13-45"]
json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(HOSTILE),
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
)
# Answers shaped like the service's, with any value in any field.
TIMER = {"timer_id": 1, "time_left": 5, "status": "pending", "url": "http://example.com/x"}
PAGE = {"timers": [TIMER], "next_cursor": "abc"}
ENVELOPE = {"error": {"code": "not_found", "message": "no", "field": None, "details": []}}


@st.composite
def near_miss(draw: st.DrawFn) -> bytes:
    """One of the service's answers with one field (or the whole) replaced by anything."""
    shape: dict[str, Any] = json.loads(json.dumps(draw(st.sampled_from([TIMER, PAGE, ENVELOPE]))))
    inner = shape.get("error", shape)
    key = draw(st.sampled_from([*inner, "extra"]))
    inner[key] = draw(json_value)
    return json.dumps(shape, allow_nan=True).encode("utf-8", "surrogatepass")


@st.composite
def json_answers(draw: st.DrawFn) -> Reply:
    body = draw(near_miss() | json_value.map(lambda v: json.dumps(v).encode("utf-8", "surrogatepass")))
    status = draw(st.sampled_from([200, 201, 204, 400, 404, 409, 412, 422, 429, 500, 503]))
    headers = draw(
        st.lists(
            st.sampled_from(
                [
                    (b"Content-Type", b"application/json"),
                    (b"Content-Type", b"application/json; charset=x-unknown"),
                    (b"Retry-After", b"nan"),
                    (b"Retry-After", b"-1"),
                    (b"Retry-After", b"Fri, 31 Dec 99999 23:59:59 GMT"),
                    (b"ETag", b'"\xff\xfe"'),
                ]
            ),
            max_size=3,
        )
    )
    return http_reply(status, body=body, headers=headers)


def _calls(client: library.AsyncClient) -> list[Callable[[], Awaitable[object]]]:
    async def listed() -> object:
        return [t async for t in client.list_timers(max_timers=3)]

    return [
        lambda: client.get_timer(1),
        lambda: client.create_timer(url="http://example.com/x", seconds=5),
        listed,
        lambda: client.cancel_timer(1),
        lambda: client.get_schedule(1),
        lambda: client.list_destinations(max_pages=2),
        lambda: client.timer_attempts(1),
    ]


@settings(parent=hostile_settings(30), derandomize=not os.environ.get("FUZZ_RANDOM"), database=None)
@given(reply=replies() | json_answers(), which=st.integers(0, 6))
async def test_the_client_raises_only_its_own_errors(
    hostile: HostileReceiver, reply: Reply, which: int
) -> None:
    hostile.default = reply
    base = f"http://127.0.0.1:{hostile.port}"
    async with library.AsyncClient(
        base, timeout_seconds=TIMEOUT, max_retries=1, backoff_base_seconds=0.01, backoff_cap_seconds=0.05
    ) as client:
        try:
            async with asyncio.timeout(10 * TIMEOUT):
                await _calls(client)[which]()
            event("answered")
        except library.TaskSchedulerError as exc:
            event(type(exc).__name__)

    def sync_call() -> None:
        with library.Client(base, timeout_seconds=TIMEOUT, max_retries=0) as client:
            client.get_timer(1)

    with contextlib.suppress(library.TaskSchedulerError):
        await asyncio.to_thread(sync_call)

    async with ApiClient(base_url=base, timeout_seconds=TIMEOUT) as api:  # the CLI's layer
        try:
            (await api.get_timer(timer_id=1)).parse()
        except ClientError as exc:
            event(f"cli {type(exc).__name__}")


async def test_an_answer_whose_encoding_lies_is_a_transport_error(hostile: HostileReceiver) -> None:
    """Regression: a body labelled gzip that is not raised httpx.DecodingError out of the client."""
    hostile.default = http_reply(200, body=b"not gzip", headers=[(b"Content-Encoding", b"gzip")])
    base = f"http://127.0.0.1:{hostile.port}"
    async with library.AsyncClient(base, timeout_seconds=TIMEOUT, max_retries=0) as client:
        with pytest.raises(library.TransportError, match="could not be decoded") as raised:
            await client.get_timer(1)
    assert raised.value.maybe_sent
    with (
        library.Client(base, timeout_seconds=TIMEOUT, max_retries=0) as sync_client,
        pytest.raises(library.TransportError, match="could not be decoded"),
    ):
        await asyncio.to_thread(sync_client.get_timer, 1)
