"""What a timer carries, over HTTP on a real PostgreSQL (nothing fires): labels, the request it
sends (method, headers, body) and its retry policy; stored, shown, and refused when invalid."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest

from task_scheduler.timers.service import REDACTED
from tests.support.api import TEST_RETRY_DEFAULTS, URL, assert_envelope, create, view
from tests.support.app import SharedApp
from tests.support.databases import timer_count

# -- labels -------------------------------------------------------------------------------------


async def test_labels_are_stored_and_returned(own: httpx.AsyncClient) -> None:
    labels = {f"k{i}": f"v{i}" for i in range(17)}
    labels["a" * 63] = "x" * 255  # longest key and value
    labels["team.b-c_d/e"] = "é 😀 : ,"
    labels["empty"] = ""
    assert len(labels) == 20
    timer_id = await create(own, seconds=60, labels=labels)
    assert (await view(own, timer_id))["labels"] == labels


@pytest.mark.parametrize(
    "labels",
    [
        {"": "x"},
        {"-a": "x"},
        {"_a": "x"},
        {"a b": "x"},
        {"a:b": "x"},
        {"ü": "x"},
        {"a" * 64: "x"},
        {f"k{i}": "v" for i in range(21)},
        {"k": "x" * 256},
        {"k": 1},
        {"k": None},
        {"k": ["v"]},
        ["k", "v"],
        "k:v",
    ],
    ids=[
        "empty-key",
        "dash-first",
        "underscore-first",
        "space",
        "colon",
        "non-ascii",
        "key-64",
        "21-labels",
        "value-256",
        "value-number",
        "value-null",
        "value-list",
        "list",
        "string",
    ],
)
async def test_invalid_labels_are_422(
    rejecting: SharedApp, nothing_created: Callable[[], Awaitable[None]], labels: Any
) -> None:
    response = await rejecting.client.post("/timer", json={"labels": labels, "url": URL})
    error = assert_envelope(response, 422)
    assert error["field"] == "labels" or error["field"].startswith("labels."), error
    assert "labels" in error["message"]
    await nothing_created()


async def test_nul_in_a_label_value_is_422_not_500(
    rejecting: SharedApp, nothing_created: Callable[[], Awaitable[None]]
) -> None:
    response = await rejecting.client.post("/timer", json={"labels": {"k": "a\x00b"}, "url": URL})
    assert_envelope(response, 422, field="labels")
    await nothing_created()


# -- method, headers and body -------------------------------------------------------------------


async def test_method_headers_and_body_are_stored_and_shown(own: httpx.AsyncClient) -> None:
    headers = {"X-Tenant": "acme", "Content-Type": "application/vnd.acme+json", "Accept": "*/*"}
    body = {"reminder": "dinner", "items": [1, 2.5, None, True, {"nested": "é"}]}
    timer_id = await create(own, seconds=60, method="PUT", headers=headers, body=body)
    shown = await view(own, timer_id)
    assert shown["method"] == "PUT"
    assert shown["headers"] == headers
    assert shown["body"] == body


async def test_every_supported_method_is_kept(own: httpx.AsyncClient) -> None:
    for method in ("POST", "GET", "PUT", "PATCH", "DELETE"):
        assert (await view(own, await create(own, method=method)))["method"] == method


async def test_text_and_json_bodies_round_trip(own: httpx.AsyncClient) -> None:
    bodies: list[Any] = [
        "plain text",
        "",
        "é 😀\n\ttabs",
        '{"looks": "like json"}',
        {},
        [],
        [1, "two", None],
        0,
        3.5,
        False,
        True,
        {"a": {"b": {"c": [1, {"d": None}]}}},
    ]
    for body in bodies:
        shown = await view(own, await create(own, seconds=60, body=body))
        assert shown["body"] == body
        assert type(shown["body"]) is type(body), body


@pytest.mark.parametrize("method", ["post", "TRACE", "CONNECT", "OPTIONS", "HEAD", "", 1, ["POST"]])
async def test_invalid_method_is_422(
    rejecting: SharedApp, nothing_created: Callable[[], Awaitable[None]], method: Any
) -> None:
    response = await rejecting.client.post("/timer", json={"method": method, "url": URL})
    assert_envelope(response, 422, field="method")
    await nothing_created()


@pytest.mark.parametrize(
    "name",
    [
        "Connection",
        "connection",
        "Keep-Alive",
        "Transfer-Encoding",
        "TE",
        "Trailer",
        "Upgrade",
        "Proxy-Authorization",
        "Host",
        "HOST",
        "Content-Length",
        "User-Agent",
        "user-agent",
        "webhook-id",
        "Webhook-Signature",
        "webhook-timestamp",
        "X-Timer-Id",
        "x-timer-attempt",
    ],
)
async def test_hop_by_hop_computed_and_service_headers_are_422(
    rejecting: SharedApp, nothing_created: Callable[[], Awaitable[None]], name: str
) -> None:
    response = await rejecting.client.post("/timer", json={"headers": {name: "x"}, "url": URL})
    error = assert_envelope(response, 422, field="headers")
    assert name in error["message"]
    await nothing_created()


@pytest.mark.parametrize(
    "headers",
    [
        {"": "x"},
        {"X Tenant": "x"},
        {"X-Tenant:": "x"},
        {"X-Ü": "x"},
        {"X-Tenant": "a\r\nX-Injected: 1"},
        {"X-Tenant": "a\x00"},
        {"X-Tenant": "x" * 8193},
        {"X-Tenant": "a", "x-tenant": "b"},
        {f"X-H{i}": "v" for i in range(51)},
        {"X-Tenant": 1},
        {"X-Tenant": None},
    ],
    ids=[
        "empty-name",
        "space-in-name",
        "colon-in-name",
        "non-ascii-name",
        "crlf-injection",
        "nul",
        "value-8193",
        "duplicate-any-case",
        "51-headers",
        "value-number",
        "value-null",
    ],
)
async def test_malformed_headers_are_422(
    rejecting: SharedApp, nothing_created: Callable[[], Awaitable[None]], headers: Any
) -> None:
    response = await rejecting.client.post("/timer", json={"headers": headers, "url": URL})
    error = assert_envelope(response, 422)
    assert error["field"] == "headers" or error["field"].startswith("headers."), error
    await nothing_created()


async def test_sensitive_header_values_are_redacted_wherever_shown(
    api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    secret = {
        "Authorization": "Bearer s3cret",
        "Cookie": "session=s3cret",
        "X-Api-Key": "s3cret",
        "x-auth-token": "s3cret",
        "X-Client-Secret": "s3cret",
    }
    plain = {"X-Tenant": "acme", "Accept": "application/json"}
    timer_id = await create(api, seconds=600, headers={**secret, **plain})
    expected = {**dict.fromkeys(secret, REDACTED), **plain}

    fetched = await api.get(f"/timer/{timer_id}")
    listed = (await api.get("/timers")).json()["timers"]
    edited = await api.patch(f"/timer/{timer_id}", json={"labels": {"a": "b"}})
    cancelled = await api.delete(f"/timer/{timer_id}")
    for shown in (fetched.json(), listed[0], edited.json(), cancelled.json()):
        assert shown["headers"] == expected
    for response in (fetched, edited, cancelled):
        assert "s3cret" not in response.text
    # Only the display is redacted: the stored headers are what the webhook will carry.
    stored = json.loads(await db.fetchval("SELECT headers FROM timers WHERE id = $1", timer_id))
    assert stored == {**secret, **plain}


async def test_body_size_limit(custom_api: Callable[..., Any], db: asyncpg.Connection) -> None:
    accepted: list[Any] = [
        "x" * 1024,
        "é" * 512,  # 1024 UTF-8 bytes
        {"a": "x" * 1016},  # {"a":"…"} compact is 1024 bytes
    ]
    refused: list[Any] = ["x" * 1025, "é" * 513, {"a": "x" * 1017}, ["x" * 600, "y" * 600]]
    async with custom_api(max_webhook_body_bytes=1024) as client:
        for body in refused:
            response = await client.post("/timer", json={"body": body, "url": URL})
            error = assert_envelope(response, 422, field="body")
            assert "1024" in error["message"]
        timer_id = await create(client, seconds=600)
        response = await client.patch(f"/timer/{timer_id}", json={"body": refused[0]})
        assert_envelope(response, 422, field="body")
        assert await timer_count(db) == 1
        for body in accepted:
            assert (await view(client, await create(client, body=body)))["body"] == body


@pytest.mark.parametrize("body", ["a\x00b", {"k\x00": 1}, {"k": "\x00"}], ids=["text", "key", "value"])
async def test_nul_in_the_body_is_422_not_500(
    rejecting: SharedApp, nothing_created: Callable[[], Awaitable[None]], body: Any
) -> None:
    response = await rejecting.client.post("/timer", json={"body": body, "url": URL})
    assert_envelope(response, 422, field="body")
    await nothing_created()


# -- retry policy -------------------------------------------------------------------------------


async def test_retry_policy_is_stored_and_shown(own: httpx.AsyncClient) -> None:
    policies: list[dict[str, float]] = [
        {"max_attempts": 3, "backoff_base_seconds": 1, "backoff_cap_seconds": 30.5, "timeout_seconds": 4.5},
        {"max_attempts": 100, "backoff_base_seconds": 7, "backoff_cap_seconds": 7, "timeout_seconds": 0.1},
    ]
    for policy in policies:
        shown = await view(own, await create(own, seconds=60, retry=policy))
        assert shown["retry"] == policy


async def test_omitted_retry_fields_take_the_defaults(own: httpx.AsyncClient) -> None:
    partials: list[dict[str, float]] = [
        {"max_attempts": 1},
        {"backoff_base_seconds": 0.1},
        {"backoff_cap_seconds": 100},
        {"timeout_seconds": 0.1},
        {},
    ]
    for partial in partials:
        shown = await view(own, await create(own, seconds=60, retry=partial))
        assert shown["retry"] == {**TEST_RETRY_DEFAULTS, **partial}


@pytest.mark.parametrize(
    ("retry", "field"),
    [
        ({"max_attempts": 0}, "retry.max_attempts"),
        ({"max_attempts": 101}, "retry.max_attempts"),
        ({"max_attempts": 1.5}, "retry.max_attempts"),
        ({"max_attempts": "3"}, "retry.max_attempts"),
        ({"backoff_base_seconds": 0}, "retry.backoff_base_seconds"),
        ({"backoff_base_seconds": "1"}, "retry.backoff_base_seconds"),
        ({"backoff_base_seconds": 86_401}, "retry.backoff_base_seconds"),
        ({"backoff_cap_seconds": 604_801}, "retry.backoff_cap_seconds"),
        ({"timeout_seconds": 0.05}, "retry.timeout_seconds"),
        ({"timeout_seconds": 3601}, "retry.timeout_seconds"),
        ({"timeout_seconds": 60}, "retry.timeout_seconds"),  # the lease (default 60 s)
        ({"timeout_seconds": 61}, "retry.timeout_seconds"),
        ({"attempts": 3}, "retry.attempts"),
        ({"backoff_base_seconds": 10, "backoff_cap_seconds": 5}, "retry"),
    ],
)
async def test_retry_policy_out_of_bounds_is_422(
    rejecting: SharedApp,
    nothing_created: Callable[[], Awaitable[None]],
    retry: dict[str, Any],
    field: str,
) -> None:
    response = await rejecting.client.post("/timer", json={"retry": retry, "url": URL})
    error = assert_envelope(response, 422, field=field)
    if "backoff_cap_seconds" in retry and "backoff_base_seconds" in retry:
        assert "backoff_cap_seconds" in error["message"]
    await nothing_created()


async def test_timeout_must_be_below_the_configured_lease(
    api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    # make_settings leases for 5 s.
    for timeout in (5, 5.0, 6):
        response = await api.post("/timer", json={"retry": {"timeout_seconds": timeout}, "url": URL})
        error = assert_envelope(response, 422, field="retry.timeout_seconds")
        assert "lease" in error["message"]
    assert await timer_count(db) == 0
    await create(api, retry={"timeout_seconds": 4.9})
