"""`slow_start_until` in a destination's answer: from its newest history entry, only while the
slow start lasts; any stored history (a row from outside) gives a time or null, never an error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from task_scheduler.destinations.models import BreakerState
from task_scheduler.destinations.repository import DestinationRow
from task_scheduler.destinations.service import _view


def row(history: Any, *, paused: bool = False, state: BreakerState = BreakerState.CLOSED) -> DestinationRow:
    return DestinationRow(
        tenant="t",
        key="https://example.com:443",
        paused=paused,
        breaker_state=state,
        consecutive_failures=0,
        opened_at=None,
        updated_at=datetime.now(UTC),
        rate_per_second=None,
        burst=None,
        parallelism=None,
        history=history,
    )


def entry(event: str, ago: float) -> dict[str, Any]:
    at = datetime.now(UTC) - timedelta(seconds=ago)
    return {"at": at.isoformat(), "event": event, "consecutive_failures": 0}


@pytest.mark.parametrize("event", ["closed", "resumed", "unpaused"])
def test_let_go_within_the_slow_start(event: str) -> None:
    shown = _view(row([entry(event, 10), entry("opened", 100)]), 30.0)
    assert shown.slow_start_until is not None
    assert shown.history[0].at + timedelta(seconds=30) == shown.slow_start_until


@pytest.mark.parametrize(
    ("history", "paused", "state", "seconds"),
    [
        ([entry("closed", 40)], False, BreakerState.CLOSED, 30.0),  # over
        ([entry("closed", 10)], False, BreakerState.CLOSED, 0.0),  # slow start off
        ([entry("paused", 10)], True, BreakerState.CLOSED, 30.0),  # held
        ([entry("unpaused", 10)], False, BreakerState.OPEN, 30.0),  # still held by its breaker
        ([entry("opened", 10), entry("closed", 20)], False, BreakerState.CLOSED, 30.0),  # newest counts
        ([], False, BreakerState.CLOSED, 30.0),
        (None, False, BreakerState.CLOSED, 30.0),
        ("garbage", False, BreakerState.CLOSED, 30.0),
    ],
)
def test_null_unless_let_go_and_within_it(
    history: Any, paused: bool, state: BreakerState, seconds: float
) -> None:
    assert _view(row(history, paused=paused, state=state), seconds).slow_start_until is None


def test_stored_times_of_any_shape_give_a_time_or_null() -> None:
    naive = (datetime.now(UTC) - timedelta(seconds=5)).replace(tzinfo=None).isoformat()
    shown = _view(row([{"at": naive, "event": "closed", "consecutive_failures": 0}]), 30.0)
    assert shown.slow_start_until is not None
    assert shown.slow_start_until.tzinfo is not None
    end = {"at": "9999-12-31T23:59:59+00:00", "event": "resumed", "consecutive_failures": 0}
    assert _view(row([end]), 30.0).slow_start_until is None
