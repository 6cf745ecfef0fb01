"""WebhookClient.send against receivers that answer badly (a raw TCP server on 127.0.0.1): whatever
comes back, send() returns a result whose text is storable as it is, within the timeout.

HOSTILE_EXAMPLES=N runs N drawn replies in the property test (default 40)."""

from __future__ import annotations

import gzip
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from hypothesis import event, given

from task_scheduler.delivery.client import RESPONSE_BODY_LIMIT, DeliveryResult, WebhookClient, WebhookRequest
from task_scheduler.delivery.failures import ERROR_MESSAGE_LIMIT
from task_scheduler.delivery.ssrf import AddressPolicy
from task_scheduler.delivery.storable import storable_text
from task_scheduler.timers.shape import RequestSpec
from tests.support.hostile_receiver import (
    HostileReceiver,
    Reply,
    Reset,
    Send,
    Wait,
    hostile_settings,
    http_head,
    http_reply,
    replies,
)

TIMEOUT = 1.0
# Closing the connection and the event loop's own delays: generous, the machine is noisy.
SLACK = 1.5


@pytest.fixture
async def client() -> AsyncIterator[WebhookClient]:
    webhook_client = WebhookClient(
        connect_timeout=TIMEOUT,
        total_timeout=TIMEOUT,
        max_connections=10,
        policy=AddressPolicy(["127.0.0.0/8"]),
    )
    await webhook_client.start()
    yield webhook_client
    await webhook_client.close()


def request_to(url: str, **fields: object) -> WebhookRequest:
    return WebhookRequest(
        url=url,
        timer_id=7,
        delivery_id=uuid.uuid4(),
        attempt=1,
        due_at=datetime.now(UTC),
        **fields,  # type: ignore[arg-type]
    )


def assert_storable(result: DeliveryResult) -> None:
    for name, limit in (("error", ERROR_MESSAGE_LIMIT), ("response_body", RESPONSE_BODY_LIMIT)):
        value = getattr(result, name)
        assert storable_text(value, limit=limit) == value, (name, value)
    assert result.error_class is None or storable_text(result.error_class, limit=50) == result.error_class


async def send(
    client: WebhookClient, hostile: HostileReceiver, reply: Reply, **fields: object
) -> DeliveryResult:
    result = await client.send(request_to(hostile.url_for(reply), **fields))
    assert_storable(result)
    return result


@pytest.mark.parametrize("status", [200, 500])
async def test_a_nul_in_the_body_is_stored_replaced(
    client: WebhookClient, hostile: HostileReceiver, status: int
) -> None:
    result = await send(client, hostile, http_reply(status, body=b"abc\x00def\xff"))
    assert result.status_code == status
    assert result.response_body == "abc\ufffddef\ufffd"
    assert result.ok is (status == 200)


async def test_invalid_bytes_in_a_header_are_stored_replaced(
    client: WebhookClient, hostile: HostileReceiver
) -> None:
    redirect = Reply((Send(http_head(302, [(b"Location", b"/x\xff\x01"), (b"Content-Length", b"0")])),))
    result = await send(client, hostile, redirect)
    assert result.error_class == "redirect"
    assert result.error == "HTTP 302: redirect to '/x\ufffd\ufffd' not followed"


async def test_a_nul_in_a_header_is_an_invalid_response(
    client: WebhookClient, hostile: HostileReceiver
) -> None:
    reply = Reply((Send(http_head(200, [(b"Location", b"/x\x00\xff"), (b"Content-Length", b"0")])),))
    result = await send(client, hostile, reply)
    assert (result.ok, result.status_code, result.error_class) == (False, None, "invalid_response")


async def test_no_compression_is_asked_for_and_a_compressed_body_is_noted(
    client: WebhookClient, hostile: HostileReceiver
) -> None:
    body = gzip.compress(b"upstream unavailable")
    reply = http_reply(503, body=body, headers=[(b"Content-Encoding", b"gzip")])
    result = await send(client, hostile, reply)
    assert hostile.arrivals[-1].head.lower().count(b"accept-encoding: identity") == 1
    assert result.response_body == "[gzip-encoded body, not decoded]"
    assert result.error == "HTTP 503: [gzip-encoded body, not decoded]"

    await send(client, hostile, reply, request=RequestSpec(headers={"accept-encoding": "gzip"}))
    head = hostile.arrivals[-1].head.lower()
    assert head.count(b"accept-encoding") == 1
    assert b"accept-encoding: gzip" in head


@pytest.mark.parametrize(
    ("body", "then", "excerpt_starts"),
    [
        (b"", Reset(), "[body cut short: "),
        (b"", Wait(5.0), "[body cut short: timeout"),
        (b"partial", Reset(), "partial [body cut short: "),
        (b"partial", Wait(5.0), "partial [body cut short: timeout"),
    ],
    ids=["reset", "stall", "partial-reset", "partial-stall"],
)
async def test_a_2xx_whose_body_then_fails_is_delivered(
    client: WebhookClient, hostile: HostileReceiver, body: bytes, then: Reset | Wait, excerpt_starts: str
) -> None:
    """Headers with Content-Length: 100, then the body breaks off: the receiver has the webhook."""
    reply = Reply((Send(http_head(200, [(b"Content-Length", b"100")]) + body), then))
    result = await send(client, hostile, reply)
    assert (result.ok, result.status_code, result.error, result.error_class) == (True, 200, None, None)
    assert result.response_body is not None
    assert result.response_body.startswith(excerpt_starts), result.response_body
    assert result.duration_ms < (TIMEOUT + SLACK) * 1000


async def test_garbage_instead_of_http_is_an_invalid_response(
    client: WebhookClient, hostile: HostileReceiver
) -> None:
    result = await send(client, hostile, Reply((Send(b"\x00\xffSSH-2.0-OpenSSH\r\n\r\n"),)))
    assert (result.ok, result.status_code, result.error_class) == (False, None, "invalid_response")
    assert result.retryable
    assert result.error is not None
    assert result.error.startswith("invalid response: ")


async def test_a_reset_before_the_status_line_is_a_connection_failure(
    client: WebhookClient, hostile: HostileReceiver
) -> None:
    result = await send(client, hostile, Reply((Reset(),)))
    assert (result.ok, result.status_code, result.error_class, result.retryable) == (
        False,
        None,
        "connection",
        True,
    )


async def test_a_retry_after_in_other_digits_is_ignored(
    client: WebhookClient, hostile: HostileReceiver
) -> None:
    # 'superscript two' is a digit to str.isdigit() but not to float().
    result = await send(client, hostile, http_reply(503, headers=[(b"Retry-After", "\u00b2".encode())]))
    assert result.status_code == 503
    assert result.retry_after_seconds is None


@hostile_settings(default_examples=40)
@given(reply=replies())
async def test_any_reply_gives_a_storable_result_within_the_timeout(
    client: WebhookClient, hostile: HostileReceiver, reply: Reply
) -> None:
    result = await send(client, hostile, reply)
    event(f"{result.error_class or 'delivered'} {result.status_code}")
    assert isinstance(result, DeliveryResult)
    assert result.duration_ms < (TIMEOUT + SLACK) * 1000
    assert result.response_body is None or len(result.response_body) <= RESPONSE_BODY_LIMIT
    if result.ok:
        assert result.status_code is not None
        assert 200 <= result.status_code < 300
    else:
        assert result.error
        assert result.error_class
