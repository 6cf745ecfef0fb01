"""What one attempt's result means for its timer: a pure function from (claimed timer, delivery
result, settings) to a verdict and the outcome to record. No I/O: tested without a database.

Everything that came from the receiver (error text, response body) is made storable here, before
it reaches the outcome writer."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from enum import Enum

from task_scheduler.config import Settings
from task_scheduler.delivery.backoff import retry_delay
from task_scheduler.delivery.client import RESPONSE_BODY_LIMIT, DeliveryResult
from task_scheduler.delivery.notifications import Notice, notice_of
from task_scheduler.delivery.storable import storable_text
from task_scheduler.destinations.breaker import BreakerSignal, is_up
from task_scheduler.timers.repository import AttemptRecord, ClaimedTimer, Outcome

ERROR_TEXT_LIMIT = 2000
ERROR_CLASS_LIMIT = 100
UNPROCESSABLE = "unprocessable"


class Verdict(Enum):
    """What becomes of a timer after an attempt (the value is the log event's action)."""

    DELIVERED = "timer.delivered"
    RETRY = "timer.retry_scheduled"
    FAILED = "timer.failed"
    EXPIRED = "timer.expired"
    RETURNED = "timer.lease_returned"


@dataclass(frozen=True, slots=True)
class Decision:
    """A verdict, the outcome to record under the attempt's lease, and the fields to log."""

    verdict: Verdict
    outcome: Outcome
    fields: dict[str, object]
    # That the timer ended, for its listeners (delivery/notifications.py).
    notice: Notice | None = None
    # What the attempt says of its destination, for the circuit breaker (destinations/).
    breaker: BreakerSignal | None = None

    def unstorable(self, reason: str) -> Decision:
        """The same verdict in a form any database accepts: plain error text, no reply body, and
        no notification (it would carry what the database refused)."""
        text = f"unstorable outcome: {reason}"
        outcome, record = self.outcome, self.outcome.record
        safe_record = None
        if record is not None:
            safe_record = replace(record, error_class="unstorable", error_message=text, response_body=None)
        error = None if outcome.error is None else text
        return replace(self, outcome=replace(outcome, error=error, record=safe_record), notice=None)


def decide(
    timer: ClaimedTimer,
    result: DeliveryResult,
    settings: Settings,
    *,
    late_ms: float,
    instance: str,
    rand: Callable[[], float] = random.random,
) -> Decision:
    """Delivered on 2xx; otherwise retried while the timer's retry budget (counted from its last
    redrive) lasts and the failure is retryable, after the receiver's Retry-After (within the
    backoff cap) or a jittered backoff; otherwise failed."""
    fields: dict[str, object] = {
        "timer_id": timer.id,
        "attempt": timer.attempt,
        "instance": instance,
        "status_code": result.status_code,
        "duration_ms": round(result.duration_ms, 1),
        "late_ms": round(late_ms, 1),
    }
    error_text = storable_text(result.error, limit=ERROR_TEXT_LIMIT)
    record = AttemptRecord(
        timer_id=timer.id,
        attempt=timer.attempt,
        started_at=result.started_at,
        duration_ms=result.duration_ms,
        status_code=result.status_code,
        error_class=storable_text(result.error_class, limit=ERROR_CLASS_LIMIT),
        error_message=error_text,
        response_body=storable_text(result.response_body, limit=RESPONSE_BODY_LIMIT),
    )
    up = None if timer.destination is None else is_up(result.status_code, result.error_class)
    breaker = (
        None
        if up is None or timer.destination is None
        else BreakerSignal(timer.tenant, timer.destination, up)
    )
    if result.ok:
        notification = notice_of(timer, "delivered", error=None, record=record)
        return Decision(
            Verdict.DELIVERED, Outcome(timer.id, timer.attempt, record=record), fields, notification, breaker
        )
    error = f"attempt {timer.attempt}: {error_text}"
    fields["error"] = error_text
    max_attempts = timer.retry.max_attempts or settings.max_attempts
    used = timer.attempt - timer.attempts_before_redrive
    if not result.retryable or used >= max_attempts:
        notification = notice_of(timer, "failed", error=error, record=record)
        return Decision(
            Verdict.FAILED,
            Outcome(timer.id, timer.attempt, error, record=record),
            fields,
            notification,
            breaker,
        )
    cap = timer.retry.backoff_cap_seconds or settings.backoff_cap_seconds
    if result.retry_after_seconds is not None:
        delay = min(result.retry_after_seconds, cap)  # the receiver's wish, within policy
    else:
        base = timer.retry.backoff_base_seconds or settings.backoff_base_seconds
        delay = retry_delay(used, base=base, cap=cap, rand=rand)
    fields["retry_in"] = round(delay, 3)
    return Decision(
        Verdict.RETRY, Outcome(timer.id, timer.attempt, error, delay, record), fields, breaker=breaker
    )


def expired(timer: ClaimedTimer, *, late_by_seconds: float) -> Decision:
    """Delivery would start after the timer's `deliver_before`: nothing is sent."""
    error = f"expired: delivery would have started {late_by_seconds:.3f}s after deliver_before"
    fields: dict[str, object] = {
        "timer_id": timer.id,
        "attempt": timer.attempt,
        "late_by_s": round(late_by_seconds, 3),
    }
    notification = notice_of(timer, "expired", error=error, record=None)
    return Decision(Verdict.EXPIRED, Outcome(timer.id, timer.attempt, error), fields, notification)


NOT_ADVANCED = "schedule_not_advanced"


def not_advanced(
    timer: ClaimedTimer, settings: Settings, *, reason: str, at: datetime, instance: str
) -> Decision:
    """A schedule's run whose series could not be moved on in the claim's transaction: nothing was
    sent. It counts as a failed, retryable attempt (error class `schedule_not_advanced`), so it is
    claimed again after the timer's backoff, which moves the series on then; a schedule that
    fails every time ends when the run's retry budget is used up, never the claim of the others."""
    result = DeliveryResult(
        ok=False,
        status_code=None,
        error=f"the schedule could not be advanced: {reason}",
        retryable=True,
        duration_ms=0.0,
        started_at=at,
        error_class=NOT_ADVANCED,
    )
    return decide(timer, result, settings, late_ms=0.0, instance=instance)


def returned(timer_id: int, attempt: int) -> Decision:
    """Claimed but not sent (shutdown, or no heartbeat vouches for the lease): returned."""
    return Decision(Verdict.RETURNED, Outcome(timer_id, attempt), {"timer_id": timer_id})


def unprocessable(timer_id: int, attempt: int, *, reason: str, at: datetime) -> Decision:
    """A claimed timer this instance cannot handle: failed with the reason, never retried."""
    reason = storable_text(reason, limit=ERROR_TEXT_LIMIT) or ""
    record = AttemptRecord(
        timer_id=timer_id,
        attempt=attempt,
        started_at=at,
        duration_ms=0.0,
        status_code=None,
        error_class=UNPROCESSABLE,
        error_message=reason,
        response_body=None,
    )
    outcome = Outcome(timer_id, attempt, f"{UNPROCESSABLE}: {reason}", record=record)
    fields: dict[str, object] = {"timer_id": timer_id, "attempt": attempt, "error": reason}
    return Decision(Verdict.FAILED, outcome, fields)
