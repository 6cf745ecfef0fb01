"""Persistence of destinations: explicit SQL, one named function per state change (the breaker's
state machine is in models.py). Rows are locked in (tenant, key) order everywhere, so two
instances writing outcomes of the same destinations never deadlock."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from task_scheduler.destinations.models import HISTORY_LENGTH, HOLDING, LIMITED, BreakerState
from task_scheduler.ui.repository import bucket_counts


@dataclass(frozen=True, slots=True)
class DestinationRow:
    tenant: str
    key: str
    paused: bool
    breaker_state: BreakerState
    consecutive_failures: int
    opened_at: datetime | None
    updated_at: datetime
    rate_per_second: float | None
    burst: int | None  # NULL: max(1, ceil(rate_per_second))
    parallelism: int | None
    failing_since: datetime | None = None  # when the breaker opened from closed (NULL: closed)
    disabled_at: datetime | None = None  # when it was disabled for failing too long
    history: object = None  # its last state changes, newest first (jsonb as stored: see models.py)


@dataclass(frozen=True, slots=True)
class Tally:
    """What one batch of outcomes says of a destination: whether it answered at least once
    (`answered`), and how many failures came after its last answer (all of them if none)."""

    tenant: str
    key: str
    answered: bool
    trailing_failures: int


@dataclass(frozen=True, slots=True)
class Transition:
    """A breaker that changed state by a batch of outcomes (or a destination that it disabled:
    its probe failed after it had failed for longer than the disable setting)."""

    tenant: str
    key: str
    before: BreakerState
    after: BreakerState
    consecutive_failures: int
    disabled: bool = False
    failing_since: datetime | None = None


_COLUMNS = (
    "tenant, key, paused, breaker_state, consecutive_failures, opened_at, updated_at, "
    "rate_per_second, burst, parallelism, failing_since, disabled_at, history"
)


def _row(m: object) -> DestinationRow:
    values = dict(m._mapping)  # type: ignore[attr-defined]
    values["breaker_state"] = BreakerState(values["breaker_state"])
    return DestinationRow(**values)


def _noted(history: str, event: str, failures: str) -> str:
    """SQL: `history` (a jsonb column; anything but an array reads as empty) with one entry in
    front, {"at": now(), "event", "consecutive_failures"}, cut to its last HISTORY_LENGTH."""
    return f"""jsonb_path_query_array(
        jsonb_build_array(jsonb_build_object('at', now(), 'event', {event}, 'consecutive_failures', {failures}))
        || CASE WHEN jsonb_typeof({history}) = 'array' THEN {history} ELSE '[]'::jsonb END,
        '$[0 to {HISTORY_LENGTH - 1}]')"""


# -- outcomes (the outcome writer, in its transaction) -------------------------------------------

# A destination that failed gets a row (closed, no failures) to count on; a healthy one has none.
_ENSURE_ROWS = text("""
INSERT INTO destinations (tenant, key)
SELECT tenant, key FROM unnest(CAST(:tenants AS text[]), CAST(:keys AS text[])) AS i(tenant, key)
ORDER BY tenant, key
ON CONFLICT (tenant, key) DO NOTHING
""")

# The rows a batch changes, locked in order and read as they are now (`locked`): a row with no
# failures, closed, that only answered, is left alone (and not locked): the healthy path writes nothing.
_RECORD_OUTCOMES = text(f"""
WITH input AS (
    SELECT * FROM unnest(CAST(:tenants AS text[]), CAST(:keys AS text[]), CAST(:answered AS boolean[]),
                         CAST(:fresh_failures AS integer[])) AS i(tenant, key, answered, fresh_failures)
), locked AS (
    SELECT d.tenant, d.key, d.breaker_state, d.consecutive_failures, d.paused, d.failing_since, d.opened_at,
           input.answered, input.fresh_failures
    FROM destinations AS d JOIN input ON d.tenant = input.tenant AND d.key = input.key
    WHERE input.fresh_failures > 0 OR d.consecutive_failures > 0 OR d.breaker_state <> 'closed'
    ORDER BY d.tenant, d.key
    FOR UPDATE OF d
), counted AS (
    SELECT locked.*,
           CASE WHEN answered THEN fresh_failures
                ELSE CAST(least(CAST(consecutive_failures AS bigint) + fresh_failures, 2147483647) AS integer)
           END AS failures
    FROM locked
), changed AS (
    SELECT counted.*,
           CASE
               WHEN fresh_failures = 0 THEN 'closed'
               WHEN breaker_state = 'half_open' AND NOT answered THEN 'open'
               WHEN failures >= CAST(:threshold AS integer) THEN 'open'
               WHEN breaker_state = 'open' AND NOT answered THEN 'open'
               ELSE 'closed'
           END AS next_state,
           -- `disable`: its probe failed, and it has been failing for longer than the setting (0: never)
           (CAST(:disable_after_seconds AS double precision) > 0
            AND breaker_state = 'half_open' AND NOT answered AND fresh_failures > 0 AND NOT paused
            AND coalesce(failing_since, opened_at, now())
                + make_interval(secs => CAST(:disable_after_seconds AS double precision)) <= now()) AS disable
    FROM counted
), noted AS (
    SELECT changed.*,
           CASE WHEN disable THEN 'disabled'
                WHEN breaker_state = 'closed' AND next_state = 'open' THEN 'opened'
                WHEN breaker_state <> 'closed' AND next_state = 'closed' THEN 'closed'
           END AS event
    FROM changed
)
UPDATE destinations AS d
SET consecutive_failures = noted.failures,
    breaker_state = noted.next_state,
    -- the cool-down counts from the last opening (a failed probe opens again); an open breaker
    -- that keeps failing (outcomes of requests sent before it opened) keeps its time
    opened_at = CASE
        WHEN noted.fresh_failures = 0 THEN d.opened_at
        WHEN noted.breaker_state = 'half_open' AND NOT noted.answered THEN now()
        WHEN noted.breaker_state = 'open' AND NOT noted.answered THEN d.opened_at
        WHEN noted.failures >= CAST(:threshold AS integer) THEN now()
        ELSE d.opened_at
    END,
    -- when the failing began: from the opening out of closed until it closes
    failing_since = CASE
        WHEN noted.fresh_failures = 0 THEN NULL
        WHEN noted.breaker_state <> 'closed' THEN coalesce(d.failing_since, d.opened_at, now())
        WHEN noted.failures >= CAST(:threshold AS integer) THEN now()
        ELSE NULL
    END,
    paused = d.paused OR noted.disable,
    disabled_at = CASE WHEN noted.disable THEN now() ELSE d.disabled_at END,
    history = CASE WHEN noted.event IS NULL THEN d.history
                   ELSE {_noted("d.history", "noted.event", "noted.failures")} END,
    probe_until = NULL,
    updated_at = now()
FROM noted
WHERE d.tenant = noted.tenant AND d.key = noted.key
RETURNING d.tenant, d.key, noted.breaker_state AS before, d.breaker_state AS after, d.consecutive_failures,
          noted.disable AS disabled, d.failing_since
""")


async def record_outcomes(
    conn: AsyncConnection, *, tallies: Sequence[Tally], threshold: int, disable_after_seconds: float = 0.0
) -> list[Transition]:
    """closed → open when the consecutive failures reach `threshold`; half_open → open when the
    probe failed, and paused too (disabled) when it has been failing for `disable_after_seconds`
    (0: never); open or half_open → closed when the destination answered last. Returns the
    breakers whose state changed and the destinations disabled."""
    if not tallies:
        return []
    failing = sorted({(t.tenant, t.key) for t in tallies if t.trailing_failures > 0})
    if failing:
        await conn.execute(
            _ENSURE_ROWS, {"tenants": [t for t, _ in failing], "keys": [k for _, k in failing]}
        )
    result = await conn.execute(
        _RECORD_OUTCOMES,
        {
            "tenants": [t.tenant for t in tallies],
            "keys": [t.key for t in tallies],
            "answered": [t.answered for t in tallies],
            "fresh_failures": [t.trailing_failures for t in tallies],
            "threshold": threshold,
            "disable_after_seconds": disable_after_seconds,
        },
    )
    return [
        Transition(
            r.tenant,
            r.key,
            BreakerState(r.before),
            BreakerState(r.after),
            r.consecutive_failures,
            disabled=r.disabled,
            failing_since=r.failing_since,
        )
        for r in result
        if r.before != r.after or r.disabled
    ]


# -- the probe (the claim, in its transaction) ---------------------------------------------------

_TAKE_PROBES = text("""
UPDATE destinations
SET breaker_state = 'half_open',
    probe_until = now() + make_interval(secs => CAST(:probe_seconds AS double precision)),
    updated_at = now()
WHERE (tenant, key) IN (
    SELECT tenant, key FROM destinations
    WHERE breaker_state <> 'closed' AND NOT paused
      AND ((breaker_state = 'open'
            AND opened_at + make_interval(secs => CAST(:cooldown_seconds AS double precision)) <= now())
           OR (breaker_state = 'half_open' AND probe_until < now()))
    ORDER BY tenant, key
    FOR UPDATE SKIP LOCKED
)
RETURNING tenant, key
""")


async def take_probes(
    conn: AsyncConnection, *, cooldown_seconds: float, probe_seconds: float
) -> list[tuple[str, str]]:
    """open → half_open for the breakers whose cool-down is over (and half_open → half_open for
    those whose probe's time ran out): this transaction alone may send their one probe, for
    `probe_seconds`. Returns (tenant, key) of each."""
    result = await conn.execute(
        _TAKE_PROBES, {"cooldown_seconds": cooldown_seconds, "probe_seconds": probe_seconds}
    )
    return sorted((r.tenant, r.key) for r in result)


_NO_PROBE = text("""
UPDATE destinations SET breaker_state = 'open', opened_at = now(), probe_until = NULL, updated_at = now()
WHERE tenant = :tenant AND key = :key AND breaker_state = 'half_open'
""")


async def no_probe(conn: AsyncConnection, *, tenant: str, key: str) -> None:
    """half_open → open with a new cool-down: the probe taken found no timer due to send."""
    await conn.execute(_NO_PROBE, {"tenant": tenant, "key": key})


_HOLDING = text("""
SELECT tenant, key FROM destinations WHERE paused OR breaker_state <> 'closed'
""")


async def holding(conn: AsyncConnection) -> set[tuple[str, str]]:
    """(tenant, key) of every destination that holds its timers now (paused, or not closed)."""
    return {(r.tenant, r.key) for r in await conn.execute(_HOLDING)}


_COUNT_HOLDING = text("SELECT count(*) FROM destinations WHERE paused OR breaker_state <> 'closed'")
_COUNT_HELD = text("""
SELECT count(*) FROM timers AS t
WHERE t.status = 'pending' AND t.due_at <= now() AND EXISTS (
    SELECT 1 FROM destinations AS d
    WHERE d.tenant = t.tenant AND d.key = t.destination AND (d.paused OR d.breaker_state <> 'closed'))
""")


async def holding_stats(conn: AsyncConnection) -> tuple[int, int]:
    """(destinations holding their timers, pending timers due now that they hold); the timers are
    counted (a scan of the due ones) only while some destination holds."""
    holding = int((await conn.execute(_COUNT_HOLDING)).scalar_one())
    if not holding:
        return 0, 0
    return holding, int((await conn.execute(_COUNT_HELD)).scalar_one())


# -- the API ---------------------------------------------------------------------------------------

_HELD_REASON = text(f"""
SELECT CASE WHEN paused AND disabled_at IS NOT NULL THEN 'destination_disabled'
            WHEN paused THEN 'destination_paused'
            WHEN breaker_state <> 'closed' THEN 'destination_open'
            WHEN parallelism IS NOT NULL AND parallelism <= (
                SELECT count(*) FROM timers AS f
                WHERE f.status = 'firing' AND f.flow_claimed
                  AND f.tenant = d.tenant AND f.destination = d.key) THEN 'parallelism'
            WHEN rate_per_second IS NOT NULL THEN 'rate_limited' END
FROM destinations AS d WHERE tenant = :tenant AND key = :key AND ({HOLDING} OR {LIMITED})
""")


async def held_reason(conn: AsyncConnection, *, tenant: str, key: str) -> str | None:
    """Why a due pending timer of this destination waits: disabled, paused, breaker not closed, all its
    parallelism in flight, or its rate (its turn in the token bucket); None: nothing holds it."""
    reason: str | None = (await conn.execute(_HELD_REASON, {"tenant": tenant, "key": key})).scalar()
    return reason


async def get_destination(conn: AsyncConnection, *, tenant: str, key: str) -> DestinationRow | None:
    row = (
        await conn.execute(
            text(f"SELECT {_COLUMNS} FROM destinations WHERE tenant = :tenant AND key = :key"),
            {"tenant": tenant, "key": key},
        )
    ).one_or_none()
    return None if row is None else _row(row)


async def list_destinations(
    conn: AsyncConnection, *, tenant: str, after: str | None, limit: int
) -> list[DestinationRow]:
    """The tenant's destinations with a row, in key order after `after` (keyset)."""
    rows = await conn.execute(
        text(f"""
            SELECT {_COLUMNS} FROM destinations
            WHERE tenant = :tenant AND (CAST(:after AS text) IS NULL OR key > :after)
            ORDER BY key
            LIMIT :limit
        """),
        {"tenant": tenant, "after": after, "limit": limit},
    )
    return [_row(r) for r in rows]


@dataclass(frozen=True, slots=True)
class Change:
    """What PUT /destinations/{key} changes: each field given (`fields`) is set, the others kept."""

    fields: frozenset[str]
    paused: bool = False
    rate_per_second: float | None = None
    burst: int | None = None
    parallelism: int | None = None


_CHANGEABLE = ("paused", "rate_per_second", "burst", "parallelism")
_UPDATE = text(f"""
INSERT INTO destinations (tenant, key, paused, rate_per_second, burst, parallelism, history)
VALUES (:tenant, :key, :paused, :rate_per_second, :burst, :parallelism,
        CASE WHEN :set_paused AND CAST(:paused AS boolean) THEN {_noted("'[]'::jsonb", "'paused'", "0")}
             ELSE '[]'::jsonb END)
ON CONFLICT (tenant, key) DO UPDATE SET
{", ".join(f"{c} = CASE WHEN :set_{c} THEN excluded.{c} ELSE destinations.{c} END" for c in _CHANGEABLE)},
    history = CASE
        WHEN :set_paused AND excluded.paused <> destinations.paused THEN {
    _noted(
        "destinations.history",
        "CASE WHEN excluded.paused THEN 'paused' ELSE 'unpaused' END",
        "destinations.consecutive_failures",
    )
}
        ELSE destinations.history END,
    -- unpausing a disabled destination gives it a new term before it can be disabled again
    failing_since = CASE WHEN :set_paused AND NOT excluded.paused AND destinations.disabled_at IS NOT NULL
                         THEN now() ELSE destinations.failing_since END,
    disabled_at = CASE WHEN :set_paused AND NOT excluded.paused THEN NULL ELSE destinations.disabled_at END,
    updated_at = now()
RETURNING {_COLUMNS}
""")


async def update(conn: AsyncConnection, *, tenant: str, key: str, change: Change) -> DestinationRow:
    """Pause or unpause a destination and set its limits (the fields given); its breaker and its
    token bucket are left as they are (a bucket never filled starts full). Unpausing a disabled
    destination ends the disablement: its probes resume, and its failing time starts anew."""
    params: dict[str, object] = {"tenant": tenant, "key": key}
    for column in _CHANGEABLE:
        params[column] = getattr(change, column)
        params[f"set_{column}"] = column in change.fields
    return _row((await conn.execute(_UPDATE, params)).one())


_STATE_FOR_UPDATE = text(
    "SELECT breaker_state FROM destinations WHERE tenant = :tenant AND key = :key FOR UPDATE"
)
_RESUME = text(f"""
INSERT INTO destinations (tenant, key) VALUES (:tenant, :key)
ON CONFLICT (tenant, key) DO UPDATE
SET paused = false, breaker_state = 'closed', consecutive_failures = 0, probe_until = NULL,
    failing_since = NULL, disabled_at = NULL,
    history = CASE WHEN destinations.paused OR destinations.breaker_state <> 'closed'
                   THEN {_noted("destinations.history", "'resumed'", "destinations.consecutive_failures")}
                   ELSE destinations.history END,
    updated_at = now()
RETURNING {_COLUMNS}
""")


async def resume(conn: AsyncConnection, *, tenant: str, key: str) -> tuple[DestinationRow, BreakerState]:
    """Any state → closed and not paused; returns the row and the breaker's state before."""
    params = {"tenant": tenant, "key": key}
    before = (await conn.execute(_STATE_FOR_UPDATE, params)).scalar()
    row = (await conn.execute(_RESUME, params)).one()
    return _row(row), BreakerState(before or BreakerState.CLOSED)


_WAITING = text("""
SELECT count(*) FROM timers
WHERE status = 'pending' AND tenant = :tenant AND destination = :key AND due_at <= now()
""")


async def count_waiting(conn: AsyncConnection, *, tenant: str, key: str) -> int:
    """The destination's pending timers due now (held, or about to be claimed)."""
    return int((await conn.execute(_WAITING, {"tenant": tenant, "key": key})).scalar_one())


_IN_FLIGHT = text("""
SELECT destination, count(*) AS n FROM timers
WHERE status = 'firing' AND tenant = :tenant AND destination = ANY(CAST(:keys AS text[]))
GROUP BY destination
""")


async def count_in_flight(conn: AsyncConnection, *, tenant: str, keys: Sequence[str]) -> dict[str, int]:
    """Per destination of `keys`, its timers being fired now by any instance (status firing):
    read through the partial index of firing timers, as few as the requests in flight."""
    rows = await conn.execute(_IN_FLIGHT, {"tenant": tenant, "keys": list(keys)})
    return {r.destination: int(r.n) for r in rows}


@dataclass(frozen=True, slots=True)
class HostMinute:
    """One rollup row (ui/rollups.py): a host's attempts of one outcome in one minute."""

    host: str
    ok: bool
    attempts: int
    duration_buckets: list[int]  # exactly ui.repository.BUCKETS counts, whatever the row held


# The rollups' minute index serves it (EXPLAIN: ix_delivery_rollups_minute): the last minutes'
# rows, a few per tenant, host and minute, whatever the number of attempts they fold.
_RECENT_ROLLUPS = text("""
SELECT destination AS host, outcome = 'ok' AS ok, greatest(deliveries, 0) AS deliveries, duration_buckets
FROM delivery_rollups
WHERE tenant = :tenant
  AND minute >= date_trunc('minute', now()) - make_interval(mins => CAST(:minutes AS integer) - 1)
  AND minute <= now()
  AND destination = ANY(CAST(:hosts AS text[]))
""")


async def recent_rollups(
    conn: AsyncConnection, *, tenant: str, hosts: Sequence[str], minutes: int
) -> list[HostMinute]:
    """The tenant's rollups of `hosts` over the last `minutes` whole minutes (this one included)."""
    if not hosts:
        return []
    params = {"tenant": tenant, "hosts": list(hosts), "minutes": minutes}
    return [
        HostMinute(r.host, bool(r.ok), int(r.deliveries), bucket_counts(r.duration_buckets))
        for r in await conn.execute(_RECENT_ROLLUPS, params)
    ]


# -- flow control (flow.py) -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bucket:
    """A limited destination locked by the flow-control claim: its tokens refilled up to `at`
    (None: no rate), its limit in flight and the timers it has in flight cluster-wide."""

    tenant: str
    key: str
    tokens: float | None
    at: datetime
    parallelism: int | None
    in_flight: int


# A limited destination (`d`), not held, with a timer due.
_LIMITED_AND_DUE = """(d.rate_per_second IS NOT NULL OR d.parallelism IS NOT NULL)
  AND NOT d.paused AND d.breaker_state = 'closed'
  AND EXISTS (
      SELECT 1 FROM timers AS t
      WHERE t.status = 'pending' AND t.destination IS NOT NULL
        AND t.tenant = d.tenant AND t.destination = d.key AND t.due_at <= now())"""

# Those locked in (tenant, key) order, skipping those another instance is claiming for now; the
# bucket refilled from the database's clock.
_LOCK_LIMITED = text(f"""
SELECT d.tenant, d.key, d.parallelism, clock.at,
       CASE WHEN d.rate_per_second IS NULL THEN NULL
            ELSE least(size.burst, coalesce(d.tokens, size.burst) + d.rate_per_second
                       * greatest(0.0, extract(epoch FROM clock.at - coalesce(d.tokens_at, clock.at))))
       END AS tokens
FROM destinations AS d
CROSS JOIN LATERAL (SELECT clock_timestamp() AS at) AS clock
CROSS JOIN LATERAL (
    SELECT CAST(coalesce(d.burst, greatest(1, ceil(d.rate_per_second))) AS double precision) AS burst
) AS size
WHERE {_LIMITED_AND_DUE}
ORDER BY d.tenant, d.key
FOR UPDATE OF d SKIP LOCKED
""")


# Their timers in flight, counted by a statement of its own after the lock: the locking statement's
# snapshot may predate the commit of the instance that held a row just before (a row locked, not
# changed, is not read again), so a count in it could miss that instance's claim.
_FLOW_IN_FLIGHT = text("""
SELECT f.tenant, f.destination, count(*) AS in_flight
FROM unnest(CAST(:tenants AS text[]), CAST(:keys AS text[])) AS k(tenant, key)
JOIN timers AS f ON f.tenant = k.tenant AND f.destination = k.key
WHERE f.status = 'firing' AND f.flow_claimed
GROUP BY f.tenant, f.destination
""")


async def lock_limited(conn: AsyncConnection) -> list[Bucket]:
    """The limited destinations with timers due, locked until the transaction ends, each with its
    bucket refilled and its timers in flight (those flow control claimed) counted."""
    rows = (await conn.execute(_LOCK_LIMITED)).all()
    counted = [(r.tenant, r.key) for r in rows if r.parallelism is not None]
    in_flight: dict[tuple[str, str], int] = {}
    if counted:
        params = {"tenants": [t for t, _ in counted], "keys": [k for _, k in counted]}
        in_flight = {
            (r.tenant, r.destination): int(r.in_flight) for r in await conn.execute(_FLOW_IN_FLIGHT, params)
        }
    return [
        Bucket(r.tenant, r.key, r.tokens, r.at, r.parallelism, in_flight.get((r.tenant, r.key), 0))
        for r in rows
    ]


_LIMITED_DUE = text(f"SELECT EXISTS (SELECT 1 FROM destinations AS d WHERE {_LIMITED_AND_DUE})")


async def limited_due(conn: AsyncConnection) -> bool:
    """Whether any limited destination has timers due, locked by another instance or not."""
    return bool((await conn.execute(_LIMITED_DUE)).scalar())


_SPEND = text("""
UPDATE destinations AS d SET tokens = s.tokens, tokens_at = s.at
FROM unnest(CAST(:tenants AS text[]), CAST(:keys AS text[]), CAST(:tokens AS double precision[]),
            CAST(:ats AS timestamptz[])) AS s(tenant, key, tokens, at)
WHERE d.tenant = s.tenant AND d.key = s.key
""")


async def spend_tokens(conn: AsyncConnection, *, left: Sequence[tuple[Bucket, float]]) -> None:
    """Store each bucket's tokens left after the claim, as of its refill."""
    if not left:
        return
    await conn.execute(
        _SPEND,
        {
            "tenants": [b.tenant for b, _ in left],
            "keys": [b.key for b, _ in left],
            "tokens": [tokens for _, tokens in left],
            "ats": [b.at for b, _ in left],
        },
    )


_WAITING_LIMITED = text(f"""
SELECT d.key, w.waiting
FROM destinations AS d
CROSS JOIN LATERAL (
    SELECT count(*) AS waiting FROM timers AS t
    WHERE t.status = 'pending' AND t.destination IS NOT NULL
      AND t.tenant = d.tenant AND t.destination = d.key AND t.due_at <= now()
) AS w
WHERE ({LIMITED}) AND w.waiting > 0
ORDER BY w.waiting DESC, d.tenant, d.key
LIMIT :limit
""")


async def waiting_limited(conn: AsyncConnection, *, limit: int) -> list[tuple[str, int]]:
    """(key, due pending timers) of the limited destinations with the most timers waiting."""
    rows = await conn.execute(_WAITING_LIMITED, {"limit": limit})
    return [(r.key, int(r.waiting)) for r in rows]
