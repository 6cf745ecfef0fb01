"""A destination's recent health: attempts, success rate, p50 and p99 response time over the last
`WINDOW_MINUTES`, read from the delivery rollups (ui/rollups.py), not from the attempt log.

Why the rollups: `timer_attempts` has no destination (only its timer's), so the figures from it
would join every attempt of the window, cluster-wide, to its timer: with 1,000,000 attempts in
the last 15 minutes that took 629 ms. The rollups fold those attempts per tenant, minute,
webhook host and outcome, with a duration histogram: the GET reads a few rows per host and
minute through their minute index, whatever the traffic (0.56 ms beside 1,152,100 rollup rows;
EXPLAIN ANALYZE in the README's destinations section). What that costs: the figures are per
host (a key given on create, which may span hosts, has none; an origin's figures count every
attempt to its host, those of timers given another key included), as fresh as the last fold
(every SCHEDULER_ROLLUP_INTERVAL_SECONDS), and the percentiles are estimated within the
histogram's buckets."""

from __future__ import annotations

from collections.abc import Sequence

from task_scheduler.destinations.keys import rollup_hosts
from task_scheduler.destinations.repository import HostMinute
from task_scheduler.destinations.schemas import DestinationHealth
from task_scheduler.ui.repository import bucket_quantile

WINDOW_MINUTES = 15


def health_of(key: str, rollups: Sequence[HostMinute]) -> DestinationHealth | None:
    """The destination's figures from `rollups` (of its hosts, or more); None if its key names no host."""
    hosts = rollup_hosts(key)
    if not hosts:
        return None
    mine = [r for r in rollups if r.host in hosts]
    attempts = sum(r.attempts for r in mine)
    succeeded = sum(r.attempts for r in mine if r.ok)
    buckets = [sum(column) for column in zip(*(r.duration_buckets for r in mine), strict=True)]
    return DestinationHealth(
        window_seconds=WINDOW_MINUTES * 60,
        hosts=list(hosts),
        attempts=attempts,
        succeeded=succeeded,
        success_rate=succeeded / attempts if attempts else None,
        p50_ms=bucket_quantile(buckets, 0.5) if attempts else None,
        p99_ms=bucket_quantile(buckets, 0.99) if attempts else None,
    )
