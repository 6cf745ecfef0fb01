"""Outcome notifications: when a timer ends, who hears of it.

- the timer's own `on_success_url` (it ended delivered) or `on_failure_url` (failed or expired);
- the tenant's operational webhooks subscribed to `timer.failed` / `timer.expired` (events/).

and when a destination's circuit breaker opens or closes, or the destination is disabled for
failing too long, the tenant's webhooks subscribed to `destination.opened` / `destination.closed`
/ `destination.disabled`.

Each call is an ordinary timer of the same tenant, due at once, made in the transaction that writes
the outcome (delivery/writer.py): it exists exactly when the outcome does, and it is retried,
signed and SSRF-checked like any webhook. A notification never asks for one of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import JsonValue
from sqlalchemy.ext.asyncio import AsyncConnection

from task_scheduler.delivery.client import delivery_header_id
from task_scheduler.destinations.models import BreakerState
from task_scheduler.destinations.repository import Transition
from task_scheduler.events import repository as events_repository
from task_scheduler.events.models import EVENT_TYPES
from task_scheduler.timers.repository import AttemptRecord, ClaimedTimer, NewTimer
from task_scheduler.timers.shape import RequestSpec

# The outcome's status -> the event's type.
EVENTS = {"delivered": "timer.delivered", "failed": "timer.failed", "expired": "timer.expired"}
NOTIFICATION_LABEL = "notification_of"


@dataclass(frozen=True, slots=True)
class Notice:
    """That a timer ended: what its listeners are sent."""

    tenant: str
    timer_id: int
    event: str
    body: dict[str, JsonValue]
    own_url: str | None  # the timer's on_success_url / on_failure_url


def notice_of(
    timer: ClaimedTimer, status: str, *, error: str | None, record: AttemptRecord | None
) -> Notice | None:
    """The notice of `timer` ending `status`; None when nobody can be listening (a delivery is
    heard only by the timer's own on_success_url, tenants subscribe to failures)."""
    own_url = timer.on_success_url if status == "delivered" else timer.on_failure_url
    if own_url is None and EVENTS[status] not in EVENT_TYPES:
        return None
    body: dict[str, JsonValue] = {
        "type": EVENTS[status],
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
    return Notice(timer.tenant, timer.id, EVENTS[status], body, own_url)


async def notification_timers(conn: AsyncConnection, notices: Sequence[Notice]) -> list[NewTimer]:
    """The timers that deliver `notices`: one per listening URL (the tenants' subscribers are read
    with one query, only when a notice is of an event tenants can subscribe to)."""
    subscribed: dict[tuple[str, str], list[str]] = {}
    events = sorted({n.event for n in notices} & set(EVENT_TYPES))
    if events:
        tenants = sorted({n.tenant for n in notices if n.event in events})
        subscribed = await events_repository.subscribers(conn, tenants=tenants, events=events)
    made: list[NewTimer] = []
    for notice in notices:
        urls = [notice.own_url] if notice.own_url is not None else []
        for url in dict.fromkeys(urls + subscribed.get((notice.tenant, notice.event), [])):
            made.append(
                NewTimer(
                    url=url,
                    request=RequestSpec(method="POST", body=notice.body),
                    labels={NOTIFICATION_LABEL: str(notice.timer_id)},
                    tenant=notice.tenant,
                    delay_seconds=0.0,
                )
            )
    return made


DESTINATION_LABEL = "destination_event"


async def destination_event_timers(
    conn: AsyncConnection, transitions: Sequence[Transition]
) -> list[NewTimer]:
    """The timers that tell the tenants' subscribers a destination's breaker opened (from closed)
    or closed, or that it was disabled; a failed probe (half_open → open) is not news otherwise."""
    events: list[tuple[str, str, Transition]] = []
    for change in transitions:
        if change.disabled:
            events.append((change.tenant, "destination.disabled", change))
        elif change.after is BreakerState.OPEN and change.before is BreakerState.CLOSED:
            events.append((change.tenant, "destination.opened", change))
        elif change.after is BreakerState.CLOSED and change.before is not BreakerState.CLOSED:
            events.append((change.tenant, "destination.closed", change))
    if not events:
        return []
    subscribed = await events_repository.subscribers(
        conn, tenants=sorted({t for t, _, _ in events}), events=sorted({e for _, e, _ in events})
    )
    made: list[NewTimer] = []
    for tenant, event, change in events:
        body: dict[str, JsonValue] = {
            "type": event,
            "destination": change.key,
            "breaker_state": change.after.value,
            "consecutive_failures": change.consecutive_failures,
        }
        if change.disabled:
            body["paused"] = True
            body["failing_since"] = change.failing_since.isoformat() if change.failing_since else None
        for url in subscribed.get((tenant, event), []):
            made.append(
                NewTimer(
                    url=url,
                    request=RequestSpec(method="POST", body=body),
                    labels={DESTINATION_LABEL: change.key[:255]},
                    tenant=tenant,
                    delay_seconds=0.0,
                )
            )
    return made
