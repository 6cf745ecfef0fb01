"""The timer lifecycle over HTTP on a real PostgreSQL, without the dispatcher (nothing fires):
absolute times, what is sent, lateness, retry policy, cancel, edit, redrive, attempts, listing,
idempotent creation and batches.

States the dispatcher would reach (firing, delivered, failed, expired) are set with plain SQL,
on a fresh database per test (`api` and `db`), as are tests that count or list timers.
Requests that must be rejected share one app per module (`rejecting`, `short_horizon`) and check
that they created nothing; tests that only create timers and read back their own share another
(`own`), so ~200 cases do not each pay for a database.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import asyncpg
import httpx
import pytest

from task_scheduler.timers.service import PAST_FIRE_AT_NOTE, REDACTED, etag_of
from tests.support.api import (
    SHORT_HORIZON,
    TEST_RETRY_DEFAULTS,
    URL,
    assert_envelope,
    create,
    in_seconds,
    view,
    when,
    without_time_left,
)
from tests.support.app import SharedApp, app_on_own_database
from tests.support.databases import set_status, timer_count

# make_settings' retry and lease values, also given to the module-scoped `own` app.
FAST_RETRY_SETTINGS = {
    "backoff_base_seconds": 0.05,
    "backoff_cap_seconds": 0.2,
    "connect_timeout_seconds": 1.0,
    "request_timeout_seconds": 2.0,
    "lease_seconds": 5.0,
}


def cursor_of(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def rejecting(pg_server_url: str, template_url: str) -> AsyncIterator[SharedApp]:
    """An app (default settings) that only receives requests that must not create a timer."""
    async with app_on_own_database(pg_server_url) as shared:
        yield shared


@pytest.fixture(scope="module")
async def own_timers_app(pg_server_url: str, template_url: str) -> AsyncIterator[SharedApp]:
    """An app for tests that create timers and read back only their own (no counts, no lists)."""
    async with app_on_own_database(pg_server_url, **FAST_RETRY_SETTINGS) as shared:
        yield shared


@pytest.fixture
def own(own_timers_app: SharedApp) -> httpx.AsyncClient:
    return own_timers_app.client


@pytest.fixture(scope="module")
async def short_horizon(pg_server_url: str, template_url: str) -> AsyncIterator[SharedApp]:
    """Like `rejecting`, with a one-hour horizon."""
    async with app_on_own_database(pg_server_url, max_horizon_seconds=SHORT_HORIZON) as shared:
        yield shared


@pytest.fixture
async def nothing_created(rejecting: SharedApp, short_horizon: SharedApp) -> Callable[[], Awaitable[None]]:
    """Call at the end of a test: asserts that no shared app gained a timer."""
    before = (await rejecting.timer_count(), await short_horizon.timer_count())

    async def check() -> None:
        assert (await rejecting.timer_count(), await short_horizon.timer_count()) == before

    return check


# -- fire_at ------------------------------------------------------------------------------------


async def test_fire_at_with_an_offset_sets_the_due_time(own: httpx.AsyncClient) -> None:
    for fire_at in (
        in_seconds(3600, timezone(timedelta(hours=2))),
        in_seconds(3600, timezone(-timedelta(hours=9, minutes=30))),
        in_seconds(3600).replace("+00:00", "Z"),
    ):
        response = await own.post("/timer", json={"fire_at": fire_at, "url": URL})
        assert response.status_code == 201, response.text
        created = response.json()
        assert set(created) == {"timer_id", "time_left"}
        assert 3590 <= created["time_left"] <= 3600
        shown = await view(own, created["timer_id"])
        assert when(shown["due_at"]) == when(fire_at)


async def test_fire_at_in_the_past_fires_now_with_a_note(own: httpx.AsyncClient) -> None:
    fire_at = in_seconds(-60)
    response = await own.post("/timer", json={"fire_at": fire_at, "url": URL})
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["time_left"] == 0
    assert created["note"] == PAST_FIRE_AT_NOTE
    assert "fires now" in created["note"]
    shown = await view(own, created["timer_id"])
    assert shown["time_left"] == 0
    assert shown["status"] == "pending"
    assert when(shown["due_at"]) == when(fire_at)


async def test_a_plain_timer_takes_every_default(own: httpx.AsyncClient) -> None:
    response = await own.post("/timer", json={"seconds": 30, "url": URL})
    assert response.status_code == 201
    assert "note" not in response.json()
    shown = await view(own, response.json()["timer_id"])
    assert (shown["method"], shown["headers"], shown["body"]) == ("POST", {}, None)
    assert shown["labels"] == {}
    assert shown["deliver_before"] is None
    assert shown["retry"] == TEST_RETRY_DEFAULTS


@pytest.mark.parametrize("fire_at", ["2030-01-01T00:00:00", "2030-01-01 00:00:00", "2030-01-01T00:00:00.5"])
async def test_naive_fire_at_is_422(
    rejecting: SharedApp, nothing_created: Callable[[], Awaitable[None]], fire_at: str
) -> None:
    response = await rejecting.client.post("/timer", json={"fire_at": fire_at, "url": URL})
    assert_envelope(response, 422, field="fire_at")
    await nothing_created()


@pytest.mark.parametrize(
    "fire_at",
    [1893456000, 1893456000.5, True, ["2030-01-01T00:00:00Z"], {"at": "2030-01-01T00:00:00Z"}, ""],
    ids=["int", "float", "bool", "list", "object", "empty"],
)
async def test_fire_at_that_is_not_a_string_is_422(
    rejecting: SharedApp, nothing_created: Callable[[], Awaitable[None]], fire_at: Any
) -> None:
    response = await rejecting.client.post("/timer", json={"fire_at": fire_at, "url": URL})
    assert_envelope(response, 422, field="fire_at")
    await nothing_created()


@pytest.mark.parametrize(
    ("field", "value"),
    [("fire_at", "0001-01-01T00:00:00+01:00"), ("deliver_before", "9999-12-31T23:59:59-01:00")],
    ids=["fire_at-before-year-1-in-utc", "deliver_before-after-year-9999-in-utc"],
)
async def test_times_outside_what_postgresql_holds_are_not_500(
    rejecting: SharedApp, field: str, value: str
) -> None:
    response = await rejecting.client.post("/timer", json={field: value, "url": URL})
    assert response.status_code in (201, 422), response.text


async def test_fire_at_epoch_seconds_as_text_is_422(
    rejecting: SharedApp, nothing_created: Callable[[], Awaitable[None]]
) -> None:
    response = await rejecting.client.post("/timer", json={"fire_at": "1893456000", "url": URL})
    assert_envelope(response, 422, field="fire_at")
    await nothing_created()


@pytest.mark.parametrize("unit", ["hours", "minutes", "seconds"])
async def test_fire_at_with_a_duration_is_422(
    rejecting: SharedApp, nothing_created: Callable[[], Awaitable[None]], unit: str
) -> None:
    response = await rejecting.client.post("/timer", json={"fire_at": in_seconds(600), unit: 0, "url": URL})
    error = assert_envelope(response, 422)
    assert "fire_at" in error["message"]
    assert unit in error["message"]
    assert "not both" in error["message"]
    await nothing_created()


async def test_fire_at_beyond_the_horizon_is_422(
    short_horizon: SharedApp, nothing_created: Callable[[], Awaitable[None]]
) -> None:
    response = await short_horizon.client.post(
        "/timer", json={"fire_at": in_seconds(SHORT_HORIZON + 60), "url": URL}
    )
    error = assert_envelope(response, 422, field="fire_at")
    assert str(SHORT_HORIZON) in error["message"]
    await nothing_created()


async def test_fire_at_inside_the_horizon_is_accepted(custom_api: Callable[..., Any]) -> None:
    async with custom_api(max_horizon_seconds=SHORT_HORIZON) as client:
        response = await client.post("/timer", json={"fire_at": in_seconds(SHORT_HORIZON - 60), "url": URL})
    assert response.status_code == 201, response.text


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


# -- deliver_before and max_lateness_seconds ----------------------------------------------------


async def test_max_lateness_sets_deliver_before_from_the_due_time(own: httpx.AsyncClient) -> None:
    for lateness in (300, 0, 0.5):
        shown = await view(own, await create(own, seconds=60, max_lateness_seconds=lateness))
        assert when(shown["deliver_before"]) == when(shown["due_at"]) + timedelta(seconds=lateness)


async def test_deliver_before_is_stored(api: httpx.AsyncClient) -> None:
    deliver_before = in_seconds(7200)
    shown = await view(api, await create(api, seconds=60, deliver_before=deliver_before))
    assert when(shown["deliver_before"]) == when(deliver_before)


async def test_deliver_before_and_max_lateness_together_are_422(
    rejecting: SharedApp, nothing_created: Callable[[], Awaitable[None]]
) -> None:
    response = await rejecting.client.post(
        "/timer",
        json={"deliver_before": in_seconds(7200), "max_lateness_seconds": 10, "url": URL},
    )
    error = assert_envelope(response, 422)
    assert "deliver_before" in error["message"]
    assert "max_lateness_seconds" in error["message"]
    await nothing_created()


async def test_deliver_before_earlier_than_the_due_time_is_422(
    rejecting: SharedApp, nothing_created: Callable[[], Awaitable[None]]
) -> None:
    response = await rejecting.client.post(
        "/timer", json={"seconds": 600, "deliver_before": in_seconds(60), "url": URL}
    )
    error = assert_envelope(response, 422, field="deliver_before")
    assert "earlier than the due time" in error["message"]
    await nothing_created()


@pytest.mark.parametrize(
    "lateness",
    [
        -1,
        -0.5,
        ("10"),
        (True),
        ([10]),
    ],
)
async def test_invalid_max_lateness_is_422(
    rejecting: SharedApp, nothing_created: Callable[[], Awaitable[None]], lateness: Any
) -> None:
    response = await rejecting.client.post("/timer", json={"max_lateness_seconds": lateness, "url": URL})
    assert_envelope(response, 422, field="max_lateness_seconds")
    await nothing_created()


@pytest.mark.parametrize("lateness", [10**30, 1e300, 3e11], ids=["1e30", "1e300", "9500-years"])
async def test_absurd_max_lateness_is_422_not_500(
    rejecting: SharedApp, nothing_created: Callable[[], Awaitable[None]], lateness: float
) -> None:
    response = await rejecting.client.post("/timer", json={"max_lateness_seconds": lateness, "url": URL})
    assert_envelope(response, 422, field="max_lateness_seconds")
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


# -- DELETE /timer/{id} -------------------------------------------------------------------------


async def test_cancel_a_pending_timer(api: httpx.AsyncClient) -> None:
    timer_id = await create(api, seconds=600)
    response = await api.delete(f"/timer/{timer_id}")
    assert response.status_code == 200, response.text
    cancelled = response.json()
    assert cancelled["timer_id"] == timer_id
    assert cancelled["status"] == "cancelled"
    shown = await view(api, timer_id)
    assert shown["status"] == "cancelled"
    assert shown["updated_at"] == cancelled["updated_at"]
    assert shown["due_at"] == cancelled["due_at"]


async def test_cancel_twice_is_409(api: httpx.AsyncClient) -> None:
    timer_id = await create(api, seconds=600)
    assert (await api.delete(f"/timer/{timer_id}")).status_code == 200
    error = assert_envelope(await api.delete(f"/timer/{timer_id}"), 409)
    assert error["code"] == "conflict"
    assert error["field"] == "status"
    assert "cancelled" in error["message"]


async def test_unknown_timer_is_404_for_every_action(api: httpx.AsyncClient) -> None:
    timer_id = await create(api, seconds=600)
    unknown = f"/timer/{timer_id + 1}"
    responses = [
        await api.delete(unknown),
        await api.patch(unknown, json={"minutes": 1}),
        await api.patch(unknown, json={"minutes": 1}, headers={"If-Match": '"1"'}),
        await api.post(f"{unknown}/retry"),
        await api.get(f"{unknown}/attempts"),
    ]
    for response in responses:
        error = assert_envelope(response, 404)
        assert error["code"] == "not_found"
        assert error["field"] == "timer_id"
        assert str(timer_id + 1) in error["message"]
    shown = await view(api, timer_id)
    assert (shown["status"], shown["time_left"] > 590) == ("pending", True)


async def test_cancel_is_409_unless_pending(api: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    for status in ("firing", "delivered", "failed", "expired"):
        timer_id = await create(api, seconds=600)
        await set_status(db, timer_id, status)
        error = assert_envelope(await api.delete(f"/timer/{timer_id}"), 409)
        assert error["field"] == "status"
        assert status in error["message"]
        assert (await view(api, timer_id))["status"] == status


@pytest.mark.parametrize("timer_id", ["0", "-1", "abc", str(2**63)])
async def test_cancel_invalid_id_is_422(
    rejecting: SharedApp, nothing_created: Callable[[], Awaitable[None]], timer_id: str
) -> None:
    assert_envelope(await rejecting.client.delete(f"/timer/{timer_id}"), 422, field="timer_id")
    await nothing_created()


# -- PATCH /timer/{id} --------------------------------------------------------------------------


async def test_patch_minutes_reschedules_from_now(own: httpx.AsyncClient) -> None:
    timer_id = await create(own, hours=1)
    before = await view(own, timer_id)
    response = await own.patch(f"/timer/{timer_id}", json={"minutes": 10})
    assert response.status_code == 200, response.text
    after = response.json()
    assert 590 <= after["time_left"] <= 600
    assert when(after["due_at"]) < when(before["due_at"])
    assert when(after["updated_at"]) > when(before["updated_at"])
    assert (await view(own, timer_id))["due_at"] == after["due_at"]
    # Rescheduling from now: due_at - updated_at is the new duration, to the microsecond.
    assert when(after["due_at"]) - when(after["updated_at"]) == timedelta(minutes=10)

    now = (await own.patch(f"/timer/{timer_id}", json={"seconds": 0})).json()
    assert (now["time_left"], now["status"]) == (0, "pending")


async def test_patch_fire_at_reschedules(api: httpx.AsyncClient) -> None:
    timer_id = await create(api, hours=1)
    fire_at = in_seconds(7200, timezone(timedelta(hours=-5)))
    response = await api.patch(f"/timer/{timer_id}", json={"fire_at": fire_at})
    assert response.status_code == 200, response.text
    assert when(response.json()["due_at"]) == when(fire_at)


async def test_patch_edits_what_is_sent_and_keeps_the_due_time(own: httpx.AsyncClient) -> None:
    timer_id = await create(own, hours=1, labels={"a": "1", "b": "2"}, body={"v": 1})
    before = await view(own, timer_id)
    changes = {
        "url": "https://example.org/other",
        "method": "PUT",
        "labels": {"c": "3"},
        "body": "text now",
        "headers": {"X-Tenant": "acme"},
        "retry": {"max_attempts": 2},
    }
    response = await own.patch(f"/timer/{timer_id}", json=changes)
    assert response.status_code == 200, response.text
    shown = await view(own, timer_id)
    assert without_time_left(shown) == without_time_left(response.json())
    assert shown["url"] == changes["url"]
    assert shown["method"] == "PUT"
    assert shown["labels"] == {"c": "3"}  # replaced, not merged
    assert shown["body"] == "text now"
    assert shown["headers"] == {"X-Tenant": "acme"}
    assert shown["retry"] == {**TEST_RETRY_DEFAULTS, "max_attempts": 2}
    assert shown["due_at"] == before["due_at"]
    assert shown["delivery_id"] == before["delivery_id"]


async def test_patch_body_null_restores_the_default_body(own: httpx.AsyncClient) -> None:
    timer_id = await create(own, seconds=600, body={"custom": True})
    unrelated = await own.patch(f"/timer/{timer_id}", json={"labels": {"x": "y"}})
    assert unrelated.json()["body"] == {"custom": True}  # omitted: kept
    response = await own.patch(f"/timer/{timer_id}", json={"body": None})
    assert response.status_code == 200
    assert response.json()["body"] is None
    assert (await view(own, timer_id))["body"] is None


async def test_patch_null_clears_headers_labels_and_retry(own: httpx.AsyncClient) -> None:
    timer_id = await create(
        own, seconds=600, headers={"X-A": "1"}, labels={"k": "v"}, retry={"max_attempts": 9}
    )
    response = await own.patch(f"/timer/{timer_id}", json={"headers": None, "labels": None, "retry": None})
    assert response.status_code == 200
    shown = await view(own, timer_id)
    assert (shown["headers"], shown["labels"]) == ({}, {})
    assert shown["retry"] == TEST_RETRY_DEFAULTS


async def test_patch_max_lateness_counts_from_the_due_time(own: httpx.AsyncClient) -> None:
    timer_id = await create(own, seconds=600)
    kept = (await own.patch(f"/timer/{timer_id}", json={"max_lateness_seconds": 60})).json()
    assert when(kept["deliver_before"]) == when(kept["due_at"]) + timedelta(seconds=60)
    moved = (await own.patch(f"/timer/{timer_id}", json={"minutes": 20, "max_lateness_seconds": 30})).json()
    assert when(moved["due_at"]) > when(kept["due_at"])
    assert when(moved["deliver_before"]) == when(moved["due_at"]) + timedelta(seconds=30)


async def test_reschedule_never_leaves_deliver_before_earlier_than_due(
    own: httpx.AsyncClient,
) -> None:
    timer_id = await create(own, seconds=60, max_lateness_seconds=10)
    response = await own.patch(f"/timer/{timer_id}", json={"minutes": 10})
    if response.status_code == 200:
        shown = response.json()
        assert when(shown["deliver_before"]) >= when(shown["due_at"]), shown
    else:
        assert_envelope(response, 422)


async def test_patch_deliver_before_earlier_than_the_due_time_is_422(
    own: httpx.AsyncClient,
) -> None:
    timer_id = await create(own, hours=1)
    response = await own.patch(f"/timer/{timer_id}", json={"deliver_before": in_seconds(60)})
    assert_envelope(response, 422, field="deliver_before")


async def test_etag_on_get_and_patch_names_the_version(own: httpx.AsyncClient) -> None:
    timer_id = await create(own, seconds=600)
    fetched = await own.get(f"/timer/{timer_id}")
    etag = fetched.headers["etag"]
    assert re.fullmatch(r'"\d+"', etag)
    assert etag == etag_of(when(fetched.json()["updated_at"]))
    assert (await own.get(f"/timer/{timer_id}")).headers["etag"] == etag  # stable while unchanged
    patched = await own.patch(f"/timer/{timer_id}", json={"labels": {"v": "2"}})
    assert patched.headers["etag"] == etag_of(when(patched.json()["updated_at"]))
    assert patched.headers["etag"] != etag
    assert (await own.get(f"/timer/{timer_id}")).headers["etag"] == patched.headers["etag"]


async def test_if_match_with_the_current_etag_applies(own: httpx.AsyncClient) -> None:
    timer_id = await create(own, seconds=600)
    etag = (await own.get(f"/timer/{timer_id}")).headers["etag"]
    response = await own.patch(f"/timer/{timer_id}", json={"labels": {"v": "2"}}, headers={"If-Match": etag})
    assert response.status_code == 200, response.text
    assert response.headers["etag"] != etag
    assert response.json()["labels"] == {"v": "2"}


async def test_if_match_with_a_stale_etag_is_412_and_changes_nothing(
    own: httpx.AsyncClient,
) -> None:
    timer_id = await create(own, seconds=600)
    stale = (await own.get(f"/timer/{timer_id}")).headers["etag"]
    current = await own.patch(f"/timer/{timer_id}", json={"labels": {"v": "2"}})
    response = await own.patch(f"/timer/{timer_id}", json={"labels": {"v": "3"}}, headers={"If-Match": stale})
    error = assert_envelope(response, 412)
    assert error["code"] == "precondition_failed"
    assert error["field"] == "If-Match"
    shown = await own.get(f"/timer/{timer_id}")
    assert shown.json()["labels"] == {"v": "2"}
    assert shown.headers["etag"] == current.headers["etag"]


async def test_garbage_if_match_is_412(own: httpx.AsyncClient) -> None:
    timer_id = await create(own, seconds=600, labels={"v": "1"})
    for if_match in ("abc", '"abc"', '""', "W/", '"-1"', '"1.5"', '"1e6"', '"' + "9" * 19 + '"'):
        response = await own.patch(
            f"/timer/{timer_id}", json={"labels": {"v": "2"}}, headers={"If-Match": if_match}
        )
        error = assert_envelope(response, 412)
        assert error["field"] == "If-Match"
    assert (await view(own, timer_id))["labels"] == {"v": "1"}


async def test_if_match_with_a_superscript_digit_is_412_not_500(own: httpx.AsyncClient) -> None:
    timer_id = await create(own, seconds=600)
    response = await own.patch(
        f"/timer/{timer_id}", json={"labels": {"v": "2"}}, headers={b"If-Match": b'"\xb2"'}
    )
    assert_envelope(response, 412, field="If-Match")


async def test_if_match_with_a_list_including_the_current_etag_applies(
    own: httpx.AsyncClient,
) -> None:
    timer_id = await create(own, seconds=600)
    etag = (await own.get(f"/timer/{timer_id}")).headers["etag"]
    response = await own.patch(
        f"/timer/{timer_id}", json={"labels": {"v": "2"}}, headers={"If-Match": f'"1", {etag}'}
    )
    assert response.status_code == 200, response.text


async def test_if_match_star_applies(own: httpx.AsyncClient) -> None:
    timer_id = await create(own, seconds=600)
    response = await own.patch(f"/timer/{timer_id}", json={"labels": {"v": "2"}}, headers={"If-Match": "*"})
    assert response.status_code == 200, response.text
    assert response.json()["labels"] == {"v": "2"}


async def test_patch_is_409_unless_pending(api: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    for status in ("cancelled", "firing", "delivered", "failed", "expired"):
        timer_id = await create(api, seconds=600, labels={"v": "1"})
        etag = (await api.get(f"/timer/{timer_id}")).headers["etag"]
        await set_status(db, timer_id, status)
        for headers in ({}, {"If-Match": etag}, {"If-Match": "*"}):
            response = await api.patch(f"/timer/{timer_id}", json={"minutes": 1}, headers=headers)
            error = assert_envelope(response, 409)
            assert error["field"] == "status"
            assert status in error["message"]
        shown = await view(api, timer_id)
        assert (shown["status"], shown["labels"]) == (status, {"v": "1"})


async def test_invalid_patches_are_422_and_change_nothing(own: httpx.AsyncClient) -> None:
    timer_id = await create(own, seconds=600, labels={"v": "1"})
    before = await view(own, timer_id)
    cases: list[tuple[Any, str | None]] = [
        ({"url": "ftp://example.com/"}, "url"),
        ({"url": ""}, "url"),
        ({"hours": -1}, "hours"),
        ({"minutes": "5"}, "minutes"),
        ({"seconds": 10**12 * 2}, "seconds"),
        ({"hours": 100_000}, "hours"),  # beyond the ten-year horizon
        ({"status": "delivered"}, "status"),
        ({"timer_id": 5}, "timer_id"),
        ({"headers": {"Host": "evil"}}, "headers"),
        ({"labels": {"": "x"}}, "labels"),
        ({"method": "TRACE"}, "method"),
        ({"retry": {"max_attempts": 0}}, "retry.max_attempts"),
        ({"retry": {"timeout_seconds": 5}}, "retry.timeout_seconds"),
        ({"max_lateness_seconds": -1}, "max_lateness_seconds"),
        ({"fire_at": "2030-01-01T00:00:00"}, "fire_at"),
        ([], None),
        ("minutes", None),
    ]
    for body, field in cases:
        response = await own.patch(f"/timer/{timer_id}", json=body)
        error = assert_envelope(response, 422, field=field)
        if field is None:
            assert error["field"] is None
    assert without_time_left(await view(own, timer_id)) == without_time_left(before)


async def test_patch_with_an_empty_object_changes_no_field(own: httpx.AsyncClient) -> None:
    timer_id = await create(
        own, seconds=600, labels={"k": "v"}, headers={"X-A": "1"}, body=[1], max_lateness_seconds=5
    )
    before = await view(own, timer_id)
    response = await own.patch(f"/timer/{timer_id}", json={})
    assert response.status_code == 200, response.text
    after = response.json()
    ignored = {"time_left", "updated_at"}  # an empty PATCH still counts as an edit (new ETag)
    assert {k: v for k, v in after.items() if k not in ignored} == {
        k: v for k, v in before.items() if k not in ignored
    }
    assert response.headers["etag"] == etag_of(when(after["updated_at"]))


# -- POST /timer/{id}/retry ---------------------------------------------------------------------


async def test_redrive_a_failed_or_expired_timer(api: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    for status in ("failed", "expired"):
        timer_id = await create(api, seconds=600, max_lateness_seconds=5)
        await set_status(db, timer_id, status)
        await db.execute("UPDATE timers SET attempts = 3, last_error = 'HTTP 503' WHERE id = $1", timer_id)
        response = await api.post(f"/timer/{timer_id}/retry")
        assert response.status_code == 200, response.text
        redriven = response.json()
        assert redriven["status"] == "pending"
        assert redriven["time_left"] == 0
        assert redriven["deliver_before"] is None
        assert redriven["attempts"] == 3  # the history stays; the budget restarts from here
        budget_from = "SELECT attempts_before_redrive FROM timers WHERE id = $1"
        assert await db.fetchval(budget_from, timer_id) == 3
        shown = await view(api, timer_id)
        assert (shown["status"], shown["time_left"]) == ("pending", 0)


async def test_redrive_is_409_unless_failed_or_expired(
    api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    for status in ("pending", "firing", "delivered", "cancelled"):
        timer_id = await create(api, seconds=600)
        await set_status(db, timer_id, status)
        before = await view(api, timer_id)
        error = assert_envelope(await api.post(f"/timer/{timer_id}/retry"), 409)
        assert error["field"] == "status"
        assert status in error["message"]
        assert without_time_left(await view(api, timer_id)) == without_time_left(before)


# -- GET /timer/{id}/attempts -------------------------------------------------------------------


async def test_a_new_timer_has_no_attempts(own: httpx.AsyncClient) -> None:
    timer_id = await create(own, seconds=600)
    response = await own.get(f"/timer/{timer_id}/attempts")
    assert response.status_code == 200
    assert response.json() == {"attempts": []}


async def test_attempts_are_listed_in_order(api: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    timer_id = await create(api, seconds=600)
    other = await create(api, seconds=600)
    started = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
    rows = [
        (timer_id, 2, started + timedelta(seconds=5), 7.5, 200, None, None, "ok"),
        (timer_id, 1, started, 12.25, 503, "http_status", "HTTP 503", "busy"),
        (other, 1, started, 1.0, None, "timeout", "timed out", None),
    ]
    await db.executemany(
        "INSERT INTO timer_attempts (timer_id, attempt, started_at, duration_ms, status_code,"
        " error_class, error_message, response_body) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        rows,
    )
    attempts = (await api.get(f"/timer/{timer_id}/attempts")).json()["attempts"]
    assert [a["attempt"] for a in attempts] == [1, 2]
    assert attempts[0] == {
        "attempt": 1,
        "started_at": "2026-11-29T10:00:00Z",
        "duration_ms": 12.25,
        "status_code": 503,
        "error_class": "http_status",
        "error_message": "HTTP 503",
        "response_body": "busy",
    }
    assert (attempts[1]["status_code"], attempts[1]["error_class"]) == (200, None)


# -- GET /timers --------------------------------------------------------------------------------


async def list_ids(client: httpx.AsyncClient, **params: Any) -> list[int]:
    response = await client.get("/timers", params=params)
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["next_cursor"] is None, "use walk() for more than one page"
    return [t["timer_id"] for t in page["timers"]]


async def walk(client: httpx.AsyncClient, **params: Any) -> list[list[int]]:
    """Every page of a listing, following next_cursor."""
    pages: list[list[int]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/timers", params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append([t["timer_id"] for t in page["timers"]])
        cursor = page["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 100, "the cursor does not advance"


async def test_list_is_ordered_by_due_time_then_id(api: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    ids = [await create(api, seconds=60) for _ in range(6)]
    base = datetime(2027, 1, 1, tzinfo=UTC)
    offsets = [3, 1, 2, 1, 1, 0]  # several share a due time; ids break the tie
    for timer_id, offset in zip(ids, offsets, strict=True):
        await db.execute(
            "UPDATE timers SET due_at = $2 WHERE id = $1", timer_id, base + timedelta(hours=offset)
        )
    expected = [i for _, i in sorted(zip(offsets, ids, strict=True))]
    assert await list_ids(api) == expected
    assert expected == [ids[5], ids[1], ids[3], ids[4], ids[2], ids[0]]
    shown = (await api.get("/timers")).json()["timers"][0]
    assert without_time_left(shown) == without_time_left(await view(api, ids[5]))


async def test_a_batch_shares_one_due_time_and_lists_by_id(api: httpx.AsyncClient) -> None:
    later = await create(api, seconds=120)
    batch = await api.post("/timers/batch", json={"timers": [{"url": URL, "seconds": 60}] * 4})
    batch_ids = [t["timer_id"] for t in batch.json()["timers"]]
    listed = (await api.get("/timers")).json()["timers"]
    assert [t["timer_id"] for t in listed] == [*batch_ids, later]
    assert len({t["due_at"] for t in listed[:4]}) == 1


async def test_list_filters_by_status(api: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    pending, cancelled, failed, delivered = [await create(api, seconds=60) for _ in range(4)]
    await api.delete(f"/timer/{cancelled}")
    await set_status(db, failed, "failed")
    await set_status(db, delivered, "delivered")
    assert await list_ids(api, status="pending") == [pending]
    assert await list_ids(api, status="cancelled") == [cancelled]
    assert await list_ids(api, status="failed") == [failed]
    assert await list_ids(api, status="delivered") == [delivered]
    assert await list_ids(api, status="expired") == []
    assert await list_ids(api) == [pending, cancelled, failed, delivered]


async def test_list_filters_by_labels_all_of_them(api: httpx.AsyncClient) -> None:
    prod_a = await create(api, seconds=60, labels={"env": "prod", "team": "a"})
    prod_b = await create(api, seconds=61, labels={"env": "prod", "team": "b"})
    dev_a = await create(api, seconds=62, labels={"env": "dev", "team": "a", "x": "1"})
    with_colon = await create(api, seconds=63, labels={"link": "http://x:8080/"})
    await create(api, seconds=64)
    assert await list_ids(api, label="env:prod") == [prod_a, prod_b]
    assert await list_ids(api, label=["env:prod", "team:a"]) == [prod_a]
    assert await list_ids(api, label=["team:a"]) == [prod_a, dev_a]
    assert await list_ids(api, label=["env:prod", "team:c"]) == []
    assert await list_ids(api, label="env:staging") == []
    assert await list_ids(api, label="env:") == []
    assert await list_ids(api, label="link:http://x:8080/") == [with_colon]
    assert await list_ids(api, label="env:prod", status="cancelled") == []


async def test_list_filters_by_due_range(api: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    ids = [await create(api, seconds=60) for _ in range(3)]
    t0 = datetime(2027, 1, 1, tzinfo=UTC)
    for n, timer_id in enumerate(ids):
        await db.execute(
            "UPDATE timers SET due_at = $2 WHERE id = $1", timer_id, t0 + timedelta(seconds=10 * n)
        )
    t10 = (t0 + timedelta(seconds=10)).isoformat()
    t20 = (t0 + timedelta(seconds=20)).isoformat()
    assert await list_ids(api, due_after=t10) == ids[1:]  # inclusive
    assert await list_ids(api, due_before=t20) == ids[:2]  # exclusive
    assert await list_ids(api, due_after=t10, due_before=t20) == [ids[1]]
    # The same instant in another offset.
    assert await list_ids(api, due_after="2027-01-01T01:00:10+01:00") == ids[1:]
    assert await list_ids(api, due_after=t20, due_before=t10) == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"label": "nocolon"}, "label"),
        ({"label": ":value"}, "label"),
        ({"label": ["env:prod", "bad"]}, "label"),
        ({"status": "bogus"}, "status"),
        ({"status": "Pending"}, "status"),
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"due_after": "2027-01-01T00:00:00"}, "due_after"),
        ({"due_before": "tomorrow"}, "due_before"),
        ({"cursor": "!!!"}, "cursor"),
        ({"cursor": "bm90IGEgY3Vyc29y"}, "cursor"),  # "not a cursor"
        ({"cursor": cursor_of(["2027-01-01T00:00:00", 1])}, "cursor"),  # naive
        ({"cursor": cursor_of(["2027-01-01T00:00:00+00:00", "1"])}, "cursor"),
        ({"cursor": cursor_of(["2027-01-01T00:00:00+00:00"])}, "cursor"),
        ({"cursor": cursor_of({"due": "2027-01-01T00:00:00+00:00", "id": 1})}, "cursor"),
        ({"cursor": "a" * 201}, "cursor"),
    ],
)
async def test_invalid_list_parameters_are_422(
    rejecting: SharedApp, params: dict[str, Any], field: str
) -> None:
    response = await rejecting.client.get("/timers", params=params)
    assert_envelope(response, 422, field=field)


@pytest.mark.parametrize(
    "cursor",
    [
        cursor_of(["2027-01-01T00:00:00+00:00", 10**30]),
        cursor_of(["0001-01-01T00:00:00+01:00", 1]),
    ],
    ids=["id-beyond-bigint", "before-year-1-utc"],
)
async def test_out_of_range_cursor_is_422_not_500(rejecting: SharedApp, cursor: str) -> None:
    response = await rejecting.client.get("/timers", params={"cursor": cursor})
    assert_envelope(response, 422, field="cursor")


async def test_due_filter_before_year_one_is_not_500(rejecting: SharedApp) -> None:
    response = await rejecting.client.get("/timers", params={"due_after": "0001-01-01T00:00:00+01:00"})
    assert response.status_code in (200, 422), response.text


async def test_label_filter_with_nul_is_not_500(rejecting: SharedApp) -> None:
    response = await rejecting.client.get("/timers", params={"label": "k:\x00"})
    assert response.status_code in (200, 422), response.text


async def test_pagination_walks_every_timer_once_in_order(
    api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    # 25 timers: singles and batches, where each batch shares one due time.
    for seconds in (30, 90, 10, 50, 70):
        await create(api, seconds=seconds, labels={"group": "single"})
    for seconds in (40, 60, 20, 80):
        batch = [{"url": URL, "seconds": seconds, "labels": {"group": "batch"}}] * 5
        assert (await api.post("/timers/batch", json={"timers": batch})).status_code == 201
    expected = [r["id"] for r in await db.fetch("SELECT id FROM timers ORDER BY due_at, id")]
    assert len(expected) == 25

    pages = await walk(api, limit=7)
    assert [len(p) for p in pages] == [7, 7, 7, 4]
    assert [i for p in pages for i in p] == expected

    batch_only = await walk(api, limit=6, label="group:batch")
    assert [len(p) for p in batch_only] == [6, 6, 6, 2]
    flat = [i for p in batch_only for i in p]
    assert flat == [i for i in expected if i not in await list_ids(api, label="group:single")]

    assert await walk(api, limit=25) == [expected]  # an exactly full page has no next page
    assert await walk(api, limit=1000) == [expected]
    assert await walk(api) == [expected]  # default limit 100


async def test_pagination_skips_nothing_when_timers_are_added_behind_the_cursor(
    api: httpx.AsyncClient,
) -> None:
    first = [await create(api, seconds=100 + n) for n in range(4)]
    page = (await api.get("/timers", params={"limit": 2})).json()
    assert [t["timer_id"] for t in page["timers"]] == first[:2]
    earlier = await create(api, seconds=1)  # sorts before the cursor: not on later pages
    later = await create(api, seconds=1000)
    rest = await walk(api, limit=2, cursor=page["next_cursor"])
    assert [i for p in rest for i in p] == [*first[2:], later]
    assert earlier not in [i for p in rest for i in p]


# -- Idempotency-Key ----------------------------------------------------------------------------


async def test_same_key_and_request_returns_the_same_timer(
    api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    body = {"seconds": 600, "url": URL, "labels": {"k": "v"}}
    headers = {"Idempotency-Key": "order-42"}
    first = await api.post("/timer", json=body, headers=headers)
    assert first.status_code == 201, first.text
    again = await api.post("/timer", json=dict(reversed(body.items())), headers=headers)
    assert again.status_code == 200, again.text
    assert again.json()["timer_id"] == first.json()["timer_id"]
    assert set(again.json()) == {"timer_id", "time_left"}
    assert 590 <= again.json()["time_left"] <= 600
    assert again.headers["location"] == first.headers["location"]
    assert await timer_count(db) == 1


async def test_same_key_with_another_request_is_422(api: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    headers = {"Idempotency-Key": "order-42"}
    first = await api.post("/timer", json={"seconds": 600, "url": URL}, headers=headers)
    assert first.status_code == 201
    for other in ({"seconds": 601, "url": URL}, {"seconds": 600, "url": URL + "?x"}):
        response = await api.post("/timer", json=other, headers=headers)
        assert_envelope(response, 422, field="Idempotency-Key")
    assert await timer_count(db) == 1


async def test_different_keys_create_different_timers(api: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    body = {"seconds": 600, "url": URL}
    a = await api.post("/timer", json=body, headers={"Idempotency-Key": "a"})
    b = await api.post("/timer", json=body, headers={"Idempotency-Key": "b"})
    plain = await api.post("/timer", json=body)
    assert [r.status_code for r in (a, b, plain)] == [201, 201, 201]
    assert len({r.json()["timer_id"] for r in (a, b, plain)}) == 3
    assert await timer_count(db) == 3


async def test_concurrent_requests_with_one_key_create_one_timer(
    api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    body = {"seconds": 600, "url": URL}
    responses = await asyncio.gather(
        *(api.post("/timer", json=body, headers={"Idempotency-Key": "burst"}) for _ in range(10))
    )
    assert sorted(r.status_code for r in responses) == [200] * 9 + [201], [r.text for r in responses]
    assert len({r.json()["timer_id"] for r in responses}) == 1
    assert await timer_count(db) == 1


async def test_a_key_older_than_the_window_creates_a_new_timer(
    custom_api: Callable[..., Any], db: asyncpg.Connection
) -> None:
    body = {"seconds": 600, "url": URL}
    headers = {"Idempotency-Key": "short-lived"}
    async with custom_api(idempotency_window_seconds=1) as client:
        first = await client.post("/timer", json=body, headers=headers)
        assert (await client.post("/timer", json=body, headers=headers)).status_code == 200
        await asyncio.sleep(1.5)
        fresh = await client.post("/timer", json=body, headers=headers)
        assert fresh.status_code == 201, fresh.text
        assert fresh.json()["timer_id"] != first.json()["timer_id"]
        # The key now names the new timer, for a new window.
        replay = await client.post("/timer", json=body, headers=headers)
        assert (replay.status_code, replay.json()["timer_id"]) == (200, fresh.json()["timer_id"])
    assert await timer_count(db) == 2


@pytest.mark.parametrize("key", ["", "k" * 256])
async def test_invalid_idempotency_key_is_422(
    rejecting: SharedApp, nothing_created: Callable[[], Awaitable[None]], key: str
) -> None:
    response = await rejecting.client.post("/timer", json={"url": URL}, headers={"Idempotency-Key": key})
    error = assert_envelope(response, 422)
    assert error["field"].lower() == "idempotency-key"
    await nothing_created()


async def test_a_replay_repeats_the_past_fire_at_note(own: httpx.AsyncClient) -> None:
    body = {"fire_at": in_seconds(-60), "url": URL}
    headers = {"Idempotency-Key": "past"}
    first = await own.post("/timer", json=body, headers=headers)
    again = await own.post("/timer", json=body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()


# -- POST /timers/batch -------------------------------------------------------------------------


async def test_batch_creates_in_request_order(own: httpx.AsyncClient) -> None:
    timers = [
        {"seconds": 30, "url": "http://example.com/a"},
        {"minutes": 5, "url": "http://example.com/b", "labels": {"batch": "7"}},
        {"hours": 1, "url": "http://example.com/c", "method": "PUT", "body": "hi"},
    ]
    response = await own.post("/timers/batch", json={"timers": timers})
    assert response.status_code == 201, response.text
    created = response.json()["timers"]
    assert [set(c) for c in created] == [{"timer_id", "time_left"}] * 3
    ids = [c["timer_id"] for c in created]
    assert ids == sorted(ids)
    assert len(set(ids)) == 3
    assert [c["time_left"] for c in created] == [30, 300, 3600]
    for timer_id, sent in zip(ids, timers, strict=True):
        shown = await view(own, timer_id)
        assert shown["url"] == sent["url"]
        assert shown["labels"] == sent.get("labels", {})
        assert shown["method"] == sent.get("method", "POST")
        assert shown["body"] == sent.get("body")


async def test_a_batch_of_1000(api: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    timers = [{"seconds": n % 60, "url": f"http://example.com/{n}"} for n in range(1000)]
    response = await api.post("/timers/batch", json={"timers": timers})
    assert response.status_code == 201, response.text
    created = response.json()["timers"]
    assert len(created) == 1000
    assert await timer_count(db) == 1000
    urls = {row["id"]: row["url"] for row in await db.fetch("SELECT id, url FROM timers")}
    assert [urls[c["timer_id"]] for c in created] == [t["url"] for t in timers]


@pytest.mark.parametrize(
    "body",
    [
        {"timers": [{"url": URL}] * 1001},
        {"timers": []},
        {"timers": {"url": URL}},
        {"timers": None},
        {},
        {"timers": [{"url": URL}], "extra": 1},
    ],
    ids=["1001", "empty", "object", "null", "missing", "extra-field"],
)
async def test_batch_shape_errors_are_422(
    rejecting: SharedApp, nothing_created: Callable[[], Awaitable[None]], body: dict[str, Any]
) -> None:
    response = await rejecting.client.post("/timers/batch", json=body)
    error = assert_envelope(response, 422)
    assert error["field"] in ("timers", "extra"), error
    await nothing_created()


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"url": "ftp://example.com/"}, "timers.2.url"),
        ({"url": URL, "seconds": -1}, "timers.2.seconds"),
        ({"url": URL, "headers": {"Host": "x"}}, "timers.2.headers"),
        ({"url": URL, "unknown": 1}, "timers.2.unknown"),
        ({"seconds": 5}, "timers.2.url"),
    ],
)
async def test_one_invalid_item_rejects_the_batch_naming_its_index(
    rejecting: SharedApp,
    nothing_created: Callable[[], Awaitable[None]],
    bad: dict[str, Any],
    field: str,
) -> None:
    timers = [{"url": URL}, {"url": URL, "seconds": 5}, bad, {"url": URL}]
    response = await rejecting.client.post("/timers/batch", json={"timers": timers})
    assert_envelope(response, 422, field=field)
    await nothing_created()


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"seconds": SHORT_HORIZON + 1}, "timers.1.seconds"),
        ({"hours": 2}, "timers.1.hours"),
        ({"body": "x" * 70_000}, "timers.1.body"),  # over the default 64 KiB webhook body
        ({"retry": {"timeout_seconds": 60}}, "timers.1.retry.timeout_seconds"),
    ],
)
async def test_a_settings_violation_in_one_item_rejects_the_batch_naming_its_index(
    short_horizon: SharedApp,
    nothing_created: Callable[[], Awaitable[None]],
    bad: dict[str, Any],
    field: str,
) -> None:
    timers = [{"url": URL, "seconds": SHORT_HORIZON}, {"url": URL, **bad}, {"url": URL}]
    response = await short_horizon.client.post("/timers/batch", json={"timers": timers})
    assert_envelope(response, 422, field=field)
    await nothing_created()


async def test_a_nul_in_one_batch_item_is_422_not_500(
    rejecting: SharedApp, nothing_created: Callable[[], Awaitable[None]]
) -> None:
    timers = [{"url": URL}, {"url": URL, "body": "\x00"}]
    response = await rejecting.client.post("/timers/batch", json={"timers": timers})
    assert_envelope(response, 422, field="timers.1.body")
    await nothing_created()


async def test_batch_notes_past_fire_at_per_item(own: httpx.AsyncClient) -> None:
    timers = [{"url": URL, "seconds": 60}, {"url": URL, "fire_at": in_seconds(-60)}]
    response = await own.post("/timers/batch", json={"timers": timers})
    assert response.status_code == 201, response.text
    first, second = response.json()["timers"]
    assert "note" not in first
    assert second["note"] == PAST_FIRE_AT_NOTE
    assert second["time_left"] == 0
