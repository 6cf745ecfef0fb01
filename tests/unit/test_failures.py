"""The one table of transport failures: each kind of exception gets its class and retry verdict,
and every message is storable; a Retry-After header can never break a result."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey
from aiohttp.http_exceptions import BadHttpMessage
from hypothesis import given
from hypothesis import strategies as st

from task_scheduler.delivery.client import parse_retry_after
from task_scheduler.delivery.failures import ERROR_MESSAGE_LIMIT, UNEXPECTED, classify, describe
from task_scheduler.delivery.ssrf import BlockedDestination
from task_scheduler.delivery.storable import storable_text

_KEY = ConnectionKey("example.com", 80, False, True, None, None, None)


@pytest.mark.parametrize(
    ("exc", "error_class", "retryable"),
    [
        (BlockedDestination("127.0.0.1 is loopback"), "blocked_destination", False),
        (aiohttp.InvalidURL("http://[::1"), "invalid_url", False),
        (TimeoutError(), "timeout", True),
        (aiohttp.ServerTimeoutError("read"), "timeout", True),
        (aiohttp.ConnectionTimeoutError("connect"), "timeout", True),
        (
            aiohttp.ClientResponseError(None, (), status=400, message="Invalid status line"),
            "invalid_response",
            True,
        ),  # type: ignore[arg-type]
        (aiohttp.ClientPayloadError("Response payload is not completed"), "invalid_response", True),
        (BadHttpMessage("bad header"), "invalid_response", True),
        (aiohttp.ServerDisconnectedError(), "connection", True),
        (aiohttp.ClientConnectorError(_KEY, ConnectionRefusedError(111, "refused")), "connection", True),
        (aiohttp.ClientOSError(104, "Connection reset by peer"), "connection", True),
        (ConnectionResetError(104, "reset"), "connection", True),
        (
            aiohttp.ClientHttpProxyError(None, (), status=407, message="Proxy Authentication"),
            "connection",
            True,
        ),  # type: ignore[arg-type]
        (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), "unexpected", True),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value),
)
def test_each_failure_has_its_class(exc: BaseException, error_class: str, retryable: bool) -> None:
    failure = classify(exc)
    assert (failure.error_class, failure.retryable) == (error_class, retryable)


def test_an_unknown_exception_is_unexpected() -> None:
    assert classify(LookupError("?")) is UNEXPECTED


def test_a_timeout_message_names_the_timeout() -> None:
    assert describe(TimeoutError(), classify(TimeoutError()), timeout_seconds=2.5) == (
        "timeout: no complete answer within 2.5s"
    )


@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=2000))
def test_every_message_is_storable_and_short(text: str) -> None:
    for exc in (
        aiohttp.ClientResponseError(None, (), status=400, message=text),  # type: ignore[arg-type]
        aiohttp.ClientOSError(text),
        ValueError(text),
        BlockedDestination(text),
    ):
        message = describe(exc, classify(exc), timeout_seconds=1.0)
        assert storable_text(message, limit=ERROR_MESSAGE_LIMIT) == message


@given(st.one_of(st.none(), st.text(max_size=60), st.text(alphabet="0123456789\u00b2\u0661", max_size=400)))
def test_retry_after_never_raises_and_is_finite(value: str | None) -> None:
    seconds = parse_retry_after(value)
    assert seconds is None or 0 <= seconds < float("inf")
