"""destination limits: a rate (token bucket) and a parallelism per destination (issue 16)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02

Nullable columns without defaults: no rewrite of either table. The partial index the regular
claim reads to pass by held destinations now also covers the limited ones (their timers go out
through the flow-control claim). Two partial indexes on timers serve that claim: a destination's
due pending timers, and its timers in flight that flow control claimed (`flow_claimed`, set by
that claim only: the regular claim of an unlimited timer adds no index entry).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_HOLDING = "paused OR breaker_state <> 'closed'"
_HOLDING_OR_LIMITED = f"{_HOLDING} OR rate_per_second IS NOT NULL OR parallelism IS NOT NULL"


def upgrade() -> None:
    op.add_column("destinations", sa.Column("rate_per_second", sa.Double, nullable=True))
    op.add_column("destinations", sa.Column("burst", sa.Integer, nullable=True))
    op.add_column("destinations", sa.Column("parallelism", sa.Integer, nullable=True))
    op.add_column("destinations", sa.Column("tokens", sa.Double, nullable=True))
    op.add_column("destinations", sa.Column("tokens_at", sa.DateTime(timezone=True), nullable=True))
    # A negative failure count could only be written from outside; the bounds keep NaN and
    # ±infinity out too (NaN > 0 holds in PostgreSQL), see destinations/models.py.
    op.execute("UPDATE destinations SET consecutive_failures = 0 WHERE consecutive_failures < 0")
    op.create_check_constraint(
        "ck_destinations_limits",
        "destinations",
        "(rate_per_second IS NULL OR (rate_per_second > 0 AND rate_per_second <= 1000000))"
        " AND (burst IS NULL OR burst BETWEEN 1 AND 1000000)"
        " AND (parallelism IS NULL OR parallelism BETWEEN 1 AND 100000)"
        " AND (tokens IS NULL OR tokens BETWEEN -1000000 AND 1000000)"
        " AND (tokens_at IS NULL OR isfinite(tokens_at)) AND consecutive_failures >= 0",
    )
    op.drop_index("ix_destinations_holding", table_name="destinations")
    op.create_index(
        "ix_destinations_holding",
        "destinations",
        ["tenant", "key"],
        postgresql_where=sa.text(_HOLDING_OR_LIMITED),
    )
    op.create_index(
        "ix_timers_pending_destination",
        "timers",
        ["tenant", "destination", "due_at", "id"],
        postgresql_where=sa.text("status = 'pending' AND destination IS NOT NULL"),
    )
    op.add_column("timers", sa.Column("flow_claimed", sa.Boolean, nullable=True))
    op.create_index(
        "ix_timers_firing_destination",
        "timers",
        ["tenant", "destination"],
        postgresql_where=sa.text("status = 'firing' AND flow_claimed"),
    )


def downgrade() -> None:
    op.drop_index("ix_timers_firing_destination", table_name="timers")
    op.drop_column("timers", "flow_claimed")
    op.drop_index("ix_timers_pending_destination", table_name="timers")
    op.drop_index("ix_destinations_holding", table_name="destinations")
    op.create_index(
        "ix_destinations_holding", "destinations", ["tenant", "key"], postgresql_where=sa.text(_HOLDING)
    )
    op.drop_constraint("ck_destinations_limits", "destinations", type_="check")
    for column in ("tokens_at", "tokens", "parallelism", "burst", "rate_per_second"):
        op.drop_column("destinations", column)
