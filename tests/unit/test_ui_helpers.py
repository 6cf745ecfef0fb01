"""The dashboard's pure parts: session cookies and CSRF tokens, charts, destinations, curl."""

from __future__ import annotations

import json
import shlex
import time
from datetime import UTC, datetime, timedelta

import pytest

from task_scheduler.timers.schemas import TimerView
from task_scheduler.ui import session
from task_scheduler.ui.repository import RecentAttempt
from task_scheduler.ui.router import curl_command
from task_scheduler.ui.service import (
    CHART_HEIGHT,
    deliveries_chart,
    destinations,
    duration_chart,
    lateness_chart,
    percentile,
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


def test_percentile() -> None:
    assert percentile([], 0.5) == 0.0
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([7.0], 0.99) == 7.0


def attempt(
    minutes_ago: float,
    *,
    ok: bool = True,
    host: str = "a.example",
    duration: float = 20.0,
    lateness: float | None = 5.0,
) -> RecentAttempt:
    return RecentAttempt(
        started_at=datetime.now(UTC) - timedelta(minutes=minutes_ago),
        duration_ms=duration,
        ok=ok,
        lateness_ms=lateness,
        host=host,
        error_class=None if ok else "http_status",
    )


def test_destinations_put_the_failing_first() -> None:
    found = destinations(
        [
            attempt(3),
            attempt(2),
            attempt(1),
            attempt(5, host="b.example"),
            attempt(1, ok=False, host="b.example"),
        ]
    )
    assert [d.host for d in found] == ["b.example", "a.example"]
    failing, healthy = found
    assert failing.failing_now
    assert failing.success_rate == 0.5
    assert failing.last_error == "http_status"
    assert not healthy.failing_now
    assert healthy.deliveries == 3
    assert healthy.success_rate == 1.0
    assert destinations([]) == []


def test_the_deliveries_chart_stacks_failures_on_successes() -> None:
    chart = deliveries_chart([attempt(0), attempt(0), attempt(0, ok=False), attempt(10)], datetime.now(UTC))
    assert chart.peak == 3
    kinds = [bar.kind for bar in chart.bars]
    assert kinds.count("fail") == 1
    assert all(0 <= bar.y <= CHART_HEIGHT and bar.height >= 1 for bar in chart.bars)
    tallest = [bar for bar in chart.bars if bar.x == max(b.x for b in chart.bars)]
    assert sum(bar.height for bar in tallest) == pytest.approx(CHART_HEIGHT)
    assert deliveries_chart([], datetime.now(UTC)).bars == []


def test_histograms_bucket_duration_and_lateness() -> None:
    attempts = [attempt(1, duration=5), attempt(1, duration=60_000, lateness=None), attempt(1, duration=300)]
    assert duration_chart(attempts).peak == 1
    assert len(duration_chart(attempts).bars) == 3
    assert sum(1 for _ in lateness_chart(attempts).bars) == 1
    assert lateness_chart(attempts).bars[0].label.startswith("≤ 10 ms")


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
