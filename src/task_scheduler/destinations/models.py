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
    half_open   open+paused record_outcomes                   the probe failed and it has failed since
                                                              `failing_since` for longer than
                                                              SCHEDULER_BREAKER_DISABLE_AFTER_SECONDS:
                                                              disabled (`disabled_at`), no more probes
    any         closed      resume                            POST /destinations/{key}/resume
    disabled    open        update (paused: false)            PUT /destinations/{key}: probes resume

Every transition is one conditional statement; the claim (timers/repository.py) reads the state.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Double,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from task_scheduler.db import metadata


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


# The state changes kept in a destination's history: the breaker opened (from closed) or closed,
# the service disabled it, an operator paused, unpaused or resumed it. A failed probe is not one.
HISTORY_EVENTS = ("opened", "closed", "disabled", "paused", "unpaused", "resumed")
HISTORY_LENGTH = 20

# A destination whose timers the regular claim passes by: held, or sent under a limit.
HOLDING = "paused OR breaker_state <> 'closed'"
LIMITED = "rate_per_second IS NOT NULL OR parallelism IS NOT NULL"
HOLDING_OR_LIMITED = f"{HOLDING} OR {LIMITED}"

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
    # Flow control (flow.py): NULL is unlimited; a NULL burst is max(1, ceil(rate_per_second)).
    Column("rate_per_second", Double, nullable=True),
    Column("burst", Integer, nullable=True),
    Column("parallelism", Integer, nullable=True),
    # The token bucket as last spent: `tokens` at `tokens_at` (NULL: full).
    Column("tokens", Double, nullable=True),
    Column("tokens_at", DateTime(timezone=True), nullable=True),
    # When the breaker opened from closed: kept through failed probes, NULL while closed.
    Column("failing_since", DateTime(timezone=True), nullable=True),
    # When the service paused the destination for failing too long (NULL: it did not).
    Column("disabled_at", DateTime(timezone=True), nullable=True),
    # Its last HISTORY_LENGTH state changes, newest first: [{"at", "event", "consecutive_failures"}]
    # (repository.py writes them in the statements that change the state).
    Column("history", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    PrimaryKeyConstraint("tenant", "key", name="pk_destinations"),
    CheckConstraint(f"breaker_state IN ({_STATES})", name="ck_destinations_breaker_state"),
    # Bounds that exclude NaN and ±infinity as well (NaN > 0 holds in PostgreSQL): the flow claim
    # locks every limited destination in one transaction, and one row with a NaN rate or an
    # infinite tokens_at made it fail for all of them (tests/integration/test_hostile_rows.py).
    CheckConstraint(
        "(rate_per_second IS NULL OR (rate_per_second > 0 AND rate_per_second <= 1000000))"
        " AND (burst IS NULL OR burst BETWEEN 1 AND 1000000)"
        " AND (parallelism IS NULL OR parallelism BETWEEN 1 AND 100000)"
        " AND (tokens IS NULL OR tokens BETWEEN -1000000 AND 1000000)"
        " AND (tokens_at IS NULL OR isfinite(tokens_at)) AND consecutive_failures >= 0",
        name="ck_destinations_limits",
    ),
    # Every claim reads the destinations that hold their timers or limit them (few), never the
    # healthy unlimited ones: their timers are left to the flow-control claim.
    Index(
        "ix_destinations_holding",
        "tenant",
        "key",
        postgresql_where=text(HOLDING_OR_LIMITED),
    ),
)
