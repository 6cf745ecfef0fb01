"""The `destinations` table: a tenant's destination (a key, by default a URL's origin) with its
pause switch and its circuit breaker. A destination without a row is closed and not paused.

The breaker, one state machine per destination:

    from        to          by (destinations/repository.py)   when
    closed      closed      record_outcomes                   a batch of outcomes (failures counted)
    closed      open        record_outcomes                   consecutive failures reach the threshold
    open        half_open   take_probes                       the cool-down is over: one probe is taken
    half_open   half_open   take_probes                       the probe's time ran out: taken again
    half_open   closed      record_outcomes                   the probe (any attempt) succeeded
    half_open   open        record_outcomes                   the probe failed (opened_at restarts)
    any         closed      resume                            POST /destinations/{key}/resume

Every transition is one conditional statement; the claim (timers/repository.py) reads the state.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Table,
    Text,
    text,
)

from task_scheduler.db import metadata


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


_STATES = ", ".join(f"'{s.value}'" for s in BreakerState)

destinations = Table(
    "destinations",
    metadata,
    Column("tenant", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("paused", Boolean, nullable=False, server_default=text("false")),
    Column("breaker_state", Text, nullable=False, server_default=text("'closed'")),
    Column("consecutive_failures", Integer, nullable=False, server_default=text("0")),
    # When the breaker last opened (its cool-down counts from here).
    Column("opened_at", DateTime(timezone=True), nullable=True),
    # Half-open: until when the probe taken belongs to its instance (then another may be taken).
    Column("probe_until", DateTime(timezone=True), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    PrimaryKeyConstraint("tenant", "key", name="pk_destinations"),
    CheckConstraint(f"breaker_state IN ({_STATES})", name="ck_destinations_breaker_state"),
    # Every claim reads the destinations that hold their timers (few), never the healthy ones.
    Index(
        "ix_destinations_holding",
        "tenant",
        "key",
        postgresql_where=text("paused OR breaker_state <> 'closed'"),
    ),
)
