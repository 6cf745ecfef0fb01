"""The retry policy's bounds are written twice: in the API's schema (what a client may set) and in
shape.RETRY_BOUNDS (what the claim accepts from a stored row); they must agree."""

from __future__ import annotations

import math

from task_scheduler.timers.schemas import RetryPolicy
from task_scheduler.timers.shape import RETRY_BOUNDS, RetrySpec


def test_the_schema_and_the_claim_check_share_their_bounds() -> None:
    properties = RetryPolicy.model_json_schema()["properties"]
    assert set(properties) == set(RETRY_BOUNDS)
    for name, (low, high) in RETRY_BOUNDS.items():
        (bounded,) = [s for s in properties[name]["anyOf"] if s.get("type") != "null"]
        assert (bounded["minimum"], bounded["maximum"]) == (low, high), name


def test_a_stored_policy_out_of_bounds_is_a_problem() -> None:
    assert RetrySpec().problem() is None
    assert RetrySpec(max_attempts=3, timeout_seconds=10.0).problem() is None
    for value in (math.inf, math.nan, -1.0, 0.0, 1e308):
        problem = RetrySpec(timeout_seconds=value).problem()
        assert problem is not None, value
        assert problem.startswith("retry.timeout_seconds is out of bounds"), value
    assert RetrySpec(max_attempts=-(2**31)).problem() is not None
