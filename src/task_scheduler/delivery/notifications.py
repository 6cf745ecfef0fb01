"""Outcome notifications: a timer's `on_success_url` / `on_failure_url` is called once when the
timer ends delivered / failed or expired.

The call is an ordinary timer of the same tenant, due at once, made in the transaction that writes
the outcome (delivery/writer.py): it exists exactly when the outcome does, and it is retried,
signed and SSRF-checked like any webhook. A notification never asks for one of its own.
"""

from __future__ import annotations

from pydantic import JsonValue

from task_scheduler.delivery.client import delivery_header_id
from task_scheduler.timers.repository import AttemptRecord, ClaimedTimer, NewTimer
from task_scheduler.timers.shape import RequestSpec

# The outcome's status -> the notification's `type`.
EVENT_TYPES = {"delivered": "timer.delivered", "failed": "timer.failed", "expired": "timer.expired"}
NOTIFICATION_LABEL = "notification_of"


def notification_of(
    timer: ClaimedTimer, status: str, *, error: str | None, record: AttemptRecord | None
) -> NewTimer | None:
    """The timer that tells `timer`'s notification URL it ended `status`, or None if it has none."""
    url = timer.on_success_url if status == "delivered" else timer.on_failure_url
    if url is None:
        return None
    body: dict[str, JsonValue] = {
        "type": EVENT_TYPES[status],
        "timer_id": timer.id,
        "status": status,
        "attempts": timer.attempt,
        "url": timer.url,
        "labels": dict(timer.labels),
        "delivery_id": delivery_header_id(timer.delivery_id),
        "last_status_code": None if record is None else record.status_code,
        "last_error": error,
        "response_excerpt": None if record is None else record.response_body,
    }
    return NewTimer(
        url=url,
        request=RequestSpec(method="POST", body=body),
        labels={NOTIFICATION_LABEL: str(timer.id)},
        tenant=timer.tenant,
        delay_seconds=0.0,
    )
