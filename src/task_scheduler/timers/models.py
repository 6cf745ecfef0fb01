"""The `timers` table and the one state machine every timer follows.

    from      to          by (repository function)            when
    pending   firing      claim_due                           due within the lookahead window
    firing    delivered   mark_delivered                      the webhook answered 2xx
    firing    pending     schedule_retry                      attempt failed, attempts remain
    firing    failed      mark_failed                         attempt failed, none remain (or not retryable)
    firing    pending     release_leases / expire_leases      shutdown before sending / owner crashed
    firing    firing      extend_leases                       the owner's heartbeat (lease only)

Every transition is a conditional `UPDATE ... WHERE status = ...` (fenced by lease owner and
attempt where an instance holds the lease); nothing reads and then writes.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    Uuid,
    text,
)

metadata = MetaData()


class TimerStatus(StrEnum):
    PENDING = "pending"
    FIRING = "firing"
    DELIVERED = "delivered"
    FAILED = "failed"


ALLOWED_TRANSITIONS: dict[TimerStatus, frozenset[TimerStatus]] = {
    TimerStatus.PENDING: frozenset({TimerStatus.FIRING}),
    TimerStatus.FIRING: frozenset({TimerStatus.DELIVERED, TimerStatus.PENDING, TimerStatus.FAILED}),
    TimerStatus.DELIVERED: frozenset(),
    TimerStatus.FAILED: frozenset(),
}

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
    CheckConstraint(f"status IN ({_STATUS_VALUES})", name="ck_timers_status"),
    # The claim query reads only this index: pending timers in due order.
    Index("ix_timers_pending_due", "due_at", "id", postgresql_where=text("status = 'pending'")),
    # Lease expiry scans only timers being fired.
    Index("ix_timers_firing_lease", "lease_expires_at", postgresql_where=text("status = 'firing'")),
)
