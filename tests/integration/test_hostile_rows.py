"""Hostile rows (STYLE.md habit 13: a row read back is hostile until checked): values the API
would refuse, written straight into the tables, as an operator's SQL, a restore or another
version of the service could, within what the columns and their constraints admit: text of any
shape where a URL, a method, a tenant or a destination is expected, JSON of any type where an
object is expected, infinite, NaN and negative numbers, counters at the integer limit, infinite
and BC timestamps, NULL leases.

The whole service runs (dispatcher, schedule engine, outcome writer) with a real receiver.
Invariants, after each batch of hostile rows:
- a canary timer created through the API after them still reaches the receiver (no row stopped
  the engine for the others: a counter at the integer limit once made every claim fail);
- every hostile timer that was pending and due has been taken (attempted, retried, failed,
  expired or quarantined as unprocessable), never skipped while the others fire;
- reading every row back, alone, in lists and on the dashboard, never answers 5xx (an infinite
  `updated_at` once made GET /timer/{id} answer 500), and /readyz stays 200.

Derandomized in `make test` (the same examples every run); `FUZZ_RANDOM=1` draws new ones and
`HOSTILE_ROW_EXAMPLES` sets how many.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from task_scheduler.config import Settings
from task_scheduler.db import asyncpg_dsn, create_engine
from task_scheduler.ui.rollups import fold
from tests.support.app_thread import AppThread
from tests.support.receiver import Receiver, always

EXAMPLES = int(os.environ.get("HOSTILE_ROW_EXAMPLES", "25"))
ROW_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=not os.environ.get("FUZZ_RANDOM"),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
INT_MAX = 2**31 - 1
INT_MIN = -(2**31)

# Text PostgreSQL can store (no NUL, no lone surrogate), and the shapes that break parsers.
storable_char = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
stored_text = st.one_of(
    st.text(storable_char, max_size=16),
    st.sampled_from(["", " ", "\n", "\r\n", "é", "😀", "\u202e", "\ufeff", "x" * 5000, "a\tb", "%00", "\\"]),
)
URLS = [
    "not a url",
    "",
    "http://",
    "http://[::1/x",
    "http://[::zz]/x",
    "http://exa mple.invalid/x",
    "http://\n.invalid/x",
    "ftp://example.invalid/x",
    "javascript:alert(1)",
    "http://" + "a" * 64 + ".invalid/x",
    "http://example.invalid:99999/x",
    "http://example.invalid:0/x",
    "http://user:pass@example.invalid/x",
    "http://b\u00fccher.invalid/x",
    "https://example.invalid/" + "p" * 9000,
    "http://1e3/x",
]
TIMES = [
    "infinity",
    "-infinity",
    "0001-01-01 00:00:00+00",
    "4713-01-01 00:00:00+00 BC",
    "1969-12-31 23:59:59+00",
    "1970-01-01 00:00:00+00",
    "9999-12-31 23:59:59.999999+00",
    "294276-12-31 23:59:59+00",
]
FLOATS = ["NaN", "Infinity", "-Infinity", "0", "-1", "1e308", "5e-324", "0.5", "30"]
# JSON of any type, with numbers no Python float holds; jsonb refuses \u0000.
RAW_JSON = [
    "[" * 5000 + "]" * 5000,  # jsonb stores it; Python's json parser stops near depth 1,000
    '{"a": ' + "[" * 5000 + "]" * 5000 + "}",
    "1" * 5000,  # jsonb stores it; Python converts at most 4,300 digits to an int
    '{"a": ' + "9" * 5000 + "}",
    "1e999",
    "-1e999",
    "[1e999]",
    '{"a": 1e999}',
    "123456789012345678901234567890",
    '"text"',
    "[]",
    "null",
]
json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.text(storable_char, max_size=8),
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(stored_text, inner, max_size=3),
    max_leaves=8,
)
json_text = st.one_of(json_value.map(json.dumps), st.sampled_from(RAW_JSON))
nullable_time = st.none() | st.sampled_from(TIMES)
nullable_float = st.none() | st.sampled_from(FLOATS)


@st.composite
def hostile_timer(draw: st.DrawFn, receiver_url: str) -> dict[str, Any]:
    """A timer row; `due_seconds_ago` >= 0 makes it due now when pending."""
    status = draw(
        st.sampled_from(["pending", "pending", "pending", "firing", "delivered", "failed", "expired"])
    )
    firing = status == "firing"
    return {
        "url": draw(st.just(receiver_url + "/hostile") | st.sampled_from(URLS) | stored_text),
        "status": status,
        "due_seconds_ago": draw(st.sampled_from([0.0, 1.0, 30.0, 86_400.0])),
        "created_at": draw(st.just("now") | st.sampled_from(TIMES)),
        "updated_at": draw(st.just("now") | st.sampled_from(TIMES)),
        "attempts": draw(st.sampled_from([0, 1, 5, INT_MAX - 1, INT_MAX])),
        "attempts_before_redrive": draw(st.sampled_from([0, 1, INT_MIN, INT_MAX])),
        "lease_owner": "ghost-instance" if firing else None,
        "lease_expires_at": draw(st.sampled_from(["-infinity", "1970-01-01 00:00:00+00"]) | st.none())
        if firing
        else None,
        "last_error": draw(st.none() | stored_text),
        "delivered_at": draw(nullable_time),
        "method": draw(
            st.sampled_from(["POST", "", "get", "G ET", "CONNECT", "\u00e9", "X" * 300]) | stored_text
        ),
        "headers": draw(json_text),
        "body": draw(st.none() | json_text),
        "labels": draw(json_text),
        "deliver_before": draw(
            st.none() | st.sampled_from(["1970-01-01 00:00:00+00", "9999-12-31 00:00:00+00"])
        ),
        "max_attempts": draw(st.none() | st.sampled_from([0, 1, -1, INT_MIN, INT_MAX])),
        "backoff_base_seconds": draw(nullable_float),
        "backoff_cap_seconds": draw(nullable_float),
        "timeout_seconds": draw(nullable_float),
        "tenant": draw(st.just("default") | stored_text),
        "on_success_url": draw(st.none() | st.sampled_from(URLS)),
        "on_failure_url": draw(st.none() | st.sampled_from(URLS)),
        "traceparent": draw(st.none() | stored_text),
        "destination": draw(st.none() | stored_text),
    }


_INSERT_TIMER = """
INSERT INTO timers (url, status, due_at, created_at, updated_at, attempts, attempts_before_redrive,
    lease_owner, lease_expires_at, last_error, delivered_at, method, headers, body, labels,
    deliver_before, max_attempts, backoff_base_seconds, backoff_cap_seconds, timeout_seconds, tenant,
    on_success_url, on_failure_url, traceparent, destination)
VALUES ($1, $2, now() - make_interval(secs => $3::float8), $4::text::timestamptz,
    $5::text::timestamptz, $6, $7, $8, $9::text::timestamptz, $10, $11::text::timestamptz, $12,
    $13::text::jsonb, $14::text::jsonb, $15::text::jsonb, $16::text::timestamptz, $17,
    $18::text::float8, $19::text::float8, $20::text::float8, $21, $22, $23, $24, $25)
RETURNING id, status, attempts
"""


@st.composite
def hostile_schedule(draw: st.DrawFn, receiver_url: str) -> dict[str, Any]:
    """A schedule row with its pending run (the run is what the claim advances the series from)."""
    expression = draw(
        st.sampled_from(["* * * * *", "* * * * * *", "@every 1s", "@yearly", "0 0 30 2 *", "garbage"])
    )
    return {
        "status": draw(st.sampled_from(["active", "active", "paused", "ended"])),
        "expression": expression,
        "cron": draw(st.just(expression) | stored_text),
        "timezone": draw(
            st.sampled_from(["UTC", "Europe/Berlin", "Mars/Base", "", "../../etc/passwd", "UTC\n"])
        ),
        "start_at": draw(nullable_time),
        "end_at": draw(nullable_time),
        "max_runs": draw(st.none() | st.sampled_from([0, 1, -1, 2**63 - 1])),
        "runs": draw(st.sampled_from([0, 1, 2**63 - 1, -(2**63)])),
        "jitter_seconds": draw(st.sampled_from(FLOATS)),
        "overlap": draw(st.sampled_from(["allow", "skip", "buffer_one"])),
        "catchup": draw(st.sampled_from(["latest", "all", "none"])),
        "catchup_window_seconds": draw(st.sampled_from(FLOATS)),
        "next_occurrence_at": draw(st.just("now") | nullable_time),
        "url": draw(st.just(receiver_url + "/schedule") | st.sampled_from(URLS)),
        "method": draw(st.sampled_from(["POST", "", "G ET"])),
        "headers": draw(json_text),
        "body": draw(st.none() | json_text),
        "labels": draw(json_text),
        "max_lateness_seconds": draw(nullable_float),
        "max_attempts": draw(st.none() | st.sampled_from([0, -1, INT_MAX])),
        "timeout_seconds": draw(nullable_float),
        "created_at": draw(st.just("now") | st.sampled_from(TIMES)),
        "updated_at": draw(st.just("now") | st.sampled_from(TIMES)),
        "occurrence_at": draw(st.just("now") | st.sampled_from(TIMES[:3])),
    }


_INSERT_SCHEDULE = """
INSERT INTO schedules (status, expression, cron, timezone, start_at, end_at, max_runs, runs,
    jitter_seconds, overlap, catchup, catchup_window_seconds, next_occurrence_at, url, method, headers,
    body, labels, max_lateness_seconds, max_attempts, timeout_seconds, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5::text::timestamptz, $6::text::timestamptz, $7, $8, $9::text::float8,
    $10, $11, $12::text::float8, $13::text::timestamptz, $14, $15, $16::text::jsonb, $17::text::jsonb,
    $18::text::jsonb, $19::text::float8, $20, $21::text::float8, $22::text::timestamptz,
    $23::text::timestamptz)
RETURNING id
"""
_INSERT_RUN = """
INSERT INTO timers (url, due_at, schedule_id, occurrence_at, tenant)
VALUES ($1, now(), $2, $3::text::timestamptz, 'default')
RETURNING id
"""


class RowChecker:
    def __init__(self, app: AppThread, database_url: str) -> None:
        self.app = app
        self.database_url = database_url

    def sql(self, work: Callable[[asyncpg.Connection], Any]) -> Any:
        async def run() -> Any:
            conn = await asyncpg.connect(asyncpg_dsn(self.database_url))
            try:
                return await work(conn)
            finally:
                await conn.close()

        return self.app.run(run())

    def insert_timers(self, rows: list[dict[str, Any]]) -> list[asyncpg.Record]:
        async def work(conn: asyncpg.Connection) -> list[asyncpg.Record]:
            inserted = []
            for row in rows:
                values = list(row.values())
                with contextlib.suppress(asyncpg.DataError, asyncpg.IntegrityConstraintViolationError):
                    # a value the table refuses is not stored
                    inserted.append(await conn.fetchrow(_INSERT_TIMER, *values))
            return inserted

        result: list[asyncpg.Record] = self.sql(work)
        return result

    def insert_schedules(self, rows: list[dict[str, Any]]) -> list[tuple[int, int]]:
        async def work(conn: asyncpg.Connection) -> list[tuple[int, int]]:
            made = []
            for row in rows:
                occurrence = row.pop("occurrence_at")
                try:
                    async with conn.transaction():
                        schedule_id = await conn.fetchval(_INSERT_SCHEDULE, *row.values())
                        run_id = await conn.fetchval(_INSERT_RUN, row["url"], schedule_id, occurrence)
                except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError):
                    continue
                made.append((schedule_id, run_id))
            return made

        result: list[tuple[int, int]] = self.sql(work)
        return result

    def get_ok(self, path: str) -> None:
        response = self.app.request("GET", path)
        assert response.status_code < 500, f"GET {path} -> {response.status_code} {response.text[:500]}"

    def canary(self) -> None:
        created = self.app.request(
            "POST", "/timer", json={"seconds": 0, "url": f"{self.app.receiver.url}/canary"}
        )
        assert created.status_code == 201, created.text
        timer_id = created.json()["timer_id"]
        assert self.app.wait_delivered(timer_id), f"canary timer {timer_id} was not delivered"
        assert self.app.request("GET", "/readyz").status_code == 200

    def taken(self, inserted: list[asyncpg.Record]) -> None:
        """Every pending, due row is settled soon after the canary (claims go in due order, and
        the canary was due last): sent, retried later, failed, expired or quarantined. Not settled:
        still pending, due, its attempts as inserted: never claimed, or claimed and returned unsent
        on every turn (an infinite timeout once did that forever). A busy instance may return one
        unsent once (its heartbeat no longer vouches for the lease): hence a few seconds."""
        due = {r["id"]: r["attempts"] for r in inserted if r["status"] == "pending"}
        if not due:
            return

        async def work(conn: asyncpg.Connection) -> list[int]:
            rows = await conn.fetch(
                "SELECT id, attempts FROM timers"
                " WHERE id = ANY($1::bigint[]) AND status = 'pending' AND due_at <= now()",
                list(due),
            )
            return [r["id"] for r in rows if r["attempts"] == due[r["id"]]]

        deadline = time.monotonic() + 10
        while unsettled := self.sql(work):
            assert time.monotonic() < deadline, f"due and never settled: timers {unsettled}"
            time.sleep(0.1)


@pytest.fixture
def checker(make_settings: Callable[..., Settings], database_url: str) -> Iterator[RowChecker]:
    # Open mode on loopback (no keys): the test client is the local admin, the dashboard included.
    # A short cool-down and the disable rule on: hostile breaker rows take probes and reach the
    # rule's arithmetic (a failing_since of ±infinity among them) within the test's wait.
    app = AppThread(
        make_settings(
            rate_limit_per_second=0,
            max_attempts=2,
            backoff_cap_seconds=0.1,
            breaker_cooldown_seconds=0.5,
            breaker_disable_after_seconds=60.0,
        )
    )
    app.start()
    try:
        yield RowChecker(app, database_url)
    finally:
        app.stop()


def test_hostile_timer_rows_fail_only_themselves(checker: RowChecker) -> None:
    receiver_url = checker.app.receiver.url

    @ROW_SETTINGS
    @given(rows=st.lists(hostile_timer(receiver_url), min_size=1, max_size=4))
    def batch(rows: list[dict[str, Any]]) -> None:
        inserted = checker.insert_timers(rows)
        stored.extend(inserted)
        checker.canary()
        checker.taken(inserted)
        for row in inserted:
            for path in ("/timer/{}", "/timer/{}/attempts", "/ui/timers/{}"):
                checker.get_ok(path.format(row["id"]))
        for status in ("pending", "firing", "delivered", "failed", "expired"):
            checker.get_ok(f"/timers?status={status}")
            checker.get_ok(f"/ui/timers?status={status}")
        for path in ("/timers", "/ui", "/ui/destinations", "/destinations", "/metrics"):
            checker.get_ok(path)

    stored: list[asyncpg.Record] = []
    batch()
    assert len(stored) >= EXAMPLES, f"only {len(stored)} hostile rows were stored: the table refused the rest"


# The schedule engine draws its jitter from `random` in the app's thread while hypothesis draws.
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
def test_hostile_schedule_rows_fail_only_themselves(checker: RowChecker) -> None:
    receiver_url = checker.app.receiver.url
    made = checker.app.request(
        "POST", "/schedules", json={"cron": "* * * * * *", "url": f"{receiver_url}/series"}
    )
    assert made.status_code == 201, made.text
    series = made.json()["schedule_id"]

    @ROW_SETTINGS
    @given(rows=st.lists(hostile_schedule(receiver_url), min_size=1, max_size=3))
    def batch(rows: list[dict[str, Any]]) -> None:
        made = checker.insert_schedules(rows)
        stored.extend(made)
        for schedule_id, run_id in made:
            for path in (f"/schedules/{schedule_id}", f"/schedules/{schedule_id}/runs", f"/timer/{run_id}"):
                checker.get_ok(path)
            checker.get_ok(f"/ui/schedules/{schedule_id}")
        checker.canary()
        for path in ("/schedules", "/ui/schedules", "/ui", "/timers", "/metrics", f"/schedules/{series}"):
            checker.get_ok(path)

    stored: list[tuple[int, int]] = []
    batch()
    assert len(stored) >= EXAMPLES, f"only {len(stored)} hostile schedules were stored"
    # The healthy series went on among the hostile ones: its runs kept coming, one per second.
    runs = checker.app.request("GET", f"/schedules/{series}/runs").json()["runs"]
    assert len(runs) >= 2, runs
    checker.canary()


def test_a_claim_never_overflows_an_attempt_counter(checker: RowChecker) -> None:
    """Regression: a pending timer with `attempts` at the integer limit made the claim statement
    fail ("integer out of range") on every turn: no timer of any tenant fired, /readyz said 200."""
    stuck = checker.insert_timers([{**_plain(checker.app.receiver.url), "attempts": INT_MAX}])
    checker.canary()
    row = checker.app.request("GET", f"/timer/{stuck[0]['id']}").json()
    assert row["status"] == "failed", row
    assert row["last_error"].startswith("unprocessable"), row


def test_infinite_timestamps_read_back(checker: RowChecker) -> None:
    """Regression: an infinite `updated_at` (read back as a naive datetime) made GET /timer/{id}
    and its dashboard page answer 500."""
    row = {**_plain(checker.app.receiver.url), "status": "delivered", "created_at": "-infinity"}
    inserted = checker.insert_timers([{**row, "updated_at": "infinity", "delivered_at": "infinity"}])
    timer_id = inserted[0]["id"]
    view = checker.app.request("GET", f"/timer/{timer_id}")
    assert view.status_code == 200, view.text
    assert view.json()["updated_at"].startswith("9999-12-31"), view.json()
    assert checker.app.request("GET", f"/ui/timers/{timer_id}").status_code == 200


def _plain(receiver_url: str) -> dict[str, Any]:
    """An ordinary pending timer due now, as _INSERT_TIMER takes it."""
    return {
        "url": f"{receiver_url}/plain/{uuid.uuid4().hex}",
        "status": "pending",
        "due_seconds_ago": 0.0,
        "created_at": "now",
        "updated_at": "now",
        "attempts": 0,
        "attempts_before_redrive": 0,
        "lease_owner": None,
        "lease_expires_at": None,
        "last_error": None,
        "delivered_at": None,
        "method": "POST",
        "headers": "{}",
        "body": None,
        "labels": "{}",
        "deliver_before": None,
        "max_attempts": None,
        "backoff_base_seconds": None,
        "backoff_cap_seconds": None,
        "timeout_seconds": None,
        "tenant": "default",
        "on_success_url": None,
        "on_failure_url": None,
        "traceparent": None,
        "destination": None,
    }


@st.composite
def hostile_destination(draw: st.DrawFn) -> dict[str, Any]:
    """A destination row (limits and breaker state as another version or an operator could leave
    them) with a timer of it due now."""
    return {
        "key": draw(
            st.text(storable_char, min_size=1, max_size=12) | st.sampled_from(["\n", " ", "x" * 5000])
        ),
        "paused": draw(st.booleans()),
        "breaker_state": draw(st.sampled_from(["closed", "closed", "open", "half_open"])),
        # Mostly values the table admits (the CHECK refuses NaN, ±infinity and out-of-range
        # limits), at times one it refuses: that row is not stored.
        "consecutive_failures": draw(st.sampled_from([0, 1, 5, INT_MAX, INT_MAX, -1])),
        "opened_at": draw(nullable_time),
        "probe_until": draw(nullable_time),
        "rate_per_second": draw(
            st.none() | st.sampled_from(["5e-324", "0.5", "1000", "1000000", "1e6", "NaN"])
        ),
        "burst": draw(st.none() | st.sampled_from([1, 2, 1_000_000, 1_000_000, INT_MAX])),
        "parallelism": draw(st.none() | st.sampled_from([1, 2, 100_000, 100_000, INT_MAX])),
        "tokens": draw(st.none() | st.sampled_from(["0", "-1", "0.5", "1e6", "-1e6", "5e-324", "Infinity"])),
        "tokens_at": draw(
            st.none() | st.sampled_from(["now", "1970-01-01 00:00:00+00", *TIMES[2:5], "infinity"])
        ),
        "failing_since": draw(nullable_time),
        "disabled_at": draw(nullable_time),
        "history": draw(
            st.sampled_from(
                [
                    "[]",
                    "5",
                    '{"event": "opened"}',
                    '[1, null, "x", {"at": "infinity", "event": "opened", "consecutive_failures": 1}]',
                    '[{"at": "0001-01-01T00:00:00+00:00", "event": "closed", "consecutive_failures": -1}]',
                    '[{"at": "2026-01-01T00:00:00+00:00", "event": "nope", "consecutive_failures": 1e400}]',
                    "[" + ",".join(["{}"] * 5000) + "]",
                ]
            )
        ),
    }


_INSERT_DESTINATION = """
INSERT INTO destinations (tenant, key, paused, breaker_state, consecutive_failures, opened_at,
    probe_until, rate_per_second, burst, parallelism, tokens, tokens_at, failing_since, disabled_at,
    history)
VALUES ('default', $1, $2, $3, $4, $5::text::timestamptz, $6::text::timestamptz, $7::text::float8,
    $8, $9, $10::text::float8, $11::text::timestamptz, $12::text::timestamptz, $13::text::timestamptz,
    $14::text::jsonb)
"""
_INSERT_DESTINATION_TIMER = """
INSERT INTO timers (url, due_at, destination) VALUES ($1, now(), $2) RETURNING id
"""


def test_hostile_destination_rows_fail_only_themselves(checker: RowChecker) -> None:
    """Flow control claims every limited destination in one transaction: one row with a NaN rate
    or infinite tokens must not stop the others, limited or not."""
    app = checker.app
    limited = "canary-limited"
    put = app.request("PUT", f"/destinations/{limited}", json={"rate_per_second": 1000, "parallelism": 100})
    assert put.status_code == 200, put.text

    def limited_canary() -> None:
        made = app.request(
            "POST",
            "/timer",
            json={"seconds": 0, "url": f"{app.receiver.url}/limited", "destination": limited},
        )
        assert made.status_code == 201, made.text
        timer_id = made.json()["timer_id"]
        assert app.wait_delivered(timer_id), f"limited canary {timer_id} was not delivered"

    async def insert(conn: asyncpg.Connection, row: dict[str, Any]) -> str | None:
        try:
            async with conn.transaction():
                await conn.execute(_INSERT_DESTINATION, *row.values())
                await conn.fetchval(_INSERT_DESTINATION_TIMER, f"{app.receiver.url}/dest", row["key"])
        except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError):
            return None
        key: str = row["key"]
        return key

    @ROW_SETTINGS
    @given(rows=st.lists(hostile_destination(), min_size=1, max_size=3, unique_by=lambda r: r["key"]))
    def batch(rows: list[dict[str, Any]]) -> None:
        async def work(conn: asyncpg.Connection) -> list[str]:
            keys = []
            for row in rows:
                key = await insert(conn, row)
                if key is not None:
                    keys.append(key)
            return keys

        keys: list[str] = checker.sql(work)
        stored.extend(keys)
        checker.canary()
        limited_canary()
        for key in keys:
            checker.get_ok(f"/destinations/{quote(key, safe='')}")
        for path in ("/destinations", "/ui/destinations", "/ui", "/metrics"):
            checker.get_ok(path)

        async def clear(conn: asyncpg.Connection) -> None:
            # the next example starts from healthy destinations (a key may be drawn again)
            await conn.execute("DELETE FROM destinations WHERE key <> $1", limited)

        checker.sql(clear)

    stored: list[str] = []
    batch()
    assert len(stored) >= EXAMPLES // 2, f"only {len(stored)} hostile destinations were stored"


@st.composite
def hostile_bulk_job(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "tenant": draw(st.none() | st.just("default") | stored_text),
        "action": draw(st.sampled_from(["cancel", "retry", "reschedule"])),
        "offset_seconds": draw(nullable_float),
        "filter": draw(json_text | st.just('{"labels": {"k": "v"}}')),
        "max_timer_id": draw(st.sampled_from([0, 1, 2**63 - 1, -(2**63)])),
        "last_timer_id": draw(st.sampled_from([0, 1, 2**63 - 1, -(2**63)])),
    }


_INSERT_BULK_JOB = """
INSERT INTO bulk_jobs (tenant, action, offset_seconds, filter, max_timer_id, last_timer_id)
VALUES ($1, $2, $3::text::float8, $4::text::jsonb, $5, $6) RETURNING id
"""


def test_hostile_bulk_jobs_fail_only_themselves(checker: RowChecker) -> None:
    """Regression: a bulk job whose stored filter is not a JSON object answered 500 on
    GET /timers/bulk/{id}; the runner must fail such a job and go on with the others."""
    app = checker.app

    @ROW_SETTINGS
    @given(rows=st.lists(hostile_bulk_job(), min_size=1, max_size=3))
    def batch(rows: list[dict[str, Any]]) -> None:
        async def work(conn: asyncpg.Connection) -> list[int]:
            ids = []
            for row in rows:
                with contextlib.suppress(asyncpg.DataError, asyncpg.IntegrityConstraintViolationError):
                    ids.append(await conn.fetchval(_INSERT_BULK_JOB, *row.values()))
            return ids

        ids: list[int] = checker.sql(work)
        stored.extend(ids)
        for job_id in ids:
            checker.get_ok(f"/timers/bulk/{job_id}")
        made = app.request(
            "POST", "/timers/bulk", json={"action": "cancel", "filter": {"labels": {"no": "one"}}}
        )
        assert made.status_code == 202, made.text
        job_id = made.json()["job_id"]
        deadline = time.monotonic() + 15
        while (state := app.request("GET", f"/timers/bulk/{job_id}").json()["state"]) != "done":
            assert time.monotonic() < deadline, f"canary bulk job {job_id} is still {state}"
            time.sleep(0.05)
        assert app.request("GET", "/readyz").status_code == 200

    stored: list[int] = []
    batch()
    assert len(stored) >= EXAMPLES, f"only {len(stored)} hostile bulk jobs were stored"


@pytest.mark.parametrize("timeout", ["Infinity", "1e308", "NaN", "-1"])
def test_a_stored_retry_policy_out_of_bounds_is_quarantined(checker: RowChecker, timeout: str) -> None:
    """Regression: a stored timeout no heartbeat can vouch for (infinite, 1e308) made the timer be
    claimed and returned unsent on every turn, forever; NaN and negative ones reached the client."""
    row = {**_plain(checker.app.receiver.url), "timeout_seconds": timeout}
    (stored,) = checker.insert_timers([row])
    checker.canary()
    deadline = time.monotonic() + 15
    while (view := checker.app.request("GET", f"/timer/{stored['id']}").json())["status"] != "failed":
        assert time.monotonic() < deadline, view
        time.sleep(0.05)
    assert view["last_error"].startswith(
        "unprocessable: cannot be claimed: ValueError('retry.timeout_seconds"
    ), view
    assert not any(d.timer_id == stored["id"] for d in checker.app.receiver.deliveries)


@st.composite
def hostile_attempt(draw: st.DrawFn) -> dict[str, Any]:
    """An attempt-log row, as _INSERT_ATTEMPT takes it (its timer's id comes first)."""
    return {
        "attempt": draw(st.sampled_from([1, 1, 2, 0, -1, INT_MAX, INT_MIN])),
        "started_at": draw(st.just("now") | st.sampled_from(TIMES)),
        "duration_ms": draw(st.sampled_from(FLOATS)),
        "status_code": draw(st.sampled_from([None, 200, 503, 0, -1, 999, INT_MAX, INT_MIN])),
        "error_class": draw(st.none() | st.sampled_from(["http_status", "timeout", "ok", ""]) | stored_text),
        "error_message": draw(st.none() | stored_text),
        "response_body": draw(st.none() | stored_text),
        # the fold reads the attempts recorded since its watermark: most are recorded now
        "recorded_at": draw(st.sampled_from(["now", "now", "now"]) | nullable_time),
    }


_INSERT_ATTEMPT = """
INSERT INTO timer_attempts (timer_id, attempt, started_at, duration_ms, status_code, error_class,
    error_message, response_body, recorded_at)
VALUES ($1, $2, $3::text::timestamptz, $4::text::float8, $5, $6, $7, $8, $9::text::timestamptz)
"""


def wait_folded(
    app: AppThread, engine: AsyncEngine, *, at_least: int, destination: str | None = None
) -> None:
    """Fold the attempt log (raising what the fold cannot get past) until the rollups count at
    least `at_least` deliveries (of `destination`, or all): the app's own folder may hold the
    fold's lock at that moment, and then this turn folds nothing."""

    async def folded() -> int:
        await fold(engine)
        async with engine.connect() as conn:
            count = await conn.scalar(
                text(
                    "SELECT coalesce(sum(deliveries), 0) FROM delivery_rollups"
                    " WHERE CAST(:destination AS text) IS NULL OR destination = :destination"
                ),
                {"destination": destination},
            )
        return int(count or 0)

    deadline = time.monotonic() + 10
    while (count := app.run(folded())) < at_least:
        assert time.monotonic() < deadline, f"the rollups count {count} deliveries, not {at_least}"
        time.sleep(0.05)


def test_hostile_attempt_rows_fail_only_themselves(checker: RowChecker, database_url: str) -> None:
    """Attempt-log rows (read back by GET /timer/{id}/attempts, the dashboard, and folded into
    the rollups behind the charts and destinations' health) with any value their columns admit,
    beside timers of any shape: every read answers without a 5xx, the dispatcher goes on, and the
    fold goes on too: the canary's attempt is counted in the rollups after every batch."""
    app = checker.app
    receiver = app.receiver
    authority = f"127.0.0.1:{receiver.port}"
    engine = create_engine(database_url, pool_size=1)

    def delivered_canary() -> int:
        """checker.canary, and its outcome written (the fold reads the attempt log)."""
        made = app.request("POST", "/timer", json={"seconds": 0, "url": f"{receiver.url}/canary"})
        assert made.status_code == 201, made.text
        timer_id = made.json()["timer_id"]
        deadline = time.monotonic() + 15
        while (view := app.request("GET", f"/timer/{timer_id}").json())["status"] != "delivered":
            assert time.monotonic() < deadline, f"canary timer was not delivered: {view}"
            time.sleep(0.02)
        assert app.request("GET", "/readyz").status_code == 200
        return timer_id

    @ROW_SETTINGS
    @given(
        timer=hostile_timer(receiver.url),
        attempts=st.lists(hostile_attempt(), min_size=1, max_size=4, unique_by=lambda a: a["attempt"]),
    )
    def batch(timer: dict[str, Any], attempts: list[dict[str, Any]]) -> None:
        async def work(conn: asyncpg.Connection) -> int | None:
            try:
                async with conn.transaction():
                    row = await conn.fetchrow(_INSERT_TIMER, *timer.values())
                    for attempt in attempts:
                        await conn.execute(_INSERT_ATTEMPT, row["id"], *attempt.values())
            except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError):
                return None
            timer_id: int = row["id"]
            return timer_id

        timer_id: int | None = checker.sql(work)
        if timer_id is None:
            return
        stored.append(timer_id)
        canaries.append(delivered_canary())
        wait_folded(app, engine, at_least=len(canaries), destination=authority)
        for path in ("/timer/{}", "/timer/{}/attempts", "/ui/timers/{}"):
            checker.get_ok(path.format(timer_id))
        for path in ("/ui", "/ui/destinations", "/destinations", "/metrics"):
            checker.get_ok(path)
        checker.get_ok(f"/destinations/{quote('http://' + authority, safe='')}")

    stored: list[int] = []
    canaries: list[int] = []
    try:
        batch()
    finally:
        app.run(engine.dispose())
    assert len(stored) >= EXAMPLES // 2, f"only {len(stored)} timers with hostile attempts were stored"


_ATTEMPT = {
    "attempt": 1,
    "started_at": "now",
    "duration_ms": "12.5",
    "status_code": 200,
    "error_class": None,
    "error_message": None,
    "response_body": None,
    "recorded_at": "now",
}


@pytest.mark.parametrize(
    "attempts",
    [
        pytest.param([{**_ATTEMPT, "started_at": "infinity"}], id="started-at-infinity"),
        pytest.param([{**_ATTEMPT, "started_at": "-infinity"}], id="started-at-minus-infinity"),
        pytest.param(
            [{**_ATTEMPT, "attempt": n, "duration_ms": "1e308"} for n in (1, 2)], id="durations-past-float8"
        ),
    ],
)
def test_attempts_the_fold_cannot_measure_do_not_stop_the_rollups(
    checker: RowChecker, database_url: str, attempts: list[dict[str, Any]]
) -> None:
    """Regression: one timer's attempt rows stopped the dashboard's charts and every destination's
    health, for every tenant, for good (the fold failed on every turn and its watermark never
    moved past that minute), while /readyz said 200: the first attempt of a timer attempted once
    with an infinite `started_at` ("cannot subtract infinite timestamps", its lateness), and two
    durations of 1e308 ms in one rollup ("value out of range: overflow", their sum)."""
    timer = {**_plain(checker.app.receiver.url), "status": "delivered", "attempts": len(attempts)}

    async def work(conn: asyncpg.Connection) -> int:
        timer_id: int = (await conn.fetchrow(_INSERT_TIMER, *timer.values()))["id"]
        for attempt in attempts:
            await conn.execute(_INSERT_ATTEMPT, timer_id, *attempt.values())
        return timer_id

    timer_id = checker.sql(work)
    engine = create_engine(database_url, pool_size=1)
    try:
        wait_folded(checker.app, engine, at_least=len(attempts))  # the hostile attempts themselves
    finally:
        checker.app.run(engine.dispose())
    shown = checker.app.request("GET", f"/timer/{timer_id}/attempts")
    assert shown.status_code == 200, shown.text
    for path in ("/ui", "/ui/destinations", f"/ui/timers/{timer_id}"):
        checker.get_ok(path)


@st.composite
def hostile_tenant_rows(draw: st.DrawFn) -> dict[str, Any]:
    """A row for each table of a tenant's settings: an API key, a signing secret, an operational
    webhook and an idempotency key (of a timer of its own), as an operator's SQL could leave them."""
    tenant = draw(st.just("default") | stored_text)
    return {
        "key": (
            f"k{uuid.uuid4().hex}",
            draw(st.binary(max_size=40)),
            draw(stored_text),
            tenant,
            draw(st.sampled_from(["admin", "writer", "reader"])),
            draw(st.just("now") | st.sampled_from(TIMES)),
            draw(nullable_time),
        ),
        "secret": (
            tenant,
            draw(st.sampled_from(["whsec_", "whsec_!!!", "", "whsec_" + "A" * 5000]) | stored_text),
            draw(st.just("now") | st.sampled_from(TIMES)),
            draw(nullable_time),
        ),
        "webhook": (
            tenant,
            draw(st.sampled_from(URLS) | stored_text),
            draw(
                st.lists(
                    st.none() | st.sampled_from(["timer.failed", "timer.expired", "destination.opened"]),
                    max_size=4,
                )
                | st.lists(stored_text, max_size=3)
            ),
            draw(st.just("now") | st.sampled_from(TIMES)),
        ),
        "idempotency": (
            tenant,
            draw(stored_text.filter(bool)),
            draw(stored_text),
            draw(st.just("now") | st.sampled_from(TIMES)),
        ),
    }


_INSERT_TENANT_ROWS = [
    (
        "key",
        "INSERT INTO api_keys (key_id, key_hash, name, tenant, role, created_at, revoked_at)"
        " VALUES ($1, $2, $3, $4, $5, $6::text::timestamptz, $7::text::timestamptz)",
    ),
    (
        "secret",
        "INSERT INTO tenant_secrets (tenant, secret, created_at, revoked_at)"
        " VALUES ($1, $2, $3::text::timestamptz, $4::text::timestamptz)",
    ),
    (
        "webhook",
        "INSERT INTO tenant_webhooks (tenant, url, events, created_at)"
        " VALUES ($1, $2, $3, $4::text::timestamptz)",
    ),
    (
        "idempotency",
        "INSERT INTO idempotency_keys (tenant, key, request_hash, timer_id, created_at)"
        " SELECT $1, $2, $3, max(id), $4::text::timestamptz FROM timers",
    ),
]


def test_hostile_tenant_rows_fail_only_themselves(checker: RowChecker) -> None:
    """API keys, signing secrets, operational webhooks and idempotency keys of any shape: every
    route that reads them answers without a 5xx, a timer of the tenant that fails is failed and
    its good subscriber still hears of it, and the canary is delivered (signed by whatever
    secrets are readable)."""
    app = checker.app
    receiver = app.receiver
    # The first key ends open mode: the test client uses an admin key of tenant "default".
    key = app.request("POST", "/admin/keys", json={"name": "test", "tenant": "default", "role": "admin"})
    assert key.status_code == 201, key.text
    assert app.client is not None
    app.client.headers["Authorization"] = f"Bearer {key.json()['api_key']}"
    good = app.request(
        "POST", "/tenant/webhooks", json={"url": f"{receiver.url}/events", "events": ["timer.failed"]}
    )
    assert good.status_code == 201, good.text

    @ROW_SETTINGS
    @given(rows=hostile_tenant_rows())
    def batch(rows: dict[str, Any]) -> None:
        async def work(conn: asyncpg.Connection) -> int:
            made = 0
            for table, statement in _INSERT_TENANT_ROWS:
                try:
                    await conn.execute(statement, *rows[table])
                    made += 1
                except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError):
                    pass
            return made

        stored.append(checker.sql(work))
        for path in ("/admin/keys", "/tenant/secrets", "/tenant/webhooks"):
            checker.get_ok(path)
        key = rows["idempotency"][1]
        if key.isascii() and key.isprintable():
            made = app.request(
                "POST",
                "/timer",
                json={"seconds": 3600, "url": f"{receiver.url}/keyed"},
                headers={"Idempotency-Key": key},
            )
            assert made.status_code < 500, made.text
        failing = app.request("POST", "/timer", json={"seconds": 0, "url": gone.url})
        assert failing.status_code == 201, failing.text
        failing_id = failing.json()["timer_id"]
        checker.canary()
        deadline = time.monotonic() + 15
        while not any(
            d.path.endswith("/events") and d.body.get("timer_id") == failing_id for d in receiver.deliveries
        ):
            assert time.monotonic() < deadline, f"no timer.failed notice of timer {failing_id}"
            time.sleep(0.02)

    stored: list[int] = []
    gone = Receiver(respond=always(410))  # a timer sent there fails at once
    app.run(gone.start())
    try:
        batch()
    finally:
        app.run(gone.stop())
    assert sum(stored) >= EXAMPLES * 2, f"only {sum(stored)} hostile tenant rows were stored"


def test_a_null_event_reads_back_and_its_subscription_still_hears(checker: RowChecker) -> None:
    """Regression: a tenant webhook whose `events` held a NULL (the column is a text[]) made
    GET /tenant/webhooks answer 500 for the whole tenant: no subscription of it could be listed."""
    app = checker.app

    async def work(conn: asyncpg.Connection) -> int:
        webhook_id: int = await conn.fetchval(
            "INSERT INTO tenant_webhooks (tenant, url, events)"
            " VALUES ('default', $1, ARRAY[NULL, 'timer.failed', NULL]) RETURNING id",
            f"{app.receiver.url}/events",
        )
        return webhook_id

    webhook_id = checker.sql(work)
    listed = app.request("GET", "/tenant/webhooks")
    assert listed.status_code == 200, listed.text
    assert listed.json()["webhooks"][0]["webhook_id"] == webhook_id
    assert listed.json()["webhooks"][0]["events"] == ["timer.failed"]
    gone = Receiver(respond=always(410))
    app.run(gone.start())
    try:
        made = app.request("POST", "/timer", json={"seconds": 0, "url": gone.url})
        assert made.status_code == 201, made.text
        timer_id = made.json()["timer_id"]
        deadline = time.monotonic() + 15
        while not any(d.body.get("timer_id") == timer_id for d in app.receiver.deliveries):
            assert time.monotonic() < deadline, f"no timer.failed notice of timer {timer_id}"
            time.sleep(0.02)
    finally:
        app.run(gone.stop())


# -- the dashboard's rollups (ui/rollups.py) and their watermark -------------------------------------

counter = st.one_of(
    st.none(), st.sampled_from([0, 1, 7, -1, INT_MAX, INT_MIN]), st.integers(INT_MIN, INT_MAX)
)


@st.composite
def hostile_rollup(draw: st.DrawFn, authority: str) -> dict[str, Any]:
    """A rollup row, minute or hour, as _INSERT_ROLLUP takes it: mostly of the last hour (the
    minutes the charts and destinations' health read, the hours the last day's charts read and the
    fold recomputes from their minutes), of the canary's destination or any text, with counts and
    bucket arrays of any length, sign and size, NULLs among them, and sums of any float."""
    buckets = st.lists(counter, max_size=14) | st.sampled_from([[], [None] * 10, [INT_MAX] * 10])
    return {
        "table": draw(st.sampled_from(["delivery_rollups", "delivery_rollups_hourly"])),
        "tenant": draw(st.just("default") | stored_text),
        # minutes ago (the current minute and hour included), or a timestamp of any kind
        "at": draw(st.integers(0, 59).map(lambda m: f"-{m} minutes") | st.sampled_from(TIMES)),
        "destination": draw(st.sampled_from([authority, authority.split(":")[0], ""]) | stored_text),
        "outcome": draw(st.sampled_from(["ok", "timeout", "http_status", ""]) | stored_text),
        "deliveries": draw(st.sampled_from([1, 0, -1, INT_MAX, INT_MIN]) | st.integers(INT_MIN, INT_MAX)),
        "duration_ms_sum": draw(st.sampled_from(FLOATS)),
        "duration_buckets": draw(buckets),
        "lateness_buckets": draw(buckets),
    }


def _insert_rollup(row: dict[str, Any]) -> str:
    """The row's INSERT: its `at` is an interval from now, truncated like the fold's keys, or a
    timestamp as it is."""
    period = "minute" if row["table"] == "delivery_rollups" else "hour"
    at = (
        f"date_trunc('{period}', now() + $2::text::interval)"
        if row["at"].startswith("-") and row["at"].endswith("minutes")
        else "$2::text::timestamptz"
    )
    return f"""
INSERT INTO {row["table"]} (tenant, {period}, destination, outcome, deliveries, duration_ms_sum,
    duration_buckets, lateness_buckets)
VALUES ($1, {at}, $3, $4, $5, $6::text::float8, $7, $8)
ON CONFLICT DO NOTHING
"""


def _set_watermark(at: str) -> str:
    """The UPDATE of the fold's watermark to `at`: an interval from now, or a timestamp."""
    value = (
        "date_trunc('minute', now() + $1::text::interval)"
        if at.endswith("minutes")
        else "$1::text::timestamptz"
    )
    return f"UPDATE rollup_watermarks SET folded_before = {value}"


def _fold_once(app: AppThread, engine: AsyncEngine) -> list[Any]:
    """A turn of the fold that got the lock (the app's own folder may hold it), raising what the
    fold cannot get past."""

    async def turn() -> list[Any]:
        return await fold(engine)

    deadline = time.monotonic() + 10
    while not (folds := app.run(turn())):
        assert time.monotonic() < deadline, "the fold's lock was never free"
        time.sleep(0.05)
    return folds


def test_hostile_rollup_rows_fail_only_themselves(checker: RowChecker, database_url: str) -> None:
    """Rollup rows with any value their columns admit (an operator's SQL, a restore, another
    version of the service): the dashboard's charts, the destinations page and every destination's
    health answer without a 5xx, and the fold goes on: it recomputes the hours from hostile
    minutes without failing, and the canary's attempt is counted after every batch."""
    app = checker.app
    receiver = app.receiver
    authority = f"127.0.0.1:{receiver.port}"
    engine = create_engine(database_url, pool_size=1)

    @ROW_SETTINGS
    @given(
        rows=st.lists(hostile_rollup(authority), min_size=1, max_size=6),
        # the fold's watermark moved back (its next turn recomputes the hours of the minutes
        # before it from their rows, hostile ones included), or set to any timestamp
        watermark=st.none() | st.integers(1, 90).map(lambda m: f"-{m} minutes") | st.sampled_from(TIMES),
    )
    def batch(rows: list[dict[str, Any]], watermark: str | None) -> None:
        async def work(conn: asyncpg.Connection) -> int:
            if watermark is not None:
                await conn.execute(_set_watermark(watermark), watermark)
            kept = 0
            for row in rows:
                values = [v for k, v in row.items() if k != "table"]
                try:
                    async with conn.transaction():
                        status = await conn.execute(_insert_rollup(row), *values)
                except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError):
                    continue
                kept += status.endswith(" 1")
            return kept

        stored.append(checker.sql(work))
        checker.canary()
        _fold_once(app, engine)  # raises if the fold cannot get past these rows
        for path in ("/ui", "/ui/destinations", "/ui/live.json", "/destinations", "/metrics"):
            checker.get_ok(path)
        for origin in (f"http://{authority}", "http://127.0.0.1"):
            checker.get_ok(f"/destinations/{quote(origin, safe='')}")

    stored: list[int] = []
    try:
        batch()
    finally:
        app.run(engine.dispose())
    assert sum(stored) >= EXAMPLES, f"only {sum(stored)} hostile rollup rows were stored"


@pytest.mark.parametrize("value", [RAW_JSON[0], RAW_JSON[2]], ids=["nested", "huge-number"])
@pytest.mark.parametrize("column", ["body", "headers", "labels"])
def test_json_python_cannot_parse_fails_only_its_timer(checker: RowChecker, column: str, value: str) -> None:
    """Regression: a timer whose JSON column held what jsonb stores and Python's JSON parser
    cannot read (nested past depth 1,000, a number of 5,000 digits) made every claim fail: no timer
    of any tenant was delivered while /readyz said 200. Now that timer alone is quarantined, and
    every read of it answers."""
    row = {**_plain(checker.app.receiver.url), column: value}
    inserted = checker.insert_timers([row])
    assert inserted, "the table refused the row"
    checker.canary()
    checker.taken(inserted)
    timer_id = inserted[0]["id"]
    for path in (
        f"/timer/{timer_id}",
        f"/timer/{timer_id}/attempts",
        f"/ui/timers/{timer_id}",
        "/timers",
        "/ui/timers",
    ):
        checker.get_ok(path)
