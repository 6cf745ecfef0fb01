"""The dashboard's rollups: attempts per minute (and per hour), tenant, destination and outcome,
folded from the attempt log by ui/rollups.py, and the watermark of that fold."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Double, Index, Integer, PrimaryKeyConstraint, Table, Text
from sqlalchemy.dialects.postgresql import ARRAY

from task_scheduler.db import metadata


def _rollup_table(name: str, period: str) -> Table:
    return Table(
        name,
        metadata,
        Column("tenant", Text, nullable=False),
        Column(period, DateTime(timezone=True), nullable=False),  # of the attempts' recorded_at, UTC
        Column("destination", Text, nullable=False),  # host[:port] of the webhook URL
        Column("outcome", Text, nullable=False),  # 'ok', or the attempts' error class
        Column("deliveries", Integer, nullable=False),  # attempts
        Column("duration_ms_sum", Double, nullable=False),
        # Counts per bucket of ui/repository.py's DURATION_EDGES_MS (bucket 0: below the first edge).
        Column("duration_buckets", ARRAY(Integer), nullable=False),
        # The same buckets, of first attempts' lateness (started - due).
        Column("lateness_buckets", ARRAY(Integer), nullable=False),
        PrimaryKeyConstraint("tenant", period, "destination", "outcome", name=f"pk_{name}"),
        # Every tenant's recent rows (the admin's charts) and the rollups' own retention.
        Index(f"ix_{name}_{period}", period),
    )


# The last hour's charts and the destinations read minutes; the last day's read hours.
delivery_rollups = _rollup_table("delivery_rollups", "minute")
delivery_rollups_hourly = _rollup_table("delivery_rollups_hourly", "hour")

rollup_watermarks = Table(
    "rollup_watermarks",
    metadata,
    Column("name", Text, nullable=False),
    # The minutes before it are final: the fold never recomputes them.
    Column("folded_before", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("name", name="pk_rollup_watermarks"),
)
