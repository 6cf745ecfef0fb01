"""Cron libraries compared for issue 14: correctness on the DST cases of the issue (real 2026/2027
transitions of Europe/Berlin, America/New_York, Australia/Adelaide) and the cost of computing the
next occurrence, for cronsim, croniter and our own task_scheduler.schedules.cron.

The libraries are not project dependencies: run this from a throwaway venv that has them, e.g.

    python3 -m venv /tmp/cronlibs && /tmp/cronlibs/bin/pip install cronsim croniter
    PYTHONPATH=src /tmp/cronlibs/bin/python -m bench.cron_libs

A library that is not installed is skipped. Prints a Markdown table (the one in docs/performance.md).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from task_scheduler.schedules import cron

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
ADELAIDE = ZoneInfo("Australia/Adelaide")

# A library is a function (expression, after, zone) -> the occurrences after `after`, in UTC.
Occurrences = Callable[[str, datetime, ZoneInfo], Iterator[datetime]]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass(frozen=True)
class DstCase:
    name: str
    zone: ZoneInfo
    expression: str
    after: datetime
    expected: tuple[datetime, ...]


def wall_clock_case(name: str, zone: ZoneInfo, expression: str, after: str, *runs: str) -> DstCase:
    return DstCase(name, zone, expression, at(after), tuple(at(run) for run in runs))


def quarter_hour_case(name: str, zone: ZoneInfo, change: str) -> DstCase:
    """*/15 from two hours before a change to two hours after: 15 minutes apart in real time."""
    start = at(change) - timedelta(hours=2)
    return DstCase(
        name, zone, "*/15 * * * *", start, tuple(start + timedelta(minutes=15 * k) for k in range(1, 17))
    )


# The day before, the day of the change, the day after. Spring: 02:30 runs at the end of the gap
# (03:00 local); fall: the repeated 02:30 (01:30 in New York) runs once, at its first instant.
# Then */15 from two hours before each change to two hours after: 15 minutes apart in real time.
DST_CASES = (
    wall_clock_case(
        "Berlin spring 02:30",
        BERLIN,
        "30 2 * * *",
        "2026-03-28",
        "2026-03-28 01:30",
        "2026-03-29 01:00",
        "2026-03-30 00:30",
    ),
    wall_clock_case(
        "Berlin fall 02:30",
        BERLIN,
        "30 2 * * *",
        "2026-10-24",
        "2026-10-24 00:30",
        "2026-10-25 00:30",
        "2026-10-26 01:30",
    ),
    wall_clock_case(
        "New York spring 02:30",
        NEW_YORK,
        "30 2 * * *",
        "2027-03-13",
        "2027-03-13 07:30",
        "2027-03-14 07:00",
        "2027-03-15 06:30",
    ),
    wall_clock_case(
        "New York fall 01:30",
        NEW_YORK,
        "30 1 * * *",
        "2026-10-31",
        "2026-10-31 05:30",
        "2026-11-01 05:30",
        "2026-11-02 06:30",
    ),
    wall_clock_case(
        "Adelaide spring 02:30",
        ADELAIDE,
        "30 2 * * *",
        "2026-10-02",
        "2026-10-02 17:00",
        "2026-10-03 16:30",
        "2026-10-04 16:00",
    ),
    wall_clock_case(
        "Adelaide fall 02:30",
        ADELAIDE,
        "30 2 * * *",
        "2027-04-02",
        "2027-04-02 16:00",
        "2027-04-03 16:00",
        "2027-04-04 17:00",
    ),
    # The same rules for a six-field expression and for every quarter of a named hour.
    wall_clock_case(
        "Berlin spring 02:30:00 (6 fields)",
        BERLIN,
        "0 30 2 * * *",
        "2026-03-28",
        "2026-03-28 01:30",
        "2026-03-29 01:00",
        "2026-03-30 00:30",
    ),
    wall_clock_case(
        "Berlin spring */15 of hour 2",
        BERLIN,
        "*/15 2 * * *",
        "2026-03-28 01:59",
        "2026-03-29 01:00",
        "2026-03-30 00:00",
    ),
    wall_clock_case(
        "Berlin fall */15 of hour 2",
        BERLIN,
        "*/15 2 * * *",
        "2026-10-24 23:59",
        "2026-10-25 00:00",
        "2026-10-25 00:15",
        "2026-10-25 00:30",
        "2026-10-25 00:45",
        "2026-10-26 01:00",
    ),
    quarter_hour_case("Berlin spring */15", BERLIN, "2026-03-29 01:00"),
    quarter_hour_case("Berlin fall */15", BERLIN, "2026-10-25 01:00"),
    quarter_hour_case("New York spring */15", NEW_YORK, "2027-03-14 07:00"),
    quarter_hour_case("New York fall */15", NEW_YORK, "2026-11-01 06:00"),
    quarter_hour_case("Adelaide spring */15", ADELAIDE, "2026-10-03 16:30"),
    quarter_hour_case("Adelaide fall */15", ADELAIDE, "2027-04-03 16:30"),
)

SPEED_EXPRESSIONS = ("0 * * * * *", "*/15 * * * *", "0 9 * * 1-5", "30 2 * * *", "0 0 1 * *")
SPEED_AFTER = datetime(2026, 6, 3, 10, 7, 13, tzinfo=UTC)


# --- the contenders ------------------------------------------------------------------------------


def ours_occurrences(expression: str, after: datetime, zone: ZoneInfo) -> Iterator[datetime]:
    return cron.occurrences(cron.parse(expression), after, zone)


def ours_next(expression: str, zone: ZoneInfo) -> Callable[[datetime], object]:
    parsed = cron.parse(expression)
    return lambda after: cron.next_after(parsed, after, zone)


def ours_parse_and_next(expression: str, zone: ZoneInfo) -> Callable[[datetime], object]:
    parse_uncached = cron._parse.__wrapped__  # what a first sight of an expression costs
    return lambda after: cron.next_after(parse_uncached(expression), after, zone)


def cronsim_occurrences(expression: str, after: datetime, zone: ZoneInfo) -> Iterator[datetime]:
    from cronsim import CronSim

    for found in CronSim(expression, after.astimezone(zone)):
        yield found.astimezone(UTC)


def cronsim_parse_and_next(expression: str, zone: ZoneInfo) -> Callable[[datetime], object]:
    from cronsim import CronSim

    return lambda after: next(CronSim(expression, after.astimezone(zone)))


def croniter_occurrences(expression: str, after: datetime, zone: ZoneInfo) -> Iterator[datetime]:
    from croniter import croniter

    iterator = croniter(expression, after.astimezone(zone), second_at_beginning=len(expression.split()) == 6)
    while True:
        yield iterator.get_next(datetime).astimezone(UTC)


def croniter_next(expression: str, zone: ZoneInfo) -> Callable[[datetime], object]:
    from croniter import croniter

    iterator = croniter(
        expression, SPEED_AFTER.astimezone(zone), second_at_beginning=len(expression.split()) == 6
    )

    def next_after(after: datetime) -> object:
        iterator.set_current(after.astimezone(zone), force=True)
        return iterator.get_next(datetime)

    return next_after


def croniter_parse_and_next(expression: str, zone: ZoneInfo) -> Callable[[datetime], object]:
    from croniter import croniter

    six = len(expression.split()) == 6
    return lambda after: croniter(expression, after.astimezone(zone), second_at_beginning=six).get_next(
        datetime
    )


@dataclass(frozen=True)
class Contender:
    name: str
    module: str  # the import that tells whether it is installed
    distribution: str
    occurrences: Occurrences
    next_parsed_once: Callable[[str, ZoneInfo], Callable[[datetime], object]] | None
    parse_and_next: Callable[[str, ZoneInfo], Callable[[datetime], object]]


CONTENDERS = (
    Contender("ours", "task_scheduler", "task-scheduler", ours_occurrences, ours_next, ours_parse_and_next),
    Contender("cronsim", "cronsim", "cronsim", cronsim_occurrences, None, cronsim_parse_and_next),
    Contender(
        "croniter", "croniter", "croniter", croniter_occurrences, croniter_next, croniter_parse_and_next
    ),
)


# --- measuring -----------------------------------------------------------------------------------


def dst_failures(contender: Contender) -> list[str]:
    failed = []
    for case in DST_CASES:
        try:
            runs = contender.occurrences(case.expression, case.after, case.zone)
            got = tuple(next(runs) for _ in case.expected)
        except Exception as error:  # a library that raises fails the case
            failed.append(f"{case.name} (raised {type(error).__name__})")
            continue
        if got != case.expected:
            wrong = next(index for index, (a, b) in enumerate(zip(got, case.expected, strict=True)) if a != b)
            shown = got[wrong].astimezone(case.zone).strftime("%m-%d %H:%M %Z")
            expected = case.expected[wrong].astimezone(case.zone).strftime("%m-%d %H:%M %Z")
            failed.append(f"{case.name} (run {wrong + 1}: {shown}, expected {expected})")
    return failed


def microseconds_per_call(function: Callable[[datetime], object], *, calls: int, runs: int = 5) -> float:
    """Median over `runs` of the mean cost of `calls` calls, each from a slightly later instant."""
    instants = [SPEED_AFTER + timedelta(seconds=7 * index) for index in range(calls)]
    function(instants[0])
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        for instant in instants:
            function(instant)
        samples.append((time.perf_counter() - started) / calls * 1e6)
    return statistics.median(samples)


def speed(factory: Callable[[str, ZoneInfo], Callable[[datetime], object]], expression: str) -> str:
    try:
        return f"{microseconds_per_call(factory(expression, BERLIN), calls=2000):.1f}"
    except Exception as error:  # e.g. no seconds field
        return f"n/a ({type(error).__name__})"


def installed(contender: Contender) -> str | None:
    try:
        importlib.import_module(contender.module)
    except ImportError:
        return None
    try:
        return importlib.metadata.version(contender.distribution)
    except importlib.metadata.PackageNotFoundError:
        return "source tree"


def main() -> None:
    header = ["library", "DST cases right", *(f"`{expression}`" for expression in SPEED_EXPRESSIONS)]
    print(
        f"DST: {len(DST_CASES)} cases; speed: µs per next occurrence in Europe/Berlin, median of 5 x 2,000 calls"
    )
    print("(parsed once: one parsed object reused for every call; parse + next: parsed afresh each call)\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    failures: dict[str, list[str]] = {}
    for contender in CONTENDERS:
        version = installed(contender)
        if version is None:
            print(f"| {contender.name} | not installed, skipped |" + " |" * len(SPEED_EXPRESSIONS))
            continue
        failures[contender.name] = dst_failures(contender)
        right = f"{len(DST_CASES) - len(failures[contender.name])}/{len(DST_CASES)}"
        label = f"{contender.name} {version}"
        if contender.next_parsed_once is not None:
            cells = [speed(contender.next_parsed_once, expression) for expression in SPEED_EXPRESSIONS]
            print(f"| {label}, parsed once | {right} | " + " | ".join(cells) + " |")
        cells = [speed(contender.parse_and_next, expression) for expression in SPEED_EXPRESSIONS]
        print(f"| {label}, parse + next | {right} | " + " | ".join(cells) + " |")
    for name, failed in failures.items():
        if failed:
            print(f"\n{name} got wrong:")
            for line in failed:
                print(f"- {line}")


if __name__ == "__main__":
    main()
