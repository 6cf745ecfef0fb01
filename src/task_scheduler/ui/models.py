"""The dashboard's rollups: deliveries per minute, tenant, destination and outcome, folded from
the attempt log by ui/rollups.py, and the watermark of that fold."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Double, Index, Integer, PrimaryKeyConstraint, Table, Text
from sqlalchemy.dialects.postgresql import ARRAY

from task_scheduler.db import metadata

delivery_rollups = Table(
    "delivery_rollups",
    metadata,
    Column("tenant", Text, nullable=False),
    Column("minute", DateTime(timezone=True), nullable=False),  # of the attempt's recorded_at
    Column("destination", Text, nullable=False),  # host[:port] of the webhook URL
    Column("outcome", Text, nullable=False),  # 'ok', or the attempt's error class
    Column("deliveries", Integer, nullable=False),  # attempts
    Column("duration_ms_sum", Double, nullable=False),
    # Counts per bucket of ui/repository.py's DURATION_EDGES_MS (bucket 0: below the first edge).
    Column("duration_buckets", ARRAY(Integer), nullable=False),
    # The same buckets, of first attempts' lateness (started - due).
    Column("lateness_buckets", ARRAY(Integer), nullable=False),
    PrimaryKeyConstraint("tenant", "minute", "destination", "outcome", name="pk_delivery_rollups"),
    # Every tenant's recent minutes (the admin's charts) and the rollups' own retention.
    Index("ix_delivery_rollups_minute", "minute"),
)

rollup_watermarks = Table(
    "rollup_watermarks",
    metadata,
    Column("name", Text, nullable=False),
    # The minutes before it are final: the fold never recomputes them.
    Column("folded_before", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("name", name="pk_rollup_watermarks"),
)
