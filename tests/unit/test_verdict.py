"""What an attempt's result means for its timer: decided without a database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from task_scheduler.config import Settings
from task_scheduler.delivery.client import DeliveryResult
from task_scheduler.delivery.verdict import Verdict, decide, expired, returned, unprocessable
from task_scheduler.timers.repository import ClaimedTimer
from task_scheduler.timers.shape import RetrySpec

NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
SETTINGS = Settings(max_attempts=3, backoff_base_seconds=10.0, backoff_cap_seconds=60.0)


def timer(**fields: Any) -> ClaimedTimer:
    values: dict[str, Any] = {
        "id": 7,
        "url": "https://example.com/hook",
        "due_at": NOW,
        "attempt": 1,
        "delivery_id": uuid.UUID(int=1),
        "lease_expires_at": NOW,
    }
    values.update(fields)
    return ClaimedTimer(**values)


def result(status: int | None = 500, **fields: Any) -> DeliveryResult:
    values: dict[str, Any] = {
        "ok": status is not None and 200 <= status < 300,
        "status_code": status,
        "error": None if status is not None and 200 <= status < 300 else f"HTTP {status}",
        "retryable": True,
        "duration_ms": 12.5,
        "started_at": NOW,
    }
    values.update(fields)
    return DeliveryResult(**values)


def decided(t: ClaimedTimer, r: DeliveryResult, settings: Settings = SETTINGS) -> Any:
    return decide(t, r, settings, late_ms=1.0, instance="a", rand=lambda: 0.5)


def test_a_2xx_is_delivered_with_its_attempt_record() -> None:
    d = decided(timer(), result(204))
    assert d.verdict is Verdict.DELIVERED
    assert d.outcome.error is None
    assert d.outcome.record is not None
    assert d.outcome.record.status_code == 204


def test_a_retryable_failure_with_attempts_left_is_retried_after_jittered_backoff() -> None:
    d = decided(timer(attempt=2), result(503))
    assert d.verdict is Verdict.RETRY
    assert d.outcome.retry_in_seconds == 10.0  # half (rand 0.5) of base * 2**(2-1)
    assert d.outcome.error == "attempt 2: HTTP 503"


def test_the_last_attempt_fails() -> None:
    assert decided(timer(attempt=3), result(503)).verdict is Verdict.FAILED


def test_a_timers_own_max_attempts_wins() -> None:
    assert decided(timer(attempt=3, retry=RetrySpec(max_attempts=4)), result(503)).verdict is Verdict.RETRY


def test_a_failure_that_cannot_be_helped_fails_at_once() -> None:
    assert decided(timer(attempt=1), result(410, retryable=False)).verdict is Verdict.FAILED


def test_the_budget_counts_from_the_last_redrive() -> None:
    d = decided(timer(attempt=5, attempts_before_redrive=4), result(500))
    assert d.verdict is Verdict.RETRY
    assert d.outcome.retry_in_seconds == 5.0  # the first attempt since the redrive


@pytest.mark.parametrize(("retry_after", "expected"), [(3.0, 3.0), (60.0, 60.0), (10**9, 60.0)])
def test_retry_after_is_honoured_within_the_cap(retry_after: float, expected: float) -> None:
    d = decided(timer(), result(429, retry_after_seconds=retry_after))
    assert d.outcome.retry_in_seconds == expected


def test_a_timers_own_cap_bounds_retry_after() -> None:
    d = decided(timer(retry=RetrySpec(backoff_cap_seconds=5.0)), result(429, retry_after_seconds=100.0))
    assert d.outcome.retry_in_seconds == 5.0


def test_what_the_receiver_sent_is_made_storable() -> None:
    d = decided(timer(), result(500, error="bad \x00 reply \ud800", response_body="abc\x00def" * 1000))
    record = d.outcome.record
    assert record is not None
    assert record.response_body is not None
    assert record.error_message is not None
    assert "\x00" not in (d.outcome.error or "")
    assert "\x00" not in record.response_body
    assert len(record.response_body) <= 1024
    record.error_message.encode()  # no lone surrogate left
    (d.outcome.error or "").encode()


def test_the_unstorable_form_keeps_the_verdict_and_drops_the_reply() -> None:
    d = decided(timer(), result(500)).unstorable("CharacterNotInRepertoireError (SQLSTATE 22021)")
    assert d.verdict is Verdict.RETRY
    assert d.outcome.error == "unstorable outcome: CharacterNotInRepertoireError (SQLSTATE 22021)"
    assert d.outcome.record is not None
    assert d.outcome.record.response_body is None
    assert d.outcome.record.error_class == "unstorable"
    delivered = decided(timer(), result(200)).unstorable("DataError")
    assert delivered.verdict is Verdict.DELIVERED
    assert delivered.outcome.error is None


def test_expired_returned_and_unprocessable() -> None:
    assert expired(timer(), late_by_seconds=1.5).verdict is Verdict.EXPIRED
    back = returned(7, 2)
    assert back.verdict is Verdict.RETURNED
    assert back.outcome.record is None
    bad = unprocessable(7, 1, reason="due_at is not finite \x00", at=NOW)
    assert bad.verdict is Verdict.FAILED
    assert bad.outcome.error is not None
    assert bad.outcome.error.startswith("unprocessable: due_at")
    assert "\x00" not in bad.outcome.error
    assert bad.outcome.record is not None
    assert bad.outcome.record.error_class == "unprocessable"
