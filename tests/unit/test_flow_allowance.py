"""What the flow-control claim may take of each limited destination (destinations/flow.py):
whole tokens, free parallelism and the instance's room, shared in turn."""

from __future__ import annotations

from datetime import UTC, datetime

from task_scheduler.destinations.flow import allowance, default_burst, deferred_by, share
from task_scheduler.destinations.repository import Bucket

AT = datetime(2026, 12, 2, tzinfo=UTC)


def bucket(
    key: str = "k", tokens: float | None = None, parallelism: int | None = None, in_flight: int = 0
) -> Bucket:
    return Bucket("t", key, tokens, AT, parallelism, in_flight)


def test_the_default_burst_is_one_seconds_worth_at_least_one() -> None:
    assert [default_burst(r) for r in (0.01, 0.5, 1, 2.5, 100)] == [1, 1, 1, 3, 100]


def test_an_allowance_is_the_least_of_whole_tokens_free_parallelism_and_the_limit() -> None:
    assert allowance(bucket(tokens=3.99), limit=500) == 3
    assert allowance(bucket(tokens=0.999999999999), limit=500) == 1  # float dust is not a lost token
    assert allowance(bucket(tokens=0.5), limit=500) == 0
    assert allowance(bucket(parallelism=5, in_flight=3), limit=500) == 2
    assert allowance(bucket(parallelism=5, in_flight=7), limit=500) == 0  # never negative
    assert allowance(bucket(tokens=50, parallelism=10, in_flight=0), limit=4) == 4
    assert allowance(bucket(), limit=4) == 4


def test_the_room_is_shared_in_turn() -> None:
    buckets = [bucket(key, tokens=10) for key in ("a", "b", "c")]
    assert share(buckets, room=15, turn=0) == {("t", "a"): 10, ("t", "b"): 5, ("t", "c"): 0}
    assert share(buckets, room=15, turn=1) == {("t", "b"): 10, ("t", "c"): 5, ("t", "a"): 0}
    assert share(buckets, room=100, turn=2) == dict.fromkeys([("t", "a"), ("t", "b"), ("t", "c")], 10)


def test_a_deferral_names_the_limit_that_held_it() -> None:
    assert deferred_by(bucket(tokens=0.2, parallelism=2, in_flight=2)) == "parallelism"
    assert deferred_by(bucket(tokens=0.2, parallelism=2, in_flight=1)) == "rate_limited"
