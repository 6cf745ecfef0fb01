"""`seconds_left` rounds up to whole seconds and never goes below zero."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from task_scheduler.timers.service import seconds_left

NOW = datetime(2026, 11, 29, 10, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        (timedelta(seconds=5444, microseconds=1), 5445),
        (timedelta(seconds=5445), 5445),
        (timedelta(seconds=5444, microseconds=999_999), 5445),
        (timedelta(seconds=5445, microseconds=1), 5446),
        (timedelta(microseconds=1), 1),
        (timedelta(0), 0),
        (timedelta(microseconds=-1), 0),
        (timedelta(seconds=-5445), 0),
        (timedelta(days=-3650), 0),
        (timedelta(days=3653), 3653 * 86400),
    ],
)
def test_rounds_up_and_floors_at_zero(delta: timedelta, expected: int) -> None:
    result = seconds_left(NOW + delta, NOW)
    assert result == expected
    assert isinstance(result, int)


def test_time_zones_do_not_change_the_answer() -> None:
    tokyo = NOW.astimezone(timezone(timedelta(hours=9)))
    assert seconds_left(NOW + timedelta(seconds=10), tokyo) == 10
