"""Poison requests (issue 11): JSON the OpenAPI schema admits, with boundary values, sent to every
write route of a real app WITH its dispatcher and a real local receiver.

Values drawn: extreme datetimes (years 0001/1969/1970/9999, offsets up to +-23:59, microseconds),
Unicode edge cases (lone surrogates, NUL, soft hyphen, zero-width space, RTL marks, emoji) in
every string and key, huge numbers (1e308, 10**30, 2**63), NaN/Infinity written as raw JSON text,
deeply nested bodies, long strings, URLs aiohttp cannot send.

Invariants: never a 5xx; every 4xx is the error envelope; an accepted timer can be read back; and
every CANARY_EVERY examples (and at the end) a canary timer due at once still reaches the
receiver, so no accepted request stopped the engine.

Short by default (POISON_EXAMPLES=40 examples per route, well under a minute); set e.g.
POISON_EXAMPLES=2000 for a long run (`make chaos` may do so).
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from task_scheduler.config import Settings
from tests.support.app_thread import AppThread

EXAMPLES = int(os.environ.get("POISON_EXAMPLES", "40"))
CANARY_EVERY = 10
ADMIN_KEY = "poison-admin-key-0123456789abcdef012345678"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
T = TypeVar("T")

POISON_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# -- what is drawn ---------------------------------------------------------------------------

EDGE_CHARS = '\x00\ud800\udfff\u00ad\u200b\u200e\u200f\u202e\ufeff\uffff😀é\\"/\t\n \x7f'
edge_text = st.one_of(
    st.text(alphabet=st.sampled_from(EDGE_CHARS) | st.characters(), max_size=12),
    st.sampled_from(["", "a" * 300, "x" * 9000, "ok", "\\u0000"]),
)
huge_numbers = st.sampled_from([0, -1, 10**30, -(10**30), 2**63, 2**63 - 1, 1e308, -1e308, 5e-324, 1.5])
raw_floats = st.sampled_from([math.nan, math.inf, -math.inf])  # json.dumps writes NaN / Infinity
json_leaf = st.one_of(st.none(), st.booleans(), huge_numbers, raw_floats, edge_text)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(edge_text, inner, max_size=3),
    max_leaves=12,
)
deep_body = st.integers(1, 200).map(lambda depth: json.loads("[" * depth + "1" + "]" * depth))

YEARS = [1, 2, 1969, 1970, 2026, 2027, 9998, 9999]
OFFSETS = ["Z", "+00:00", "-00:00", "+23:59", "-23:59", "+14:00", "-12:00", "+05:30"]


@st.composite
def rfc3339(draw: st.DrawFn) -> str:
    year = draw(st.sampled_from(YEARS) | st.integers(1, 9999))
    month, day = draw(st.sampled_from([(1, 1), (12, 31), (2, 28), (6, 15)]))
    clock = draw(st.sampled_from(["00:00:00", "23:59:59", "23:59:59.999999", "12:00:00.5"]))
    return f"{year:04d}-{month:02d}-{day:02d}T{clock}{draw(st.sampled_from(OFFSETS))}"


times = st.one_of(rfc3339(), st.sampled_from(["now", "", "1970-01-01", 0, 1e308, None]))


def urls(receiver_url: str) -> st.SearchStrategy[Any]:
    hostile = [
        "http://exa\\mple.invalid/",
        "http://exa\u00admple.invalid/",
        "http://exa\u200bmple.invalid/",
        "http://127..0.1/",
        "http://2130706433/",
        "http://a..b.invalid/",
        "http://" + "a" * 64 + ".invalid/",
        "http://[::zz]/",
        "http://\ud800.invalid/",
        "http://b\u00fccher.invalid/",
        "http://invalid.invalid:0/",
        "ftp://x.invalid/",
        receiver_url + "/\u202e😀?q=\u00ad",
    ]
    host_label = st.text(alphabet=st.sampled_from(EDGE_CHARS + "ab-_.0"), min_size=0, max_size=8)
    return st.one_of(
        st.just(receiver_url),
        st.sampled_from(hostile),
        host_label.map(lambda label: f"http://{label}.invalid/hook"),
        edge_text,
    )


def timer_fields(url: st.SearchStrategy[Any], *, with_url: bool) -> st.SearchStrategy[dict[str, Any]]:
    optional: dict[str, st.SearchStrategy[Any]] = {
        "hours": st.sampled_from([0, 1, 10**12, 10**12 + 1, -1, 2**63]),
        "minutes": st.sampled_from([0, 59, 10**12]),
        "seconds": st.sampled_from([0, 1, 315_532_800, 10**12]) | huge_numbers | raw_floats,
        "fire_at": times,
        "deliver_before": times,
        "max_lateness_seconds": huge_numbers | raw_floats,
        "method": st.sampled_from(["POST", "GET", "DELETE", "post", "\x00"]),
        "headers": st.dictionaries(
            st.sampled_from(["X-A", "X-\ud800", "Host", "x-b"]) | edge_text, edge_text, max_size=3
        ),
        "labels": st.dictionaries(st.sampled_from(["k", "a/b", "\ud800"]) | edge_text, edge_text, max_size=3),
        "body": json_value | deep_body,
        "retry": st.fixed_dictionaries(
            {},
            optional={
                "max_attempts": st.sampled_from([1, 100, 0, 2**63]),
                "backoff_base_seconds": huge_numbers | raw_floats,
                "backoff_cap_seconds": huge_numbers | raw_floats,
                "timeout_seconds": huge_numbers | raw_floats,
            },
        ),
    }
    if with_url:
        return st.fixed_dictionaries({"url": url}, optional=optional)
    return st.fixed_dictionaries({}, optional={"url": url, **optional})


_canaries = itertools.count(1)


class Checker:
    def __init__(self, app: AppThread) -> None:
        self.app = app
        self.examples = 0

    def send(
        self, method: str, path: str, payload: Any = None, *, raw: bytes | None = None
    ) -> httpx.Response:
        client = self.app.client
        assert client is not None
        content = raw if raw is not None else None if payload is None else json.dumps(payload).encode()
        headers = {"content-type": "application/json"} if content is not None else {}
        response = self.app.run(client.request(method, path, content=content, headers=headers))
        self.check(response, method, path, content)
        self.examples += 1
        if self.examples % CANARY_EVERY == 0:
            self.canary()
        return response

    def check(self, response: httpx.Response, method: str, path: str, content: bytes | None) -> None:
        sent = f"{method} {path} {content[:500] if content else b''!r}"
        assert response.status_code < 500, f"{sent} -> {response.status_code} {response.text}"
        if response.status_code >= 400:
            body = response.json()
            assert set(body) == {"error"}, f"{sent} -> {response.text}"
            error = body["error"]
            assert isinstance(error["code"], str), response.text
            assert isinstance(error["message"], str), response.text
            assert "field" in error, response.text
            assert "Traceback" not in response.text

    def read_back(self, timer_id: int) -> None:
        client = self.app.client
        assert client is not None
        view = self.app.run(client.get(f"/timer/{timer_id}"))
        assert view.status_code == 200, f"timer {timer_id}: {view.status_code} {view.text}"

    def canary(self) -> None:
        """A timer due at once still reaches the receiver: nothing stopped the dispatcher."""
        client = self.app.client
        assert client is not None
        number = next(_canaries)
        url = f"{self.app.receiver.url}/canary/{number}"
        created = self.app.run(client.post("/timer", json={"seconds": 0, "url": url}))
        assert created.status_code == 201, created.text
        timer_id = created.json()["timer_id"]
        assert self.app.wait_delivered(timer_id), f"canary {number} (timer {timer_id}) was not delivered"


@pytest.fixture
def checker(make_settings: Callable[..., Settings]) -> Iterator[Checker]:
    app = AppThread(
        make_settings(admin_api_key=ADMIN_KEY, rate_limit_per_second=0, max_attempts=1), headers=AUTH
    )
    app.start()
    try:
        yield Checker(app)
    finally:
        app.stop()


def _created_ids(response: httpx.Response) -> list[int]:
    if response.status_code not in (200, 201):
        return []
    body = response.json()
    return [t["timer_id"] for t in body["timers"]] if "timers" in body else [body["timer_id"]]


# -- the routes ------------------------------------------------------------------------------


def test_poison_requests_to_every_write_route(checker: Checker) -> None:
    receiver_url = checker.app.receiver.url
    url = urls(receiver_url)

    @POISON_SETTINGS
    @given(
        fields=timer_fields(url, with_url=True), key=st.none() | edge_text.filter(lambda k: 0 < len(k) < 100)
    )
    def create(fields: dict[str, Any], key: str | None) -> None:
        response = checker.send("POST", "/timer", fields)
        if key is not None and key.isascii() and key.isprintable():
            # the same request again with an Idempotency-Key (header values are ASCII in practice)
            client = checker.app.client
            assert client is not None
            keyed = checker.app.run(
                client.post(
                    "/timer",
                    content=json.dumps(fields),
                    headers={"Idempotency-Key": key, "content-type": "application/json"},
                )
            )
            checker.check(keyed, "POST", "/timer (keyed)", json.dumps(fields).encode())
        for timer_id in _created_ids(response):
            checker.read_back(timer_id)

    @POISON_SETTINGS
    @given(timers=st.lists(timer_fields(url, with_url=True), min_size=1, max_size=3))
    def batch(timers: list[dict[str, Any]]) -> None:
        response = checker.send("POST", "/timers/batch", {"timers": timers})
        for timer_id in _created_ids(response):
            checker.read_back(timer_id)

    target = checker.send("POST", "/timer", {"hours": 1, "url": receiver_url})
    target_id = target.json()["timer_id"]

    @POISON_SETTINGS
    @given(fields=timer_fields(url, with_url=False))
    def patch(fields: dict[str, Any]) -> None:
        checker.send("PATCH", f"/timer/{target_id}", fields)
        checker.read_back(target_id)

    ids = st.sampled_from([0, 1, -1, 2**63 - 1, 2**63, target_id]).map(str) | edge_text.filter(bool)

    @POISON_SETTINGS
    @given(
        route=st.sampled_from(
            ["DELETE /timer/{}", "POST /timer/{}/retry", "DELETE /admin/keys/{}", "DELETE /tenant/secrets/{}"]
        ),
        ident=ids,
        key=st.fixed_dictionaries(
            {"tenant": edge_text, "role": st.sampled_from(["admin", "writer", "reader", "\ud800"])},
            optional={"name": edge_text},
        ),
    )
    def others(route: str, ident: str, key: dict[str, Any]) -> None:
        method, path = route.split(" ")
        checker.send(method, path.format(quote(ident.encode("utf-8", "surrogatepass"), safe="")))
        checker.send("POST", "/admin/keys", key)
        checker.send("POST", "/tenant/secrets")

    for run in (create, batch, patch, others):
        run()
    checker.canary()
