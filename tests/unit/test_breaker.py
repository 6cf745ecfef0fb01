"""What an attempt tells a destination's breaker, and one batch's tally (pure)."""

from __future__ import annotations

import pytest

from task_scheduler.destinations.breaker import BreakerSignal, is_up, tally
from task_scheduler.destinations.keys import default_key, key_problem
from task_scheduler.destinations.repository import Tally


@pytest.mark.parametrize(
    ("status_code", "error_class", "up"),
    [
        (200, None, True),
        (404, None, True),  # it answered: up, it said no
        (429, None, True),
        (500, None, False),
        (503, None, False),
        (None, "connection", False),
        (None, "timeout", False),
        (None, "invalid_response", False),
        (None, "blocked_destination", None),  # never left: says nothing of the destination
        (None, "invalid_url", None),
        (None, "unexpected", None),
        (None, "schedule_not_advanced", None),
    ],
)
def test_what_an_attempt_says(status_code: int | None, error_class: str | None, up: bool | None) -> None:
    assert is_up(status_code, error_class) is up


def signals(*ups: tuple[str, bool]) -> list[BreakerSignal]:
    return [BreakerSignal("t", key, up) for key, up in ups]


def test_failures_after_the_last_answer_are_counted() -> None:
    batch = signals(("a", False), ("a", True), ("a", False), ("a", False), ("b", False), ("c", True))
    assert tally(batch) == [Tally("t", "a", True, 2), Tally("t", "b", False, 1), Tally("t", "c", True, 0)]


def test_an_answer_last_resets_the_count() -> None:
    assert tally(signals(("a", False), ("a", False), ("a", True))) == [Tally("t", "a", True, 0)]
    assert tally([]) == []


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("http://127.0.0.1:8080/hook", "http://127.0.0.1:8080"),
        ("https://Example.COM/x?y#z", "https://example.com:443"),
        ("http://user:pw@ex.com/", "http://ex.com:80"),
        ("http://[::1]:99/a", "http://[::1]:99"),
        ("HTTP://a.b", "http://a.b:80"),
        ("https://bücher.de/x", "https://xn--bcher-kva.de:443"),
        ("http://a.b?x=1", "http://a.b:80"),
    ],
)
def test_the_default_key_is_the_origin(url: str, key: str) -> None:
    assert default_key(url) == key


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("payments", None),
        ("", "1 to 200"),
        ("x" * 201, "1 to 200"),
        ("a\tb", "printable"),
        (" a", "printable"),
    ],
)
def test_a_given_key(key: str, problem: str | None) -> None:
    found = key_problem(key)
    assert (found is None) if problem is None else (found is not None and problem in found)
