"""The `timers`, `timer_attempts` and `idempotency_keys` tables, and the one state machine every
timer follows.

    from      to          by (repository function)            when
    pending   firing      claim_due                           due within the lookahead window, its
                                                                  destination not holding it
    pending   firing      claim_probe                         a half-open destination's one probe
    pending   cancelled   cancel / cancel_many                DELETE /timer/{id}; a bulk cancel
    pending   pending     update_pending / reschedule_many    PATCH /timer/{id}; a bulk reschedule
    pending   cancelled   cancel_occurrences                  a schedule paused, edited or deleted
    firing    delivered   mark_delivered                      the webhook answered 2xx
    firing    pending     schedule_retry                      attempt failed, attempts remain
    firing    failed      mark_failed                         attempt failed, none remain (or 410 Gone),
                                                                  or a claimed row the dispatcher cannot handle
    firing    failed      expire_leases                       its lease lapsed max_lease_expiries times
    firing    expired     mark_expired                        delivery would start after deliver_before
    firing    pending     return_leases / expire_leases       returned unsent / owner died
    firing    pending     defer_occurrences                   overlap buffer_one: waits for the run before
    firing    cancelled   skip_occurrences                    claimed occurrence skipped (overlap, catch-up)
    firing    firing      extend_leases                       the owner's heartbeat (lease only)
    failed    pending     redrive / redrive_many              POST /timer/{id}/retry; a bulk retry
    expired   pending     redrive / redrive_many              POST /timer/{id}/retry; a bulk retry

Every transition is a conditional `UPDATE ... WHERE status = ...` (fenced by lease owner and
attempt where an instance holds the lease); nothing reads and then writes.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Double,
    ForeignKey,
    Identity,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Table,
    Text,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from task_scheduler.db import metadata


class TimerStatus(StrEnum):
    PENDING = "pending"
    FIRING = "firing"
    DELIVERED = "delivered"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


ALLOWED_TRANSITIONS: dict[TimerStatus, frozenset[TimerStatus]] = {
    TimerStatus.PENDING: frozenset({TimerStatus.FIRING, TimerStatus.CANCELLED, TimerStatus.PENDING}),
    TimerStatus.FIRING: frozenset(
        {
            TimerStatus.CANCELLED,
            TimerStatus.DELIVERED,
            TimerStatus.PENDING,
            TimerStatus.FAILED,
            TimerStatus.EXPIRED,
            TimerStatus.FIRING,
        }
    ),
    TimerStatus.DELIVERED: frozenset(),
    TimerStatus.FAILED: frozenset({TimerStatus.PENDING}),
    TimerStatus.EXPIRED: frozenset({TimerStatus.PENDING}),
    TimerStatus.CANCELLED: frozenset(),
}

FINISHED = frozenset({TimerStatus.DELIVERED, TimerStatus.FAILED, TimerStatus.EXPIRED, TimerStatus.CANCELLED})

_STATUS_VALUES = ", ".join(f"'{s.value}'" for s in TimerStatus)

timers = Table(
    "timers",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("url", Text, nullable=False),
    Column("status", Text, nullable=False, server_default=text("'pending'")),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("delivery_id", Uuid, nullable=False, server_default=text("gen_random_uuid()")),
    Column("lease_owner", Text, nullable=True),
    Column("lease_expires_at", DateTime(timezone=True), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("delivered_at", DateTime(timezone=True), nullable=True),
    # What is sent: NULL body means the default JSON body.
    Column("method", Text, nullable=False, server_default=text("'POST'")),
    Column("headers", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("body", JSONB, nullable=True),
    Column("labels", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    # Delivery must start before this instant, else the timer ends `expired`.
    Column("deliver_before", DateTime(timezone=True), nullable=True),
    # Per-timer retry policy; NULL means the service default at firing time.
    Column("max_attempts", Integer, nullable=True),
    Column("backoff_base_seconds", Double, nullable=True),
    Column("backoff_cap_seconds", Double, nullable=True),
    Column("timeout_seconds", Double, nullable=True),
    # Attempts made before the last manual redrive; the retry budget counts from here.
    Column("attempts_before_redrive", Integer, nullable=False, server_default=text("0")),
    # The tenant of the API key that created it; other tenants cannot see it.
    Column("tenant", Text, nullable=False, server_default=text("'default'")),
    # A schedule's run: its occurrence time (NULL for a run triggered outside the series).
    Column("schedule_id", BigInteger, ForeignKey("schedules.id"), nullable=True),
    Column("occurrence_at", DateTime(timezone=True), nullable=True),
    # Outcome notifications: called once when the timer ends delivered / failed or expired.
    Column("on_success_url", Text, nullable=True),
    Column("on_failure_url", Text, nullable=True),
    # The timer a replay copied its request from (no foreign key: retention deletes originals).
    Column("replay_of", BigInteger, nullable=True),
    # The W3C traceparent whose trace its deliveries continue (tracing on; NULL otherwise).
    Column("traceparent", Text, nullable=True),
    # The destination whose breaker and pause hold it (destinations/); NULL on timers made before.
    Column("destination", Text, nullable=True),
    # Claimed by flow control (destinations/flow.py) at least once: its firing counts against
    # its destination's parallelism (the regular claim leaves it, so it adds no index entry).
    Column("flow_claimed", Boolean, nullable=True),
    CheckConstraint(f"status IN ({_STATUS_VALUES})", name="ck_timers_status"),
    # The last line behind the API's checks (timers/storable.py): asyncpg stores year 1 as -infinity.
    CheckConstraint(
        "isfinite(due_at) AND due_at >= '1970-01-01 00:00:00+00'", name="ck_timers_due_at_storable"
    ),
    CheckConstraint(
        "deliver_before IS NULL OR (isfinite(deliver_before) AND deliver_before >= '1970-01-01 00:00:00+00')",
        name="ck_timers_deliver_before_storable",
    ),
    # The claim query reads only this index: pending timers in due order.
    Index("ix_timers_pending_due", "due_at", "id", postgresql_where=text("status = 'pending'")),
    # Lease expiry scans only timers being fired.
    Index("ix_timers_firing_lease", "lease_expires_at", postgresql_where=text("status = 'firing'")),
    # The flow-control claim (destinations/flow.py): a destination's due timers, and its timers in
    # flight that flow control claimed (the cluster-wide count its parallelism limits).
    Index(
        "ix_timers_pending_destination",
        "tenant",
        "destination",
        "due_at",
        "id",
        postgresql_where=text("status = 'pending' AND destination IS NOT NULL"),
    ),
    Index(
        "ix_timers_firing_destination",
        "tenant",
        "destination",
        postgresql_where=text("status = 'firing' AND flow_claimed"),
    ),
    # A tenant's pending timers in due order (GET /timers?status=pending, the dashboard); the
    # per-tenant pending cap counts them here too (not the whole table).
    Index(
        "ix_timers_pending_tenant_due", "tenant", "due_at", "id", postgresql_where=text("status = 'pending'")
    ),
    # GET /timers: one tenant's timers in keyset order by (due_at, id).
    Index("ix_timers_tenant_due", "tenant", "due_at", "id"),
    Index(
        "ix_timers_labels",
        "labels",
        postgresql_using="gin",
        postgresql_ops={"labels": "jsonb_path_ops"},
    ),
    # Exactly one run per occurrence of a schedule (a skipped or cancelled one may be made again).
    Index(
        "ux_timers_schedule_occurrence",
        "schedule_id",
        "occurrence_at",
        unique=True,
        postgresql_where=text("schedule_id IS NOT NULL AND status <> 'cancelled'"),
    ),
    # A schedule's runs, newest first; ordinary timers have no entry.
    Index("ix_timers_schedule_runs", "schedule_id", "id", postgresql_where=text("schedule_id IS NOT NULL")),
    # Retention deletes finished timers oldest first, without scanning pending ones.
    Index(
        "ix_timers_finished",
        "updated_at",
        postgresql_where=text("status IN ('delivered', 'failed', 'expired', 'cancelled')"),
    ),
    # Every tenant's finished timers of one status in list order (the admin's lists by status).
    Index(
        "ix_timers_finished_status_due",
        "status",
        "due_at",
        "id",
        postgresql_where=text("status IN ('delivered', 'failed', 'expired', 'cancelled')"),
    ),
)

timer_attempts = Table(
    "timer_attempts",
    metadata,
    Column("timer_id", BigInteger, ForeignKey("timers.id", ondelete="CASCADE"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("duration_ms", Double, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("error_class", Text, nullable=True),
    Column("error_message", Text, nullable=True),
    Column("response_body", Text, nullable=True),
    # When the outcome writer's transaction began (now()): the dashboard's rollups fold attempts
    # by it (ui/rollups.py). NULL for attempts recorded before migration 0013.
    Column("recorded_at", DateTime(timezone=True), nullable=True, server_default=text("now()")),
    PrimaryKeyConstraint("timer_id", "attempt", name="pk_timer_attempts"),
    Index("ix_timer_attempts_recorded", "recorded_at"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("tenant", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("request_hash", Text, nullable=False),
    Column("timer_id", BigInteger, ForeignKey("timers.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    PrimaryKeyConstraint("tenant", "key", name="pk_idempotency_keys"),
)
