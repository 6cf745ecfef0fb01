"""Retry delays: the ceiling doubles per attempt up to the cap; the delay is full jitter below it."""

from __future__ import annotations

import random

import pytest

from task_scheduler.delivery.backoff import RetryBackoff, backoff_ceiling, retry_delay


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [(1, 40.0), (2, 80.0), (3, 160.0), (4, 320.0), (5, 600.0), (6, 600.0), (50, 600.0)],
)
def test_ceiling_doubles_then_is_capped(attempt: int, expected: float) -> None:
    assert backoff_ceiling(attempt, base=40.0, cap=600.0) == expected


@pytest.mark.parametrize("attempt", [0, -1, -(10**9)])
def test_ceiling_below_first_attempt_is_base(attempt: int) -> None:
    assert backoff_ceiling(attempt, base=40.0, cap=600.0) == 40.0


@pytest.mark.parametrize("attempt", [63, 64, 1_000, 10**9, 10**100])
def test_huge_attempt_numbers_neither_overflow_nor_exceed_the_cap(attempt: int) -> None:
    assert backoff_ceiling(attempt, base=40.0, cap=600.0) == 600.0
    assert retry_delay(attempt, base=40.0, cap=600.0, rand=lambda: 0.5) == 300.0


def test_huge_base_times_huge_power_is_still_capped() -> None:
    # 1e300 * 2**62 is inf as a float; the cap must still win.
    assert backoff_ceiling(10**6, base=1e300, cap=1e300) == 1e300


def test_ceiling_is_a_float_even_for_int_inputs() -> None:
    value = backoff_ceiling(3, base=1, cap=10)
    assert isinstance(value, float)
    assert value == 4.0


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 5, 6, 100])
def test_full_jitter_spans_zero_to_ceiling(attempt: int) -> None:
    ceiling = backoff_ceiling(attempt, base=0.5, cap=30.0)
    assert retry_delay(attempt, base=0.5, cap=30.0, rand=lambda: 0.0) == 0.0
    assert retry_delay(attempt, base=0.5, cap=30.0, rand=lambda: 0.25) == pytest.approx(0.25 * ceiling)
    top = retry_delay(attempt, base=0.5, cap=30.0, rand=lambda: 0.999999)
    assert 0.0 < top < ceiling


def test_default_rand_stays_within_bounds_and_varies() -> None:
    random.seed(12345)
    delays = [retry_delay(3, base=1.0, cap=100.0) for _ in range(1_000)]
    assert all(0.0 <= d < 4.0 for d in delays)
    # Full jitter, not equal jitter: both halves of the range are used.
    assert min(delays) < 1.0
    assert max(delays) > 3.0


def test_retry_backoff_doubles_to_the_cap_and_starts_over_after_a_success() -> None:
    backoff = RetryBackoff(first=0.2, cap=1.0)
    assert [backoff.failed() for _ in range(5)] == [0.2, 0.4, 0.8, 1.0, 1.0]
    assert backoff.failures == 5
    backoff.succeeded()
    assert backoff.failures == 0
    assert backoff.failed() == 0.2
