"""Flow control: a rate (token bucket) and a parallelism per destination, held across every
instance through PostgreSQL (issue 16).

Why this design:
- The state lives in the destination's row (`tokens` as of `tokens_at`), so every instance spends
  the same bucket; the refill is computed from the database's `clock_timestamp()`, never from a
  host's clock. No per-process limiter: N instances would send N times the limit.
- Parallelism counts the destination's timers in status `firing` (claimed, outcome not yet
  written) that flow control claimed (`flow_claimed`), in a small partial index. No counter to
  keep in step: a timer whose instance died stops counting when lease expiry returns it, so the
  count heals itself. It errs high (an outcome waits a few milliseconds for its batch). It leaves
  out a limited destination's timers claimed otherwise: its half-open breaker's one probe, and
  timers the regular claim took (up to the lookahead ahead) before the limit was set. Counting
  every firing timer instead needs an index entry on every claim: 1-16 % of the regular claim of
  unlimited timers in four runs (docs/performance.md).
- The regular claim passes by a limited destination's timers exactly as it passes by a held one
  (one anti-join on a partial index of the few destinations that hold or limit): the regular
  claim does no more work than before. Every insert pays one entry in the index of a
  destination's pending timers (4-23 % of an insert statement of 1,000: without it each flow
  claim would walk the due timers of every other destination). A timer past its lateness cutoff
  is still taken by the regular claim, to be expired unsent.
- The flow-control claim (dispatcher's `flow` loop) locks, in one transaction, every limited
  destination with timers due (FOR UPDATE SKIP LOCKED, (tenant, key) order: instances never wait
  for each other, one claims a destination while another passes it by), refills each bucket,
  claims at most `allowance()` of its due timers (not ahead of time: a limited timer is sent when
  it is claimed, so the rate the receiver sees is the rate of the claims), and stores the tokens
  left. The timers in flight are counted by a statement after the lock, not in it: in READ
  COMMITTED the locking statement's snapshot may predate the commit of the instance that held the
  row just before (a row only locked is not read again), and a count in it could miss that
  instance's claim, letting the parallelism be exceeded. One transaction for all of them rather
  than one per destination: five statements a turn however many destinations are limited (the
  claim is one statement, a lateral join per destination). It runs every `flow_interval_seconds`
  while limited destinations have timers due (also when another instance holds them locked: it
  comes back soon), otherwise when woken or polled like the regular claim.
- A half-open breaker's probe is taken as before (one request, outside the bucket).

A timer waiting for its destination stays `pending` with its attempts untouched; GET /timer/{id}
says why (`rate_limited`, `parallelism`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from task_scheduler.destinations.repository import Bucket


def default_burst(rate_per_second: float) -> int:
    """The burst of a rate given without one: one second's worth, at least one request."""
    return max(1, math.ceil(rate_per_second))


def allowance(bucket: Bucket, *, limit: int) -> int:
    """How many of the destination's due timers this claim may take: whole tokens, free room
    under its parallelism, and `limit` (the claim's batch), whichever is least."""
    allowed = limit
    if bucket.tokens is not None:
        allowed = min(allowed, math.floor(bucket.tokens + 1e-9))
    if bucket.parallelism is not None:
        allowed = min(allowed, bucket.parallelism - bucket.in_flight)
    return max(0, allowed)


def share(buckets: Sequence[Bucket], *, room: int, turn: int) -> dict[tuple[str, str], int]:
    """Each destination's allowance, together at most `room` (this instance's free room): served
    in turn, starting from a different destination each claim, so none starves another."""
    allowed: dict[tuple[str, str], int] = {}
    for i in range(len(buckets)):
        bucket = buckets[(turn + i) % len(buckets)]
        allowed[(bucket.tenant, bucket.key)] = taken = allowance(bucket, limit=room)
        room -= taken
    return allowed


def deferred_by(bucket: Bucket) -> str:
    """Which limit left a destination's due timers waiting: `parallelism` or `rate_limited`."""
    if bucket.parallelism is not None and bucket.in_flight >= bucket.parallelism:
        return "parallelism"
    return "rate_limited"
