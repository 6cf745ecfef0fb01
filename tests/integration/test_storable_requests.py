"""Issue 11, the request side: one definition of what may be stored, applied at every entry.
Each reproduction of the issue gives a 422 naming the field and stores nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
import pytest

from task_scheduler.app import create_app
from task_scheduler.config import Settings
from tests.support.api import URL, assert_envelope
from tests.support.app import running_app
from tests.support.databases import timer_count


async def _refused_everywhere(
    api: httpx.AsyncClient, db: asyncpg.Connection, raw_field: str, field: str
) -> None:
    """`raw_field` (a JSON member, raw text) is refused by create, batch and PATCH, naming `field`,
    and nothing is stored or changed."""
    single = await api.post(
        "/timer", content=f'{{"url": "{URL}", {raw_field}}}', headers={"content-type": "application/json"}
    )
    assert_envelope(single, 422, field=field)
    batch = await api.post(
        "/timers/batch",
        content=f'{{"timers": [{{"url": "{URL}"}}, {{"url": "{URL}", {raw_field}}}]}}',
        headers={"content-type": "application/json"},
    )
    assert_envelope(batch, 422, field=f"timers.1.{field}")
    assert await timer_count(db) == 0
    created = await api.post("/timer", json={"url": URL, "minutes": 5})
    timer_id = created.json()["timer_id"]
    before = await db.fetchrow("SELECT * FROM timers WHERE id = $1", timer_id)
    patched = await api.patch(
        f"/timer/{timer_id}", content=f"{{{raw_field}}}", headers={"content-type": "application/json"}
    )
    assert_envelope(patched, 422, field=field)
    assert await db.fetchrow("SELECT * FROM timers WHERE id = $1", timer_id) == before
    assert await timer_count(db) == 1


# -- defect 1: times outside [1970, now + horizon] --------------------------------------------


@pytest.mark.parametrize(
    "fire_at",
    [
        "0001-01-01T00:00:00Z",
        "0001-01-01T23:59:00+23:59",
        "1969-12-31T23:59:59.999999Z",
        "1900-01-01T00:00:00Z",
    ],
)
async def test_year_one_fire_at_is_422_and_nothing_is_stored(
    api: httpx.AsyncClient, db: asyncpg.Connection, fire_at: str
) -> None:
    await _refused_everywhere(api, db, f'"fire_at": "{fire_at}"', "fire_at")


@pytest.mark.parametrize(
    "deliver_before",
    [
        "0001-01-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
        "9999-12-31T23:59:59.999999Z",
        "9999-12-31T23:59:59+00:00",
    ],
)
async def test_deliver_before_out_of_range_is_422_and_nothing_is_stored(
    api: httpx.AsyncClient, db: asyncpg.Connection, deliver_before: str
) -> None:
    await _refused_everywhere(api, db, f'"deliver_before": "{deliver_before}"', "deliver_before")


async def test_fire_at_in_1970_fires_at_once(api: httpx.AsyncClient) -> None:
    response = await api.post("/timer", json={"url": URL, "fire_at": "1970-01-01T00:00:00Z"})
    assert response.status_code == 201, response.text
    assert response.json()["time_left"] == 0
    assert "fires now" in response.json()["note"]
    view = (await api.get(f"/timer/{response.json()['timer_id']}")).json()
    assert view["due_at"].startswith("1970-01-01T00:00:00")


async def test_fire_at_beyond_the_horizon_is_422_everywhere(
    api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await _refused_everywhere(api, db, '"fire_at": "9999-12-31T23:59:59.999999Z"', "fire_at")


# -- defect 3: valid JSON PostgreSQL cannot store ---------------------------------------------

UNSTORABLE = [
    pytest.param('"body": "\\ud800"', "body", id="body-lone-surrogate"),
    pytest.param('"body": {"\\udfff": 1}', "body", id="body-key-lone-surrogate"),
    pytest.param('"body": ["a", {"b": "x\\ud83d"}]', "body", id="body-nested-lone-surrogate"),
    pytest.param('"body": {"a": NaN}', "body", id="body-NaN"),
    pytest.param('"body": Infinity', "body", id="body-Infinity"),
    pytest.param('"body": [-Infinity]', "body", id="body--Infinity"),
    pytest.param('"body": [1e400]', "body", id="body-1e400"),
    pytest.param('"body": {"k\\u0000": 1}', "body", id="body-key-NUL"),
    pytest.param('"body": "a\\u0000b"', "body", id="body-NUL"),
    pytest.param('"labels": {"k": "\\ud800"}', "labels", id="label-value-lone-surrogate"),
    pytest.param('"labels": {"\\ud800": "v"}', "labels", id="label-key-lone-surrogate"),
    pytest.param('"labels": {"k": "\\u0000"}', "labels", id="label-value-NUL"),
    pytest.param('"headers": {"X-A": "\\ud800"}', "headers", id="header-value-lone-surrogate"),
    pytest.param('"headers": {"X-\\ud800": "v"}', "headers", id="header-name-lone-surrogate"),
    pytest.param('"headers": {"X-A": "\\u0000"}', "headers", id="header-value-NUL"),
]


@pytest.mark.parametrize(("raw_field", "field"), UNSTORABLE)
async def test_json_postgresql_cannot_store_is_422(
    api: httpx.AsyncClient, db: asyncpg.Connection, raw_field: str, field: str
) -> None:
    await _refused_everywhere(api, db, raw_field, field)


async def test_storable_edge_values_are_stored_as_sent(api: httpx.AsyncClient) -> None:
    body = {
        "emoji": "😀",
        "rtl": "\u202eabc",
        "shy": "a\u00adb",
        "big": 10**30,
        "max": 1e308,
        "bs": "\\u0000",
    }
    response = await api.post("/timer", json={"url": URL, "minutes": 1, "body": body, "labels": {"k": "😀"}})
    assert response.status_code == 201, response.text
    view = (await api.get(f"/timer/{response.json()['timer_id']}")).json()
    assert float(view["body"].pop("max")) == body.pop("max")  # jsonb keeps numbers as numeric
    assert view["body"] == body
    assert view["labels"] == {"k": "😀"}


async def test_an_unknown_field_named_with_a_lone_surrogate_is_422_not_500(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/timer", content=f'{{"url": "{URL}", "\\ud800": 1}}', headers={"content-type": "application/json"}
    )
    assert_envelope(response, 422)  # the JSON parser refuses the lone surrogate itself


async def test_an_api_key_name_with_a_lone_surrogate_is_422(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/admin/keys",
        content='{"name": "\\ud800", "tenant": "acme", "role": "writer"}',
        headers={"content-type": "application/json"},
    )
    assert_envelope(response, 422, field="name")


# -- defect 4: URLs the webhook client can never send ------------------------------------------

UNSENDABLE = [
    pytest.param("http://exa\\mple.com/", id="backslash-in-host"),
    pytest.param("http://user\\@example.com/", id="backslash-in-userinfo"),
    pytest.param("http://exa\u00admple.com/", id="soft-hyphen-in-host"),
    pytest.param("http://exa\u200bmple.com/", id="zero-width-space-in-host"),
    pytest.param("http://127..0.1/", id="empty-ipv4-part"),
    pytest.param("http://1.2.3.4.5/", id="five-numbers"),
    pytest.param("http://2130706433/", id="one-number-ipv4"),
    pytest.param("http://a..b.example/", id="empty-dns-label"),
    pytest.param("http://" + "a" * 64 + ".example/", id="64-char-dns-label"),
    pytest.param("http://[::zz]/", id="invalid-ipv6"),
    pytest.param("http://\ud800.example/", id="lone-surrogate-host"),
]


@pytest.mark.parametrize("url", UNSENDABLE)
async def test_a_url_the_client_cannot_send_is_422(
    api: httpx.AsyncClient, db: asyncpg.Connection, url: str
) -> None:
    import json

    await _refused_everywhere(api, db, f'"url": {json.dumps(url)}', "url")


@pytest.mark.parametrize(
    "url",
    ["http://bücher.example/x", "https://example.com./a", "http://[2001:4860::1]:8080/", "http://1.2.3.4/é"],
)
async def test_urls_the_client_can_send_are_accepted(api: httpx.AsyncClient, url: str) -> None:
    response = await api.post("/timer", json={"url": url, "minutes": 1})
    assert response.status_code == 201, response.text


# -- an Idempotency-Key replay does not count against the pending cap -------------------------


async def test_an_idempotency_key_replay_is_not_refused_by_the_pending_cap(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(max_pending_per_tenant=1)
    request: dict[str, Any] = {"url": URL, "minutes": 5}
    async with running_app(create_app(settings, run_dispatcher=False)) as client:
        first = await client.post("/timer", json=request, headers={"Idempotency-Key": "k1"})
        assert first.status_code == 201, first.text
        for _ in range(3):
            replay = await client.post("/timer", json=request, headers={"Idempotency-Key": "k1"})
            assert replay.status_code == 200, replay.text
            assert replay.json()["timer_id"] == first.json()["timer_id"]
        other = await client.post("/timer", json=request, headers={"Idempotency-Key": "k2"})
        assert_envelope(other, 429)
