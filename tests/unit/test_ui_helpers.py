"""The dashboard's pure parts: session cookies and CSRF tokens, charts, destinations, curl."""

from __future__ import annotations

import json
import shlex
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from task_scheduler.timers.schemas import TimerView
from task_scheduler.ui import session
from task_scheduler.ui.repository import DURATION_EDGES_MS, AttemptRollup, HostStats, bucket_quantile
from task_scheduler.ui.router import curl_command
from task_scheduler.ui.service import (
    CHART_HEIGHT,
    deliveries_chart,
    destinations,
    duration_chart,
    hourly_chart,
    lateness_chart,
    lateness_day_chart,
)

KEY = session.mac_key(b"server", b"hash-of-key")


def test_a_cookie_round_trips_and_any_change_breaks_it() -> None:
    cookie = session.new_session("3f9a1c0b7d2e")
    value = session.encode(cookie, KEY)
    decoded = session.decode_unverified(value)
    assert decoded is not None
    assert decoded[0] == cookie
    assert session.verify(decoded[1], decoded[2], KEY)
    assert not session.verify(decoded[1], decoded[2], session.mac_key(b"other", b"hash-of-key"))
    assert not session.verify(decoded[1], decoded[2], session.mac_key(b"server", b"another key"))
    other = session.encode(session.SessionCookie("000000000000", cookie.nonce, cookie.expires_at), b"x")
    assert not session.verify(other.partition(".")[0], decoded[2], KEY)


@pytest.mark.parametrize(
    "value",
    ["", ".", "abc", "!!!.x", "e30.x", "W10.x", "x" * 1001 + ".y", "eyJrIjoxLCJuIjoibiIsImUiOjF9.x"],
)
def test_malformed_cookies_are_none(value: str) -> None:
    assert session.decode_unverified(value) is None


def test_an_expired_cookie_is_none() -> None:
    cookie = session.new_session(None, now=time.time() - session.SESSION_SECONDS - 1)
    assert session.decode_unverified(session.encode(cookie, KEY)) is None


def test_csrf_tokens_belong_to_one_session() -> None:
    one, two = session.new_session("a"), session.new_session("a")
    token = session.csrf_token(one, KEY)
    assert session.csrf_ok(one, KEY, token)
    assert not session.csrf_ok(two, KEY, token)
    assert not session.csrf_ok(one, session.mac_key(b"", b""), token)
    assert not session.csrf_ok(one, KEY, None)
    assert not session.csrf_ok(one, KEY, "")


def rollup(**fields: Any) -> AttemptRollup:
    empty: dict[str, Any] = {
        "per_minute": {},
        "per_hour": {},
        "durations": {},
        "lateness": {},
        "lateness_day": {},
        "hosts": [],
    }
    return AttemptRollup(**(empty | fields))


def host(authority: str, *, attempts: int, succeeded: int, last_ok: bool) -> HostStats:
    return HostStats(authority, attempts, succeeded, 20.0, 90.0, last_ok, None if last_ok else "http_status")


def test_destinations_put_the_failing_first() -> None:
    hosts = [
        host("a.example", attempts=3, succeeded=3, last_ok=True),
        host("b.example", attempts=2, succeeded=1, last_ok=False),
    ]
    found = destinations(rollup(hosts=hosts))
    assert [d.host for d in found] == ["b.example", "a.example"]
    failing, healthy = found
    assert failing.failing_now
    assert failing.success_rate == 0.5
    assert failing.last_error == "http_status"
    assert not healthy.failing_now
    assert healthy.success_rate == 1.0
    assert destinations(rollup()) == []


def test_the_deliveries_chart_stacks_failures_on_successes() -> None:
    now = datetime.now(UTC)
    minute = now.replace(second=0, microsecond=0)
    chart = deliveries_chart(rollup(per_minute={minute: (2, 1), minute - timedelta(minutes=10): (1, 0)}), now)
    assert chart.peak == 3
    assert [bar.kind for bar in chart.bars].count("fail") == 1
    assert all(0 <= bar.y <= CHART_HEIGHT and bar.height >= 1 for bar in chart.bars)
    tallest = [bar for bar in chart.bars if bar.x == max(b.x for b in chart.bars)]
    assert sum(bar.height for bar in tallest) == pytest.approx(CHART_HEIGHT)
    assert deliveries_chart(rollup(), now).bars == []


def test_histograms_name_their_buckets() -> None:
    found = rollup(
        durations={0: (1, 0), 4: (0, 2), len(DURATION_EDGES_MS): (1, 0)},
        lateness={1: (3, 0)},
        lateness_day={1: (3, 0), 2: (0, 1)},
    )
    duration = duration_chart(found)
    assert duration.peak == 2
    assert [bar.label for bar in duration.bars] == ["< 10 ms: 1", "250-500 ms: 2", "≥ 10000 ms: 1"]
    assert [bar.label for bar in lateness_chart(found).bars] == ["10-50 ms: 3"]
    assert [bar.label for bar in lateness_day_chart(found).bars] == ["10-50 ms: 3", "50-100 ms: 1"]


def test_the_hourly_chart_covers_the_last_day() -> None:
    now = datetime.now(UTC)
    hour = now.replace(minute=0, second=0, microsecond=0)
    chart = hourly_chart(rollup(per_hour={hour: (5, 0), hour - timedelta(hours=23): (0, 2)}), now)
    assert chart.peak == 5
    assert [bar.kind for bar in chart.bars] == ["fail", "ok"]  # the oldest hour first
    assert hourly_chart(rollup(per_hour={hour - timedelta(hours=24): (9, 9)}), now).bars == []


def test_quantiles_from_duration_buckets() -> None:
    counts = [0] * (len(DURATION_EDGES_MS) + 1)
    assert bucket_quantile(counts, 0.5) == 0.0
    counts[1] = 100  # 10-50 ms
    assert bucket_quantile(counts, 0.5) == pytest.approx(30.0)
    assert bucket_quantile(counts, 0.99) == pytest.approx(49.6)
    counts[0], counts[-1] = 100, 2  # below 10 ms; 10 s and more
    assert bucket_quantile(counts, 0.25) == pytest.approx(5.05)
    assert bucket_quantile(counts, 0.999) == DURATION_EDGES_MS[-1]


def test_copy_as_curl_recreates_the_timer() -> None:
    example = TimerView.model_json_schema()["examples"][0]
    view = TimerView.model_validate({**example, "body": {"text": "it's"}})
    command = curl_command(view, "http://localhost:8080/")
    parts = shlex.split(command.replace("\\\n", " "))
    assert parts[:3] == ["curl", "-X", "POST"]
    assert parts[3] == "http://localhost:8080/timer"
    body = json.loads(parts[parts.index("-d") + 1])
    assert body["url"] == view.url
    assert body["headers"] == {"Authorization": "[redacted]"}
    assert body["body"] == {"text": "it's"}
    assert body["retry"]["max_attempts"] == 5


async def test_the_cache_computes_once_for_callers_that_miss_together() -> None:
    import asyncio

    from task_scheduler.ui.service import TtlCache

    calls: list[str | None] = []

    async def compute() -> int:
        calls.append("x")
        await asyncio.sleep(0)
        return len(calls)

    shared: TtlCache[int] = TtlCache(ttl=60)
    assert await asyncio.gather(*(shared.get("acme", compute) for _ in range(5))) == [1] * 5
    assert await shared.get(None, compute) == 2  # another tenant: its own answer
    expiring: TtlCache[int] = TtlCache(ttl=0, max_keys=1)
    assert await expiring.get("a", compute) == 3
    assert await expiring.get("a", compute) == 4  # expired at once
    assert await expiring.get("b", compute) == 5  # over max_keys: the old ones are dropped
