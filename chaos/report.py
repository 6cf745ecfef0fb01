"""The results as a Markdown table, with the faults, notes and evidence of each scenario."""

from __future__ import annotations

import statistics

from chaos.analysis import ON_TIME, RESUMED_FOR, Result, percentile

COLUMNS = (
    "scenario",
    "faults",
    "timers",
    "delivered",
    "failed (expected)",
    "lost",
    "early",
    "dup outside crash windows",
    "dup in crash windows / sent before kill / held",
    "redelivered after max (s)",
    "webhook-id mismatch",
    "lateness p50 / p99 / max (ms)",
    "recovery p50 / max (s)",
    "backlog drained p50 / max (s)",
    "run (s)",
    "result",
)


def _p50_max(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.1f} / {max(values):.1f}"


def row(result: Result) -> list[str]:
    late = result.lateness_ms
    lateness = (
        f"{percentile(late, 0.5):.0f} / {percentile(late, 0.99):.0f} / {max(late):.0f}" if late else "-"
    )
    resumed = [r.resumed_after for r in result.recoveries if r.resumed_after is not None]
    unresolved = sum(1 for r in result.recoveries if r.resumed_after is None)
    recovery = _p50_max(resumed) + (f" ({unresolved} not before the next fault)" if unresolved else "")
    kills = any(f.kind == "kill -9" for f in result.faults)
    inside = str(len(result.dup_inside))
    if kills:
        inside += f" / {result.sent_before_kill} / {result.held_at_kill}"
    redelivered = f"{max(result.redelivered_after):.1f}" if result.redelivered_after else "-"
    return [
        result.scenario,
        str(len(result.faults)),
        str(result.timers),
        str(result.delivered),
        str(result.failed_expected),
        str(len(result.lost)),
        str(len(result.early)),
        str(len(result.dup_outside)),
        inside,
        redelivered,
        str(len(result.webhook_id_mismatch)),
        lateness,
        recovery if result.recoveries else "-",
        _p50_max([r.drained_after for r in result.recoveries]) if result.recoveries else "-",
        f"{result.seconds:.0f}",
        "PASS" if result.passed else "FAIL",
    ]


def table(results: list[Result]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row(r)) + " |" for r in results]
    return "\n".join(lines)


def details(result: Result) -> str:
    out = [f"### {result.scenario}", ""]
    out.append(
        f"- {result.timers} timers ({result.acknowledged} acknowledged by the API), "
        f"{result.requests} requests at the receiver; final rows: {dict(sorted(result.statuses.items()))}"
    )
    if result.failed_expected:
        out.append(
            f"- {result.failed_expected} timers failed as expected: every one of their attempts was "
            f"failed by the receiver: answered with a fault it recorded, or failed at the transport "
            f"level inside one of its fault windows without reaching its handler "
            f"({dict(result.attempts_failed_unseen)})"
        )
    for rec in result.recoveries:
        f = rec.fault
        resumed = "not before the next fault" if rec.resumed_after is None else f"{rec.resumed_after:.1f} s"
        out.append(
            f"- {f.kind} at +{f.start - result.t0:.1f} s for {f.end - f.start:.1f} s ({f.detail}): "
            f"on time again after {resumed}, backlog drained after {rec.drained_after:.1f} s, "
            f"{rec.late} timers more than {ON_TIME:g} s late"
        )
    for problem, ids in (
        ("lost", result.lost),
        ("early", [t for t, _ in result.early]),
        ("duplicated outside crash windows", result.dup_outside),
        ("duplicated inside crash windows", result.dup_inside),
        ("duplicated after a request timeout (the 2xx came too late)", result.dup_after_timeout),
        ("webhook-id mismatch", result.webhook_id_mismatch),
        ("2xx received but row not delivered", [t for t, _ in result.state_mismatch]),
        ("requests for timers not stored", result.unknown),
    ):
        if ids:
            shown = ", ".join(str(t) for t in sorted(ids)[:20])
            out.append(f"- {problem}: {len(ids)} ({shown}{', ...' if len(ids) > 20 else ''})")
    for cause, n in result.dup_causes.most_common():
        out.append(f"- duplicates outside crash windows, {cause}: {n}")
    if result.early:
        worst = max(ms for _, ms in result.early)
        out.append(f"- earliest arrival: {worst:.1f} ms before the due time")
    out += [f"- hostile data: {problem}" for problem in result.hostile_problems[:20]]
    out += [f"- schedules: {problem}" for problem in result.occurrence_problems[:20]]
    out += [f"- destinations: {problem}" for problem in result.destination_problems[:20]]
    out += [f"- {note}" for note in result.notes]
    if result.evidence:
        out += ["", "Evidence:", "", "```", *result.evidence, "```"]
    return "\n".join(out)


LEGEND = (
    "lost: stored or acknowledged, neither delivered nor failed on purpose by the receiver; "
    "early: any request before the first due time (0 ms slack); crash windows: the timers a "
    "killed instance held (firing, its lease) when it died; redelivered after: "
    "first to second 2xx of a duplicate; recovery: fault end until every timer due in the next "
    f"{RESUMED_FOR:g} s is delivered at most {ON_TIME:g} s late; backlog drained: fault end until "
    "the last late delivery of a timer due from the fault's start."
)
