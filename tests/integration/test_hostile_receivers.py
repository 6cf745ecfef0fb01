"""Hostile receivers beside ordinary ones: the whole service (dispatcher included) on a real
PostgreSQL. Per example, one timer targets a receiver that answers as drawn (tests/support/
hostile_receiver.py: any status, broken or huge headers, NUL and invalid UTF-8, compressed or
lying bodies, megabytes, slow drips, resets, half-closed connections, garbage) while ordinary
timers target the ordinary receiver. Invariants: every ordinary timer is delivered once and on
time; the hostile one ends delivered or failed with a readable stored error; the API reads it;
/readyz answers 200.

HOSTILE_EXAMPLES=N draws N replies (default 20, well under 90 s); `make chaos` runs a long one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from hypothesis import given

from task_scheduler.delivery.storable import storable_text
from task_scheduler.timers.models import ALLOWED_TRANSITIONS, TimerStatus
from tests.support.api import create
from tests.support.app import ServiceFactory
from tests.support.hostile_receiver import HostileReceiver, Reply, hostile_settings, http_reply, replies
from tests.support.polling import WAIT, wait_for_status
from tests.support.receiver import Receiver

ORDINARY_TIMERS = 3
# Generous: it bounds lateness on a noisy machine, it does not measure speed.
ON_TIME_SECONDS = 3.0
# Any stored text is kept whole by the sanitiser: it is storable as it is.
_NO_LIMIT = 1 << 20


@pytest.fixture
async def api(service: ServiceFactory) -> AsyncIterator[httpx.AsyncClient]:
    """One service for all examples of a test: quick attempts, few of them, short backoff."""
    async with service(
        max_attempts=2,
        request_timeout_seconds=1.0,
        connect_timeout_seconds=0.5,
        lease_seconds=3.0,
        backoff_base_seconds=0.05,
        backoff_cap_seconds=0.2,
        # Every example's reply must reach its own timer: the hostile receiver's failures across
        # examples must not open its destination's breaker (test_destinations.py tests that).
        breaker_failures=1000,
    ) as client:
        yield client


def assert_storable(value: str | None) -> None:
    assert storable_text(value, limit=_NO_LIMIT) == value


async def check_round(
    api: httpx.AsyncClient, receiver: Receiver, hostile: HostileReceiver, reply: Reply
) -> int:
    """One hostile timer beside ordinary ones, every invariant checked; the hostile timer's id."""
    now = datetime.now(UTC)
    hostile_id = await create(api, hostile.url_for(reply), fire_at=now.isoformat())
    later = (now + timedelta(seconds=0.3)).isoformat()
    ordinary = [await create(api, receiver.url, fire_at=later) for _ in range(ORDINARY_TIMERS)]

    assert await receiver.wait_for(lambda: all(receiver.counts()[i] >= 1 for i in ordinary), WAIT)
    for timer_id in ordinary:
        view = await wait_for_status(api, timer_id, "delivered", WAIT)
        assert view["status"] == "delivered", view
        assert view["attempts"] == 1
        late = datetime.fromisoformat(view["delivered_at"]) - datetime.fromisoformat(view["due_at"])
        assert late < timedelta(seconds=ON_TIME_SECONDS), view
        assert sum(1 for d in receiver.deliveries if d.timer_id == timer_id) == 1

    view = await wait_for_status(api, hostile_id, ("delivered", "failed"), WAIT)
    # An attempt's outcome is a move out of `firing`; with 2 attempts it ends in one of these.
    assert TimerStatus(view["status"]) in ALLOWED_TRANSITIONS[TimerStatus.FIRING], view
    assert view["status"] in ("delivered", "failed"), view
    assert_storable(view["last_error"])
    if view["status"] == "failed":
        assert view["last_error"], view
    attempts = await api.get(f"/timer/{hostile_id}/attempts")
    assert attempts.status_code == 200, attempts.text
    for attempt in attempts.json()["attempts"]:
        for name in ("error_class", "error_message", "response_body"):
            assert_storable(attempt[name])
    assert (await api.get("/readyz")).status_code == 200
    return hostile_id


@pytest.mark.parametrize("status", [200, 500])
async def test_a_nul_in_a_reply_is_stored_and_blocks_no_outcome(
    api: httpx.AsyncClient, receiver: Receiver, hostile: HostileReceiver, status: int
) -> None:
    """Defect 2: the outcome write of `abc\\x00def` failed and jammed every later outcome."""
    hostile_id = await check_round(api, receiver, hostile, http_reply(status, body=b"abc\x00def"))
    attempts = (await api.get(f"/timer/{hostile_id}/attempts")).json()["attempts"]
    assert attempts[0]["response_body"] == "abc\ufffddef"


@hostile_settings(default_examples=20)
@given(reply=replies())
async def test_a_hostile_receiver_fails_only_its_own_timer(
    api: httpx.AsyncClient, receiver: Receiver, hostile: HostileReceiver, reply: Reply
) -> None:
    await check_round(api, receiver, hostile, reply)
