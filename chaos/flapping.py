"""The flapping destination's own checks (scenario `flapping`), beside the suite's invariants
(chaos.analysis), which hold for its timers as for any other:

- the healthy destination: every timer sent to the workload's own receiver is delivered, whatever
  the flapping one does;
- the breaker holds, unspent: within each down period of the flapping receiver, from `settle`
  seconds after its first failed attempt (the breaker opens after SCHEDULER_BREAKER_FAILURES
  failures in a row; requests already sent, and timers other instances had claimed, go out until
  their next poll), the only attempts made to it are probes: at most one per cool-down in the
  whole cluster, plus one per instance killed meanwhile (a probe in its hands is taken again)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from chaos.faults import FLAPPING, Fault
from task_scheduler.db import asyncpg_dsn


@dataclass(frozen=True)
class FailedAttempt:
    timer_id: int
    attempt: int
    started_at: float  # wall time
    error_class: str


def breaker_problems(
    failures: list[FailedAttempt], faults: list[Fault], *, cooldown: float, settle: float
) -> tuple[list[str], list[str]]:
    """(violations, notes) of the breaker check, per down period of the flapping receiver."""
    problems: list[str] = []
    notes: list[str] = []
    kills = [f.start for f in faults if f.kind == "kill -9"]
    for window in (f for f in faults if f.kind.startswith(FLAPPING)):
        inside = sorted(
            (a for a in failures if window.start <= a.started_at <= window.end), key=lambda a: a.started_at
        )
        if not inside:
            notes.append(f"{window.kind}: no attempt failed (the breaker was open before it began)")
            continue
        held_from = inside[0].started_at + settle
        after = [a for a in inside if a.started_at >= held_from]
        killed = sum(1 for at in kills if inside[0].started_at <= at <= window.end)
        allowed = int(max(0.0, window.end - held_from) // cooldown) + 1 + killed
        notes.append(
            f"{window.kind}: {len(inside)} attempts failed, {len(after)} of them from {settle:g} s after the"
            f" first (probes allowed: {allowed})"
        )
        if len(after) > allowed:
            shown = ", ".join(f"{a.timer_id}#{a.attempt} at {a.started_at:.3f}" for a in after[:5])
            problems.append(
                f"{window.kind}: {len(after)} attempts while its breaker should hold, at most {allowed}"
                f" probes allowed: {shown}"
            )
    return problems, notes


async def check_flapping(
    database_url: str, *, flapping_key: str, faults: list[Fault], cooldown: float, settle: float
) -> tuple[list[str], list[str]]:
    """(violations, notes): the healthy destination's timers all delivered, and the breaker check."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        rows = await conn.fetch("SELECT id, status, destination, labels->>'due' AS due FROM timers")
        failed = await conn.fetch(
            "SELECT a.timer_id, a.attempt, a.started_at, a.error_class FROM timer_attempts AS a"
            " JOIN timers AS t ON t.id = a.timer_id"
            " WHERE t.destination = $1 AND a.error_class IS NOT NULL",
            flapping_key,
        )
    finally:
        await conn.close()
    healthy = [r for r in rows if r["destination"] != flapping_key]
    flappy = [r for r in rows if r["destination"] == flapping_key]
    undelivered = sorted(r["id"] for r in healthy if r["status"] != "delivered")
    problems = []
    if undelivered:
        problems.append(
            f"healthy destination: {len(undelivered)} timers not delivered, e.g. {undelivered[:5]}"
        )
    failures = [
        FailedAttempt(r["timer_id"], r["attempt"], r["started_at"].timestamp(), r["error_class"])
        for r in failed
    ]
    held, notes = breaker_problems(failures, faults, cooldown=cooldown, settle=settle)
    downs = [(f.start, f.end) for f in faults if f.kind.startswith(FLAPPING)]
    due_while_down = sum(
        1
        for r in flappy
        if r["due"] and any(a <= datetime.fromisoformat(r["due"]).timestamp() <= b for a, b in downs)
    )
    notes.insert(
        0,
        f"flapping destination {flapping_key}: {len(flappy)} timers, final"
        f" {dict(Counter(r['status'] for r in flappy))}; {due_while_down} of them due while it was down;"
        f" {len(failures)} attempts failed in all ({dict(Counter(a.error_class for a in failures))});"
        f" healthy destination: {len(healthy)} timers, {len(healthy) - len(undelivered)} delivered",
    )
    return problems + held, notes
