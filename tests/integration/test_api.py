"""The HTTP API on a real PostgreSQL, without the dispatcher: contract, validation, errors.

Requests that must be rejected share one app per module (`rejecting`, tests/integration/conftest.py): a rejected request
changes nothing, and such tests check that the number of timers stayed the same
(`nothing_created`), so they stay independent while ~150 cases do not each pay for a fresh database.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any
from unittest.mock import ANY

import httpx
import pytest

from task_scheduler.app import create_app
from task_scheduler.config import Settings
from tests.support.api import SHORT_HORIZON, URL, assert_envelope
from tests.support.app import SharedApp, running_app

MAX_BIGINT = 2**63 - 1


@pytest.fixture
def rejecting_api(rejecting: SharedApp) -> httpx.AsyncClient:
    return rejecting.client


@pytest.fixture
def short_horizon_api(short_horizon: SharedApp) -> httpx.AsyncClient:
    return short_horizon.client


# -- the founding contract ----------------------------------------------------------------------


async def test_create_returns_id_and_time_left(api: httpx.AsyncClient) -> None:
    response = await api.post("/timer", json={"hours": 1, "minutes": 30, "seconds": 45, "url": URL})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"timer_id", "time_left"}
    assert type(body["timer_id"]) is int
    assert body["timer_id"] >= 1
    assert body == {"timer_id": body["timer_id"], "time_left": 5445}
    assert response.headers["location"] == f"/timer/{body['timer_id']}"


async def test_hours_and_seconds_only(api: httpx.AsyncClient) -> None:
    response = await api.post("/timer", json={"hours": 4, "seconds": 1, "url": URL})
    assert response.status_code == 201
    assert response.json()["time_left"] == 14401


async def test_zero_second_timer_has_no_time_left(api: httpx.AsyncClient) -> None:
    response = await api.post("/timer", json={"url": URL})
    assert response.status_code == 201
    assert response.json()["time_left"] == 0
    view = (await api.get(response.headers["location"])).json()
    assert view["time_left"] == 0
    assert view["status"] == "pending"  # no dispatcher here
    assert view["due_at"] == view["created_at"]


async def test_get_shows_the_timer(api: httpx.AsyncClient) -> None:
    created = (await api.post("/timer", json={"hours": 1, "minutes": 30, "seconds": 45, "url": URL})).json()
    response = await api.get(f"/timer/{created['timer_id']}")
    assert response.status_code == 200
    view = response.json()
    assert set(view) >= {
        "timer_id",
        "time_left",
        "status",
        "url",
        "due_at",
        "created_at",
        "attempts",
        "last_error",
        "delivered_at",
        "delivery_id",
    }
    assert view["timer_id"] == created["timer_id"]
    assert 0 < view["time_left"] <= 5445
    assert view["status"] == "pending"
    assert view["url"] == URL
    assert view["attempts"] == 0
    assert view["last_error"] is None
    assert view["delivered_at"] is None
    assert view["delivery_id"].startswith("msg_")
    due_at = datetime.fromisoformat(view["due_at"])
    created_at = datetime.fromisoformat(view["created_at"])
    assert due_at.tzinfo is not None
    assert created_at.tzinfo is not None
    assert (due_at - created_at).total_seconds() == 5445


async def test_url_is_stored_verbatim(api: httpx.AsyncClient) -> None:
    url = "https://例子.测试:8443/hook/ü?q=é&x=1#frag"
    created = await api.post("/timer", json={"seconds": 5, "url": url})
    assert created.status_code == 201
    assert (await api.get(created.headers["location"])).json()["url"] == url


async def test_ids_increase_and_delivery_ids_differ(api: httpx.AsyncClient) -> None:
    ids = []
    for _ in range(5):
        response = await api.post("/timer", json={"seconds": 10, "url": URL})
        assert response.status_code == 201
        ids.append(response.json()["timer_id"])
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    delivery_ids = {(await api.get(f"/timer/{i}")).json()["delivery_id"] for i in ids}
    assert len(delivery_ids) == len(ids)


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "application/merge-patch+json"])
async def test_json_content_type_variants_are_accepted(api: httpx.AsyncClient, content_type: str) -> None:
    response = await api.post(
        "/timer", content=json.dumps({"url": URL}), headers={"content-type": content_type}
    )
    assert response.status_code == 201


async def test_unknown_id_is_404(api: httpx.AsyncClient) -> None:
    created = (await api.post("/timer", json={"url": URL})).json()
    error = assert_envelope(await api.get(f"/timer/{created['timer_id'] + 1}"), 404)
    assert error["code"] == "not_found"
    assert error["field"] == "timer_id"
    assert_envelope(await api.get(f"/timer/{MAX_BIGINT}"), 404)


@pytest.mark.parametrize(
    "timer_id",
    [
        "abc",
        "1.5",
        "1e3",
        "0",
        "-1",
        "-9223372036854775808",
        str(MAX_BIGINT + 1),
        "9" * 400,
        "%20",
        "1%00",
    ],
)
async def test_invalid_ids_are_422(rejecting_api: httpx.AsyncClient, timer_id: str) -> None:
    response = await rejecting_api.get(f"/timer/{timer_id}")
    error = assert_envelope(response, 422, field="timer_id")
    assert error["code"] == "validation_error"


# -- the horizon --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"seconds": SHORT_HORIZON + 1}, "seconds"),
        ({"minutes": 61}, "minutes"),
        ({"hours": 2}, "hours"),
        ({"hours": 1, "seconds": 1}, "hours"),
        ({"minutes": 60, "seconds": 1}, "minutes"),
        ({"hours": 10**12, "minutes": 10**12, "seconds": 10**12}, "hours"),
    ],
)
async def test_beyond_the_horizon_is_422_naming_a_field(
    short_horizon_api: httpx.AsyncClient, body: dict[str, int], field: str
) -> None:
    response = await short_horizon_api.post("/timer", json={**body, "url": URL})
    error = assert_envelope(response, 422)
    assert error["code"] == "validation_error"
    assert error["field"] == field
    assert str(SHORT_HORIZON) in error["message"]


@pytest.mark.parametrize("body", [{"hours": 1}, {"minutes": 60}, {"seconds": SHORT_HORIZON}])
async def test_exactly_the_horizon_is_accepted(
    short_horizon_api: httpx.AsyncClient, body: dict[str, int]
) -> None:
    response = await short_horizon_api.post("/timer", json={**body, "url": URL})
    assert response.status_code == 201
    assert response.json()["time_left"] == SHORT_HORIZON


async def test_default_horizon_is_ten_years(api: httpx.AsyncClient) -> None:
    ten_years = 3653 * 86400
    ok = await api.post("/timer", json={"seconds": ten_years, "url": URL})
    assert ok.status_code == 201
    assert ok.json()["time_left"] == ten_years
    too_far = await api.post("/timer", json={"seconds": ten_years + 1, "url": URL})
    assert_envelope(too_far, 422, field="seconds")


@pytest.mark.parametrize("hours", [70_000_000, 10**12], ids=["year-10000", "interval-overflow"])
async def test_horizon_setting_beyond_what_can_be_stored_is_not_a_500(
    make_settings: Callable[..., Settings], hours: int
) -> None:
    """Either the setting is refused at start, or the request is a 4xx: never a 500."""
    try:
        settings = make_settings(max_horizon_seconds=10**16)
    except ValueError:
        return
    async with running_app(create_app(settings, run_dispatcher=False)) as client:
        response = await client.post("/timer", json={"hours": hours, "url": URL})
    assert_envelope(response, (400, 422), field="hours")


# -- odd input never gives a 5xx ------------------------------------------------------------------

HUGE_NUMBER = "9" * 5000
DEEP_ARRAY = "[" * 100_000 + "]" * 100_000
DEEP_OBJECT = '{"a":' * 50_000 + "1" + "}" * 50_000
# Bodies json.loads cannot read for a reason other than syntax: 400 or 422 are both fair.
UNPARSABLE = (400, 422)


def _json(value: Any) -> dict[str, Any]:
    return {"content": json.dumps(value), "headers": {"content-type": "application/json"}}


def _raw(content: str | bytes, content_type: str | None = "application/json") -> dict[str, Any]:
    headers = {} if content_type is None else {"content-type": content_type}
    return {"content": content, "headers": headers}


def _field_cases() -> list[Any]:
    cases = []
    for field in ("hours", "minutes", "seconds"):
        for name, value in [
            ("string", "1"),
            ("word", "soon"),
            ("null", None),
            ("true", True),
            ("false", False),
            ("float", 1.0),
            ("fraction", 1.5),
            ("list", [1]),
            ("object", {"value": 1}),
            ("negative", -1),
            ("very-negative", -(10**30)),
            ("huge", 10**30),
            ("over-per-field-limit", 10**12 + 1),
        ]:
            cases.append(pytest.param(_json({field: value, "url": URL}), 422, field, id=f"{field}-{name}"))
    return cases


# (request kwargs, expected status(es), the field at fault or None when no field is at fault)
ODD_INPUTS: list[Any] = [
    pytest.param(_raw(b""), 422, None, id="empty-body"),
    pytest.param(_raw(b"", content_type=None), 422, None, id="no-body-no-type"),
    pytest.param(_json(None), 422, None, id="null"),
    pytest.param(_json([]), 422, None, id="array"),
    pytest.param(_json([{"url": URL}]), 422, None, id="array-of-object"),
    pytest.param(_json("str"), 422, None, id="string"),
    pytest.param(_json(123), 422, None, id="number"),
    pytest.param(_json(True), 422, None, id="true"),
    pytest.param(_json({}), 422, "url", id="empty-object"),
    pytest.param(_json({"seconds": 5}), 422, "url", id="missing-url"),
    pytest.param(_json({"url": None}), 422, "url", id="url-null"),
    pytest.param(_json({"url": 5}), 422, "url", id="url-number"),
    pytest.param(_json({"url": ["http://a/"]}), 422, "url", id="url-list"),
    pytest.param(_json({"url": {"href": URL}}), 422, "url", id="url-object"),
    pytest.param(_json({"url": ""}), 422, "url", id="url-empty"),
    pytest.param(_json({"url": True}), 422, "url", id="url-bool"),
    *_field_cases(),
    pytest.param(_raw(f'{{"hours": 1e400, "url": "{URL}"}}'), 422, "hours", id="hours-1e400"),
    pytest.param(_raw(f'{{"seconds": -1e400, "url": "{URL}"}}'), 422, "seconds", id="seconds--1e400"),
    pytest.param(_raw(f'{{"seconds": NaN, "url": "{URL}"}}'), 422, "seconds", id="seconds-NaN"),
    pytest.param(_raw(f'{{"seconds": Infinity, "url": "{URL}"}}'), 422, "seconds", id="seconds-inf"),
    pytest.param(
        _raw(f'{{"hours": {HUGE_NUMBER}, "url": "{URL}"}}'.encode()),
        UNPARSABLE,
        None,
        id="5000-digits",
    ),
    pytest.param(_json({"url": "😀"}), 422, "url", id="url-emoji"),
    pytest.param(_json({"url": "😀://example.com/"}), 422, "url", id="url-emoji-scheme"),
    pytest.param(_json({"url": "http\uff1a//example.com/"}), 422, "url", id="url-fullwidth-colon"),
    pytest.param(_json({"url": "http://exa mple.com/"}), 422, "url", id="url-space-in-host"),
    pytest.param(_json({"url": URL, "😀": 1}), 422, "😀", id="emoji-key"),
    pytest.param(_json({"url": URL, "Hours": 1}), 422, "Hours", id="capitalised-key"),
    pytest.param(_json({"url": URL, "callback": URL}), 422, "callback", id="extra-field"),
    pytest.param(_json({"url": "ftp://example.com/f"}), 422, "url", id="url-ftp"),
    pytest.param(_json({"url": "javascript:alert(1)"}), 422, "url", id="url-javascript"),
    pytest.param(_json({"url": "mailto:a@example.com"}), 422, "url", id="url-mailto"),
    pytest.param(_json({"url": "file:///etc/passwd"}), 422, "url", id="url-file"),
    pytest.param(_json({"url": "example.com/hook"}), 422, "url", id="url-relative"),
    pytest.param(_json({"url": "http://"}), 422, "url", id="url-no-host"),
    pytest.param(_json({"url": "http:///hook"}), 422, "url", id="url-empty-host"),
    pytest.param(_json({"url": "http://example.com:99999/"}), 422, "url", id="url-port-range"),
    pytest.param(_json({"url": "http://example.com:0/"}), 422, "url", id="url-port-0"),
    pytest.param(_json({"url": "http://example.com:x/"}), 422, "url", id="url-port-word"),
    pytest.param(_json({"url": "http://[::1/"}), 422, "url", id="url-bad-ipv6"),
    pytest.param(_json({"url": "http://example.com/" + "a" * 2030}), 422, "url", id="url-2049-chars"),
    pytest.param(_json({"url": "http://example.com/" + "a" * 10**5}), 422, "url", id="url-100k"),
    pytest.param(_json({"url": "http://example.com/a b"}), 422, "url", id="url-space"),
    pytest.param(_json({"url": " http://example.com/"}), 422, "url", id="url-leading-space"),
    pytest.param(_json({"url": "http://example.com/\n"}), 422, "url", id="url-newline"),
    pytest.param(_json({"url": "http://example.com/\r\nX: y"}), 422, "url", id="url-crlf"),
    pytest.param(_json({"url": "http://example.com/\u0000"}), 422, "url", id="url-nul"),
    pytest.param(_raw(b'{"url": "\\ud800"}'), 422, "url", id="url-lone-surrogate"),
    pytest.param(_raw(json.dumps({"url": URL}), "text/plain"), 415, None, id="text-plain"),
    pytest.param(_raw(b"url=http://a/", "application/x-www-form-urlencoded"), 415, None, id="form"),
    pytest.param(_raw(b"<timer/>", "application/xml"), 415, None, id="xml"),
    pytest.param(_raw(b"--b\r\n\r\n--b--", "multipart/form-data; boundary=b"), 415, None, id="multipart"),
    pytest.param(_raw(json.dumps({"url": URL}), None), 422, None, id="json-without-type"),
    pytest.param(_raw(b"{not json"), 422, None, id="invalid-json"),
    pytest.param(_raw(b'{"url": "http://a/", "seconds": 1'), 422, None, id="truncated-json"),
    pytest.param(_raw(b'{"url": "http://a/",}'), 422, None, id="trailing-comma"),
    pytest.param(_raw(b"{'url': 'http://a/'}"), 422, None, id="single-quotes"),
    pytest.param(_raw(b'{"url": "http://a/"} {}'), 422, None, id="two-documents"),
    pytest.param(_raw(b"\xff\xff\xff"), UNPARSABLE, None, id="not-utf8"),
    pytest.param(_raw(b'{"url": "http://a/\xff"}'), UNPARSABLE, None, id="invalid-utf8-in-string"),
    pytest.param(_raw(DEEP_ARRAY), UNPARSABLE, None, id="deep-array"),
    pytest.param(_raw(DEEP_OBJECT), UNPARSABLE, None, id="deep-object"),
]


@pytest.mark.parametrize(("request_kwargs", "status", "field"), ODD_INPUTS)
async def test_odd_input_gets_a_4xx_envelope(
    rejecting_api: httpx.AsyncClient,
    nothing_created: Callable[[], Awaitable[None]],
    request_kwargs: dict[str, Any],
    status: int | tuple[int, ...],
    field: str | None,
) -> None:
    response = await rejecting_api.post("/timer", **request_kwargs)
    error = assert_envelope(response, status, field)
    if field is None:
        assert error["field"] is None
    await nothing_created()


async def test_rejection_does_not_echo_a_huge_input(rejecting_api: httpx.AsyncClient) -> None:
    response = await rejecting_api.post("/timer", json={"url": "http://" + "x" * 5000})
    assert response.status_code == 422
    assert len(response.content) < 5000


async def test_validation_error_lists_every_problem(
    rejecting_api: httpx.AsyncClient, nothing_created: Callable[[], Awaitable[None]]
) -> None:
    response = await rejecting_api.post("/timer", json={"hours": -1, "minutes": "2", "url": "ftp://a/"})
    error = assert_envelope(response, 422)
    assert {d["field"] for d in error["details"]} == {"hours", "minutes", "url"}
    await nothing_created()


@pytest.mark.parametrize("body", [b"\xff\xff\xff", DEEP_ARRAY.encode()], ids=["utf8", "deep"])
async def test_unparsable_body_message_does_not_blame_numbers(
    rejecting_api: httpx.AsyncClient, body: bytes
) -> None:
    response = await rejecting_api.post("/timer", content=body, headers={"content-type": "application/json"})
    error = assert_envelope(response, UNPARSABLE)
    assert "digits" not in error["message"]


async def test_two_megabyte_body_is_413(
    rejecting_api: httpx.AsyncClient, nothing_created: Callable[[], Awaitable[None]]
) -> None:
    body = json.dumps({"url": URL, "pad": "x" * 2_000_000})
    response = await rejecting_api.post("/timer", content=body, headers={"content-type": "application/json"})
    error = assert_envelope(response, 413)
    assert error["code"] == "payload_too_large"
    await nothing_created()


async def test_streamed_body_over_the_limit_is_413(
    rejecting_api: httpx.AsyncClient, nothing_created: Callable[[], Awaitable[None]]
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"url": "http://example.com/", "pad": "'
        for _ in range(40):
            yield b"x" * 65536
        yield b'"}'

    response = await rejecting_api.post(
        "/timer", content=chunks(), headers={"content-type": "application/json"}
    )
    error = assert_envelope(response, 413)
    assert error["code"] == "payload_too_large"
    await nothing_created()


async def test_body_under_the_limit_is_judged_on_its_content(
    rejecting_api: httpx.AsyncClient,
) -> None:
    body = json.dumps({"url": URL, "pad": "x" * 1_000_000})
    response = await rejecting_api.post("/timer", content=body, headers={"content-type": "application/json"})
    assert_envelope(response, 422, field="pad")


# -- routes, health, docs ------------------------------------------------------------------------


async def test_healthz(rejecting_api: httpx.AsyncClient) -> None:
    response = await rejecting_api.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_without_dispatcher_is_ready(rejecting_api: httpx.AsyncClient) -> None:
    response = await rejecting_api.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


async def test_openapi_documents_the_timer_api(rejecting_api: httpx.AsyncClient) -> None:
    response = await rejecting_api.get("/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    assert "post" in spec["paths"]["/timer"]
    assert "get" in spec["paths"]["/timer/{timer_id}"]
    schemas = spec["components"]["schemas"]
    founding, full = schemas["TimerCreate"]["examples"]
    assert founding == {"hours": 1, "minutes": 30, "seconds": 45, "url": URL}
    assert set(full) <= set(schemas["TimerCreate"]["properties"])
    assert "fire_at" in full
    assert schemas["TimerCreated"]["examples"] == [{"timer_id": 1, "time_left": 5445}]
    assert schemas["TimerView"]["examples"]
    assert schemas["TimerCreate"]["additionalProperties"] is False
    assert schemas["TimerCreate"]["required"] == ["url"]
    error_responses = spec["paths"]["/timer"]["post"]["responses"]
    assert {"201", "413", "422", "503"} <= set(error_responses)


async def test_openapi_says_which_operations_take_a_key(rejecting_api: httpx.AsyncClient) -> None:
    spec = (await rejecting_api.get("/openapi.json")).json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["HTTPBearer"] == {"type": "http", "scheme": "bearer", "description": ANY}
    assert schemes["APIKeyHeader"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": ANY,
    }
    open_paths = {"/healthz", "/readyz", "/metrics"}
    operations = [(path, method, op) for path, ops in spec["paths"].items() for method, op in ops.items()]
    assert len(operations) >= 17
    for path, method, op in operations:
        expected = None if path in open_paths else [{"HTTPBearer": []}, {"APIKeyHeader": []}]
        assert op.get("security") == expected, (method, path)


async def test_docs_are_served(rejecting_api: httpx.AsyncClient) -> None:
    response = await rejecting_api.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "openapi.json" in response.text


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/no/such/route"), ("POST", "/timer/1/cancel"), ("GET", "/timers/1")]
)
async def test_unknown_route_is_404_envelope(
    rejecting_api: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await rejecting_api.request(method, path, json={"url": URL})
    error = assert_envelope(response, 404)
    assert error["code"] == "not_found"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/timer"),
        ("PUT", "/timer"),
        ("PUT", "/timer/1"),
        ("POST", "/timer/1"),
        ("POST", "/timers"),
        ("DELETE", "/timers"),
        ("GET", "/timer/1/retry"),
        ("GET", "/timers/batch"),
        ("POST", "/healthz"),
    ],
)
async def test_wrong_method_is_405_envelope(
    rejecting_api: httpx.AsyncClient,
    nothing_created: Callable[[], Awaitable[None]],
    method: str,
    path: str,
) -> None:
    response = await rejecting_api.request(method, path)
    error = assert_envelope(response, 405)
    assert error["code"] == "method_not_allowed"
    assert "allow" in response.headers
    await nothing_created()


async def test_every_response_carries_a_request_id(rejecting_api: httpx.AsyncClient) -> None:
    response = await rejecting_api.get("/healthz", headers={"x-request-id": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    generated = [(await rejecting_api.get("/no/such/route")).headers["x-request-id"] for _ in range(3)]
    assert all(len(r) == 32 and int(r, 16) >= 0 for r in generated)
    assert len(set(generated)) == 3


async def test_json_nested_past_the_validation_depth_names_its_field_briefly(api: httpx.AsyncClient) -> None:
    """A body nested 300 deep (under the parser's limit, past validation's) was a 422 of 7 KB whose
    field was the whole path down (`body.list.0.list.0...`): now the field it starts from."""
    deep = "[" * 300 + "]" * 300
    response = await api.post("/timer", **_raw(f'{{"seconds": 1, "url": "{URL}", "body": {deep}}}'))
    assert_envelope(response, (422,), field="body")
    assert response.json()["error"]["message"] == "body: nested too deeply"
    assert len(response.content) < 500, response.text[:200]
