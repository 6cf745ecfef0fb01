"""The invariants, checked from two independent sources: the receiver's records (what arrived,
when, with which `webhook-id`) and the timers' rows in PostgreSQL (what was stored, and its
first due time from its labels).

- lost = 0: every stored or acknowledged timer was delivered (a 2xx from the receiver), or ended
  `failed` with every one of its attempts failed on purpose by the receiver (a non-2xx answer it
  recorded, or a refused connection while it was down, by the attempt log): the expected set.
- never early: no request arrives before the timer's first due time, 0 ms slack (receiver and
  database share this machine's clock).
- duplicates (a timer answered 2xx twice): none outside crash windows, and every request of a
  timer carries its one `webhook-id`. Crash windows: the timers a killed instance held (firing,
  leased to it) when it died. A database crash is not one: instances stayed up. Its duplicates
  are counted as violations and sorted by cause (see `_duplicate_cause`).
- recovery: per fault, from its end until timers coming due are delivered on time again
  (lateness <= ON_TIME for RESUMED_FOR seconds of due times), and until its backlog (the late
  deliveries of timers due from its start) is drained.
"""

from __future__ import annotations

import bisect
import json
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from chaos.faults import Fault

ON_TIME = 1.0  # seconds of lateness still called on time on this 2-core machine
RESUMED_FOR = 2.0  # seconds of due times that must all be on time to call deliveries resumed
# Commits made this long before a database crash may be lost when they do not wait for the WAL
# flush (3 x wal_writer_delay is 0.6 s), plus the time from a delivery to its outcome's commit.
CRASH_COMMITS = 1.0
# Timers due this long before a fault began may have been in hand (lookahead 2 s + request 2 s).
IN_HAND = 4.0
RECEIVER = "receiver "  # the kind of every receiver fault starts so
# An attempt may meet a receiver fault this long before the switch (in flight) or after it (the
# receiver still catching up with the connections it dropped): the request timeout.
WINDOW_SLACK = 2.0


@dataclass(frozen=True)
class Record:
    """One request as the receiver saw it."""

    arrived: float
    timer_id: int
    webhook_id: str
    attempt: int
    sent_at: int  # the webhook-timestamp header: the sending instance's clock, in seconds
    outcome: int | str  # 200, 503, "timeout", "reset", "down"
    schedule_id: str | None = None  # X-Schedule-Id: a schedule's run
    occurrence: str | None = None  # X-Schedule-Occurrence: the occurrence it stands for

    @property
    def ok(self) -> bool:
        return self.outcome == 200


def read_records(path: Path) -> list[Record]:
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        if line:
            r = json.loads(line)
            records.append(
                Record(r["t"], r["id"], r["wid"], r["a"], r["ts"], r["o"], r.get("sid"), r.get("occ"))
            )
    return records


@dataclass(frozen=True)
class TimerRow:
    id: int
    status: str
    created_at: float
    first_due: float  # from the timer's own labels, not from due_at (moved by retries)
    webhook_id: str
    attempts: int

    @property
    def effective_due(self) -> float:
        """The first due time, or the insert if later (a batch retried past its due times)."""
        return max(self.first_due, self.created_at)


@dataclass(frozen=True)
class AttemptRow:
    timer_id: int
    attempt: int
    started_at: float
    status_code: int | None
    error_class: str | None


def timer_row(r: Any) -> TimerRow:
    """From `SELECT id, status, due_at, created_at, delivery_id::text, attempts, labels::text`."""
    labels = json.loads(r["labels"] or "{}")
    created = r["created_at"]
    if "due" in labels:
        first_due = datetime.fromisoformat(labels["due"])
    elif "secs" in labels:  # due = now() + secs in the inserting transaction, now() = created_at
        first_due = created + timedelta(seconds=int(labels["secs"]))
    else:
        first_due = r["due_at"]
    try:
        first_due_wall = first_due.timestamp()
    except (ValueError, OverflowError):  # a row no API should have stored (-infinity reads as year 1)
        first_due_wall = created.timestamp()
    return TimerRow(
        id=r["id"],
        status=r["status"],
        created_at=created.timestamp(),
        first_due=first_due_wall,
        webhook_id="msg_" + r["delivery_id"].replace("-", ""),
        attempts=r["attempts"],
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class Recovery:
    fault: Fault
    resumed_after: float | None  # None: not on time again before the next fault (or the end)
    drained_after: float
    late: int  # timers of this fault's window delivered more than ON_TIME late


@dataclass
class Result:
    scenario: str
    timers: int = 0  # stored, or acknowledged (a superset check: both must fire)
    acknowledged: int = 0
    delivered: int = 0
    failed_expected: int = 0
    # attempts of expected failures that failed at the transport level inside a receiver fault
    attempts_failed_unseen: Counter[str] = field(default_factory=Counter)
    lost: list[int] = field(default_factory=list)
    early: list[tuple[int, float]] = field(default_factory=list)  # (timer id, ms before due)
    dup_outside: list[int] = field(default_factory=list)
    dup_inside: list[int] = field(default_factory=list)
    # the first 2xx reached the receiver after the service's request timeout: to the service that
    # attempt failed, so it was retried (at least once for a receiver slower than the timeout)
    dup_after_timeout: list[int] = field(default_factory=list)
    sent_before_kill: int = 0
    redelivered_after: list[float] = field(default_factory=list)  # seconds from 1st to 2nd 2xx
    dup_causes: Counter[str] = field(default_factory=Counter)
    held_at_kill: int = 0
    webhook_id_mismatch: list[int] = field(default_factory=list)
    unknown: list[int] = field(default_factory=list)  # requests for timers not stored
    state_mismatch: list[tuple[int, str]] = field(default_factory=list)  # 2xx but row not delivered
    hostile_problems: list[str] = field(default_factory=list)  # see chaos.hostile.check
    # recurring schedules: an occurrence without its one run or its one delivery (chaos.schedules)
    occurrence_problems: list[str] = field(default_factory=list)
    # a flapping destination: the healthy one not all delivered, attempts beyond probes (chaos.flapping)
    destination_problems: list[str] = field(default_factory=list)
    lateness_ms: list[float] = field(default_factory=list)
    recoveries: list[Recovery] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    notes: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    seconds: float = 0.0
    t0: float = 0.0  # wall time the first timer was due

    @property
    def passed(self) -> bool:
        return not (
            self.lost
            or self.early
            or self.dup_outside
            or self.webhook_id_mismatch
            or self.unknown
            or self.state_mismatch
            or self.hostile_problems
            or self.occurrence_problems
            or self.destination_problems
        )


def _justified_failure(
    row: TimerRow,
    records: list[Record],
    attempts: dict[int, AttemptRow],
    fault_windows: list[tuple[float, float]],
    max_attempts: int,
) -> tuple[bool, list[str]]:
    """Failed on purpose: each of its max_attempts attempts got a non-2xx answer the receiver
    recorded, or failed at the transport level (refused, reset, timed out) without reaching the
    receiver's handler while the receiver was misbehaving (down, resetting or stalling, which
    also refuses or drops connections it cannot accept in time). Returns (justified, the error
    classes of the attempts justified by a window rather than a record)."""
    if row.attempts < max_attempts:
        return False, []
    refused_by_receiver = {r.attempt for r in records if not r.ok}
    by_window = []
    for n in range(1, row.attempts + 1):
        if n in refused_by_receiver:
            continue
        log = attempts.get(n)
        if log is None or log.error_class not in ("connection", "timeout"):
            return False, []
        if not any(
            began - WINDOW_SLACK <= log.started_at <= done + WINDOW_SLACK for began, done in fault_windows
        ):
            return False, []
        by_window.append(log.error_class)
    return True, by_window


def _timed_out(attempt: AttemptRow | None) -> bool:
    """The service recorded this attempt as a timeout (it never saw the receiver's answer)."""
    return attempt is not None and attempt.error_class == "timeout"


def _duplicate_cause(oks: list[Record], faults: list[Fault]) -> str:
    """What the evidence says about a duplicate outside crash windows."""
    first, second = oks[0], oks[1]
    if second.attempt == first.attempt:
        return "sent twice as the same attempt: the claim was undone"
    for f in faults:
        if f.database_gone_at is None:
            continue
        if f.start - CRASH_COMMITS <= first.arrived <= f.database_gone_at:
            return "delivered just before the database crash: the outcome's commit was lost"
        if f.database_gone_at < first.arrived <= f.end:
            return "delivered while the database was down: the lease lapsed before the outcome was written"
    return "no fault explains it"


def analyse(
    *,
    scenario: str,
    rows: list[TimerRow],
    attempts: list[AttemptRow],
    records: list[Record],
    acknowledged: set[int],
    faults: list[Fault],
    max_attempts: int,
    workload_end: float,
) -> Result:
    result = Result(scenario=scenario, faults=sorted(faults, key=lambda f: f.start))
    result.requests = len(records)
    stored = {r.id: r for r in rows}
    result.acknowledged = len(acknowledged)
    result.timers = len(stored.keys() | acknowledged)
    result.statuses = dict(Counter(r.status for r in rows))

    by_timer: dict[int, list[Record]] = defaultdict(list)
    for rec in sorted(records, key=lambda r: r.arrived):
        by_timer[rec.timer_id].append(rec)
    result.unknown = sorted(t for t in by_timer if t not in stored)

    attempt_log: dict[int, dict[int, AttemptRow]] = defaultdict(dict)
    for a in attempts:
        attempt_log[a.timer_id][a.attempt] = a
    receiver_windows = [(f.start, f.end) for f in faults if f.kind.startswith(RECEIVER)]
    held: set[int] = set().union(*(f.held for f in faults))

    first_ok: dict[int, float] = {}
    for tid, recs in by_timer.items():
        row = stored.get(tid)
        if row is None:
            continue
        oks = [r for r in recs if r.ok]
        if oks:
            first_ok[tid] = oks[0].arrived
        for rec in recs:
            if rec.arrived < row.first_due:
                result.early.append((tid, (row.first_due - rec.arrived) * 1000))
        if any(r.webhook_id != row.webhook_id for r in recs):
            result.webhook_id_mismatch.append(tid)
        if len(oks) > 1:
            if tid in held:
                result.dup_inside.append(tid)
            elif _timed_out(attempt_log[tid].get(oks[0].attempt)):
                result.dup_after_timeout.append(tid)
            else:
                result.dup_outside.append(tid)
                result.dup_causes[_duplicate_cause(oks, faults)] += 1
            result.redelivered_after.append(oks[1].arrived - oks[0].arrived)
        if oks and row.status != "delivered":
            result.state_mismatch.append((tid, row.status))

    result.delivered = len(first_ok)
    for tid in sorted(stored.keys() | acknowledged):
        if tid in first_ok:
            continue
        row = stored.get(tid)
        justified, by_window = (
            _justified_failure(row, by_timer.get(tid, []), attempt_log[tid], receiver_windows, max_attempts)
            if row is not None and row.status == "failed"
            else (False, [])
        )
        if justified:
            result.failed_expected += 1
            result.attempts_failed_unseen.update(by_window)
        else:
            result.lost.append(tid)

    for kill in (f for f in faults if f.held):
        result.held_at_kill += len(kill.held)
        result.sent_before_kill += sum(
            1 for tid in kill.held if any(r.ok and r.arrived <= kill.start for r in by_timer.get(tid, []))
        )

    result.lateness_ms = [(first_ok[t] - stored[t].effective_due) * 1000 for t in first_ok]
    result.recoveries = _recoveries(result.faults, stored, first_ok, workload_end)
    _evidence(result, stored, by_timer, attempt_log)
    return result


def _recoveries(
    faults: list[Fault],
    stored: dict[int, TimerRow],
    first_ok: dict[int, float],
    workload_end: float,
) -> list[Recovery]:
    timeline = sorted((row.effective_due, tid) for tid, row in stored.items())
    recoveries = []
    for n, fault in enumerate(faults):
        window_end = faults[n + 1].start if n + 1 < len(faults) else workload_end
        window = [(due, tid) for due, tid in timeline if fault.start - IN_HAND <= due < window_end]

        def on_time(due: float, tid: int) -> bool:
            return tid in first_ok and first_ok[tid] - due <= ON_TIME

        late = [(due, tid) for due, tid in window if tid in first_ok and not on_time(due, tid)]
        drained = max((first_ok[tid] for _, tid in late), default=fault.end) - fault.end
        resumed = _resumed([(due, on_time(due, tid)) for due, tid in window if due >= fault.end], window_end)
        recoveries.append(
            Recovery(fault, None if resumed is None else resumed - fault.end, max(0.0, drained), len(late))
        )
    return recoveries


def _resumed(after: list[tuple[float, bool]], window_end: float) -> float | None:
    """The first due time from which every timer due in the next RESUMED_FOR seconds (or up to
    the window's end) was on time; `after` is (due time, on time) in due order."""
    dues = [due for due, _ in after]
    next_late = [len(after)] * (len(after) + 1)
    for i in range(len(after) - 1, -1, -1):
        next_late[i] = i if not after[i][1] else next_late[i + 1]
    for i, due in enumerate(dues):
        if not after[i][1]:
            continue
        end = bisect.bisect_left(dues, min(due + RESUMED_FOR, window_end))
        if next_late[i] >= end:
            return due
    return None


def _evidence(
    result: Result,
    stored: dict[int, TimerRow],
    by_timer: dict[int, list[Record]],
    attempt_log: dict[int, dict[int, AttemptRow]],
) -> None:
    """A few examples of each violation, with what the receiver and the attempt log say."""

    def describe(tid: int) -> str:
        row = stored.get(tid)
        head = f"timer {tid}"
        if row is not None:
            head += f" status={row.status} attempts={row.attempts} first_due={row.first_due:.3f}"
        recs = "; ".join(
            f"#{r.attempt} {r.outcome} at {r.arrived:.3f} (+{(r.arrived - row.first_due) * 1000:.0f} ms)"
            if row is not None
            else f"#{r.attempt} {r.outcome} at {r.arrived:.3f}"
            for r in by_timer.get(tid, [])
        )
        log = "; ".join(
            f"#{a.attempt} {a.status_code or a.error_class} started {a.started_at:.3f}"
            for a in sorted(attempt_log.get(tid, {}).values(), key=lambda a: a.attempt)
        )
        return f"{head} | receiver: {recs or 'nothing'} | attempt log: {log or 'none'}"

    for title, ids in (
        ("lost", result.lost),
        ("early", [t for t, _ in result.early]),
        ("duplicate outside crash windows", result.dup_outside),
        ("webhook-id mismatch", result.webhook_id_mismatch),
        ("2xx received but row not delivered", [t for t, _ in result.state_mismatch]),
        ("request for a timer not stored", result.unknown),
    ):
        for tid in sorted(set(ids))[:5]:
            result.evidence.append(f"{title}: {describe(tid)}")


def summary(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.1f} / {max(values):.1f}"
