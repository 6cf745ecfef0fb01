"""The signature wire format end to end: real signed HTTP requests to a real receiver on
127.0.0.1 that verifies them with the reference `standardwebhooks` library, as a customer would."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from task_scheduler.delivery.signing import WebhookSigner, generate_secret

OLD_SECRET = generate_secret()
NEW_SECRET = generate_secret()
BODY = json.dumps(
    {"timer_id": 42, "due_at": "2024-01-01T00:00:00+00:00", "attempt": 1},
    separators=(",", ":"),
).encode()


@dataclass(frozen=True)
class Answer:
    status: int
    reason: str


async def _verify(request: web.Request) -> web.Response:
    """A receiver whose endpoint secret is named by the path: /old or /new."""
    secret = {"old": OLD_SECRET, "new": NEW_SECRET}[request.match_info["secret"]]
    body = await request.read()
    try:
        Webhook(secret).verify(body, dict(request.headers))
    except WebhookVerificationError as exc:
        return web.Response(status=400, text=str(exc))
    return web.Response(status=204)


@pytest.fixture
async def receiver_url() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/{secret:old|new}", _verify)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def _post(
    url: str, *, secrets: Sequence[str], signed_body: bytes, sent_body: bytes | None = None
) -> Answer:
    """POSTs `sent_body` (default: `signed_body`) with headers signed over `signed_body`."""
    headers = WebhookSigner(secrets).headers(
        msg_id="msg_0123456789abcdef0123456789abcdef",
        timestamp=int(time.time()),
        body=signed_body,
    )
    headers["Content-Type"] = "application/json"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=signed_body if sent_body is None else sent_body, headers=headers) as response,
    ):
        return Answer(response.status, await response.text())


async def test_a_signed_request_is_accepted(receiver_url: str) -> None:
    answer = await _post(f"{receiver_url}/new", secrets=[NEW_SECRET], signed_body=BODY)
    assert answer == Answer(204, "")


@pytest.mark.parametrize("endpoint", ["old", "new"])
async def test_during_rotation_both_the_old_and_the_new_secret_verify(
    receiver_url: str, endpoint: str
) -> None:
    answer = await _post(f"{receiver_url}/{endpoint}", secrets=[OLD_SECRET, NEW_SECRET], signed_body=BODY)
    assert answer == Answer(204, "")


async def test_a_tampered_body_is_refused(receiver_url: str) -> None:
    tampered = BODY.replace(b'"attempt":1', b'"attempt":2')
    assert tampered != BODY
    answer = await _post(f"{receiver_url}/new", secrets=[NEW_SECRET], signed_body=BODY, sent_body=tampered)
    assert answer == Answer(400, "No matching signature found")


async def test_a_request_signed_with_another_secret_is_refused(receiver_url: str) -> None:
    answer = await _post(f"{receiver_url}/new", secrets=[OLD_SECRET], signed_body=BODY)
    assert answer == Answer(400, "No matching signature found")


async def test_an_unsigned_request_is_refused(receiver_url: str) -> None:
    answer = await _post(f"{receiver_url}/new", secrets=[], signed_body=BODY)
    assert answer == Answer(400, "Missing required headers")
