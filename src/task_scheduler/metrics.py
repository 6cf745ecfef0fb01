"""Prometheus metrics. With several worker processes, set PROMETHEUS_MULTIPROC_DIR to an empty
directory shared by them (prometheus-client's multiprocess mode) and every process reports into
it; `/metrics` then sums them."""

from __future__ import annotations

import os

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

_LATENESS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

TIMERS_CREATED = Counter("scheduler_timers_created_total", "Timers created through the API.")
DELIVERIES = Counter(
    "scheduler_deliveries_total",
    "Attempt outcomes recorded: delivered, retry, failed, expired, returned (claimed, then returned"
    " unsent), lease_lost, dropped (unstorable even in a safe form: left to lease expiry).",
    ["outcome"],
)
WEBHOOK_REQUESTS = Counter(
    "scheduler_webhook_requests_total",
    "Webhook requests sent, by result: 2xx, 3xx, 4xx, 5xx, timeout, connection, blocked_destination, invalid_url.",
    ["result"],
)
FIRING_LATENESS = Histogram(
    "scheduler_firing_lateness_seconds",
    "Delivery start minus due time (by this host's monotonic clock, mapped from the database's).",
    buckets=_LATENESS_BUCKETS,
)
DELIVERY_DURATION = Histogram(
    "scheduler_delivery_duration_seconds", "Duration of one webhook request.", buckets=_DURATION_BUCKETS
)
ROLLUP_FAILURES = Counter(
    "scheduler_rollup_fold_failures_total",
    "Turns of the dashboard's rollup fold that failed (its charts and the destinations' health stop "
    "moving while it fails).",
)
CLAIMED = Counter("scheduler_timers_claimed_total", "Timers claimed by this instance's dispatcher.")
LEASES_EXPIRED = Counter("scheduler_leases_expired_total", "Leases of stopped instances returned to pending.")
PENDING = Gauge("scheduler_pending_timers", "Pending timers in the database.", multiprocess_mode="mostrecent")
OVERDUE = Gauge(
    "scheduler_overdue_timers",
    "Pending timers already past their due time (the backlog).",
    multiprocess_mode="mostrecent",
)
HELD = Gauge(
    "scheduler_held_timers", "Claimed timers held in memory by this instance.", multiprocess_mode="livesum"
)
HELD_BYTES = Gauge(
    "scheduler_held_bytes",
    "About what the requests of the claimed timers held in memory take (SCHEDULER_MAX_HELD_BYTES).",
    multiprocess_mode="livesum",
)
HTTP_REQUESTS = Counter(
    "scheduler_http_requests_total", "HTTP requests served.", ["method", "route", "status"]
)
HTTP_DURATION = Histogram(
    "scheduler_http_request_duration_seconds",
    "HTTP request latency.",
    ["method", "route"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
BACKGROUND_TASK_RESTARTS = Counter(
    "scheduler_background_task_restarts_total",
    "Background tasks (claim, flow, writer, heartbeat, listen, signers, retention, gauges, bulk) "
    "restarted after a crash.",
    ["task"],
)
SCHEDULES_ACTIVE = Gauge(
    "scheduler_active_schedules", "Schedules in status active.", multiprocess_mode="mostrecent"
)
NOTIFICATIONS_CREATED = Counter(
    "scheduler_notifications_created_total",
    "Outcome notifications created (timers calling a timer's on_success_url or on_failure_url).",
)
SCHEDULE_OCCURRENCES_CREATED = Counter(
    "scheduler_schedule_occurrences_created_total", "Runs of schedules created for their occurrences."
)
SCHEDULE_OCCURRENCES_SKIPPED = Counter(
    "scheduler_schedule_occurrences_skipped_total",
    "Occurrences of schedules skipped, by reason: overlap, catchup.",
    ["reason"],
)
BULK_JOBS = Counter(
    "scheduler_bulk_jobs_total", "Bulk jobs by what happened: queued, done, failed, cancelled.", ["state"]
)
BULK_TIMERS = Counter(
    "scheduler_bulk_timers_total",
    "Timers bulk jobs took, by action and result: done (changed), skipped (left as they were).",
    ["action", "result"],
)
BREAKER_TRANSITIONS = Counter(
    "scheduler_breaker_transitions_total",
    "Destination circuit breakers that changed state, by the state they went to: open, closed; "
    "disabled: a destination paused for failing too long.",
    ["state"],
)
DESTINATIONS_HOLDING = Gauge(
    "scheduler_destinations_holding",
    "Destinations holding their timers: paused, or circuit breaker open or half-open.",
    multiprocess_mode="mostrecent",
)
WAITING_FOR_DESTINATION = Gauge(
    "scheduler_destination_waiting_timers",
    "Pending timers due now that their destination holds (paused or breaker not closed).",
    multiprocess_mode="mostrecent",
)
# Flow control's metrics are labelled by destination key: the first _DESTINATION_LABELS keys a
# process sees have a label of their own, every later one is "other" (bounded cardinality).
_DESTINATION_LABELS = 20
_labelled: set[tuple[str, str]] = set()
FLOW_SENDS = Counter(
    "scheduler_flow_limited_sends_total",
    "Timers claimed by flow control (sent under a destination's rate or parallelism), by destination.",
    ["destination"],
)
FLOW_DEFERRALS = Counter(
    "scheduler_flow_deferrals_total",
    "Flow-control claims that found a destination's timers due and no room under its limit, by "
    "destination and reason: rate_limited, parallelism.",
    ["destination", "reason"],
)
FLOW_WAITING = Gauge(
    "scheduler_flow_waiting_timers",
    "Pending timers due now of the limited destinations with the most waiting (at most 20), by destination.",
    ["destination"],
    multiprocess_mode="mostrecent",
)
RETENTION_DELETED = Counter("scheduler_retention_deleted_total", "Finished timers deleted by retention.")


def destination_label(tenant: str, key: str) -> str:
    """The `destination` label of a destination: its key, or "other" once the labels run out."""
    if (tenant, key) in _labelled:
        return key[:200]
    if len(_labelled) < _DESTINATION_LABELS:
        _labelled.add((tenant, key))
        return key[:200]
    return "other"


def webhook_result(status_code: int | None, error_class: str | None) -> str:
    if status_code is not None:
        return f"{status_code // 100}xx"
    return error_class or "error"


def render() -> bytes:
    """The exposition text; sums all worker processes in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest()
