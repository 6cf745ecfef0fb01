"""Cron expressions against a brute-force oracle, for drawn expressions, instants and zones
(several with daylight saving time, one with a half-hour shift, one that used to change at
midnight). CRON_EXAMPLES=N draws N examples per property (default 200, a few seconds)."""

from __future__ import annotations

import itertools
import os
from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from task_scheduler.schedules.cron import (
    CronError,
    CronExpression,
    describe,
    next_after,
    occurrences,
    parse,
    previous,
)

CRON_SETTINGS = settings(
    max_examples=int(os.environ.get("CRON_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
ZONE_NAMES = (
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Adelaide",
    "Australia/Lord_Howe",  # shifts by 30 minutes
    "Asia/Kathmandu",  # +05:45
    "America/Sao_Paulo",  # changed at midnight until 2019
)
ONE_SECOND = timedelta(seconds=1)
ONE_MINUTE = timedelta(minutes=1)


# --- what is drawn -------------------------------------------------------------------------------


def field(low: int, high: int, names: tuple[str, ...] = ()) -> st.SearchStrategy[str]:
    number = st.integers(low, high)
    forms = [
        st.just("*"),
        st.integers(2, high - low + 1).map(lambda step: f"*/{step}"),
        number.map(str),
        st.tuples(number, number).map(lambda pair: f"{min(pair)}-{max(pair)}"),
        st.tuples(number, number, st.integers(1, 12)).map(
            lambda triple: f"{min(triple[:2])}-{max(triple[:2])}/{triple[2]}"
        ),
        st.lists(number, min_size=2, max_size=4).map(lambda values: ",".join(map(str, values))),
    ]
    if names:
        forms.append(st.sampled_from(names))
    return st.one_of(forms)


MONTH_NAMES = ("JAN", "feb", "Mar", "jun-AUG", "NOV,dec")
DAY_NAMES = ("MON", "sun", "Mon-Fri", "SAT,SUN", "7", "5-7")


@st.composite
def field_expressions(draw: st.DrawFn) -> str:
    parts = [
        draw(field(0, 59)),
        draw(field(0, 23)),
        draw(st.one_of(field(1, 31), st.just("?"))),
        draw(field(1, 12, MONTH_NAMES)),
        draw(st.one_of(field(0, 6, DAY_NAMES), st.just("?"))),
    ]
    if draw(st.booleans()):
        parts.insert(0, draw(field(0, 59)))
    return " ".join(parts)


ALIASES = st.sampled_from(["@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"])
EXPRESSIONS = st.one_of(field_expressions(), field_expressions(), ALIASES)


@cache
def transitions(zone_name: str) -> tuple[datetime, ...]:
    """Offset changes of a zone in 2026 (and 2010, when Sao Paulo still changed), to the minute,
    found independently of the module: an hourly scan, then a minute scan."""
    zone = ZoneInfo(zone_name)
    found = []
    for year in (2010, 2026):
        moment = datetime(year, 1, 1, tzinfo=UTC)
        while moment.year == year:
            following = moment + timedelta(hours=1)
            if moment.astimezone(zone).utcoffset() != following.astimezone(zone).utcoffset():
                minute = moment
                while minute.astimezone(zone).utcoffset() == moment.astimezone(zone).utcoffset():
                    minute += ONE_MINUTE
                found.append(minute)
            moment = following
    return tuple(found)


@st.composite
def zones_and_moments(draw: st.DrawFn) -> tuple[ZoneInfo, datetime]:
    zone_name = draw(st.sampled_from(ZONE_NAMES))
    near = transitions(zone_name)
    if near and draw(st.booleans()):
        # Close to a change of the zone's offset, where the rules matter.
        moment = draw(st.sampled_from(near)) + timedelta(seconds=draw(st.integers(-4 * 3600, 4 * 3600)))
        moment += timedelta(microseconds=draw(st.sampled_from([0, 0, 1, 999_999])))
    else:
        moment = draw(
            st.datetimes(
                min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
            )
        )
    if draw(st.booleans()):
        moment = moment.astimezone(ZoneInfo(zone_name))  # `after` may come in any zone
    return ZoneInfo(zone_name), moment


def parsed(expression: str) -> CronExpression:
    try:
        return parse(expression)
    except CronError:
        assume(False)  # a day of month no chosen month has: rejected by design
        raise


# --- the oracle ----------------------------------------------------------------------------------


def fields_match(expr: CronExpression, local: datetime) -> bool:
    in_month = local.day in expr.days_of_month
    in_week = local.isoweekday() % 7 in expr.days_of_week
    day = (in_month or in_week) if expr.day_or else (in_month and in_week)
    return (
        day
        and local.second in expr.seconds
        and local.minute in expr.minutes
        and local.hour in expr.hours
        and local.month in expr.months
    )


def is_occurrence(expr: CronExpression, zone: ZoneInfo, instant: datetime) -> bool:
    """The module docstring's rules, written the slow and obvious way."""
    local = instant.astimezone(zone)
    if not expr.wall_clock:
        return fields_match(expr, local)  # every real instant whose local time matches
    if fields_match(expr, local) and local.fold == 0:
        return True  # a local time that exists, at its first instant
    # The end of a gap: the clock jumped forward here; it runs if a skipped local time matches.
    wall = local.replace(tzinfo=None)
    just_before = (instant - ONE_SECOND).astimezone(zone).replace(tzinfo=None)
    skipped = wall - just_before - ONE_SECOND
    if skipped <= timedelta(0):
        return False
    step = ONE_MINUTE if expr.seconds == {0} else ONE_SECOND
    candidate = just_before + ONE_SECOND
    while candidate < wall:
        if candidate.second in expr.seconds and fields_match(expr, candidate.replace(tzinfo=zone)):
            return True
        candidate += step
    return False


def scan_start(after: datetime, step: timedelta) -> datetime:
    """The first whole minute (or second) in UTC strictly after `after`."""
    moment = after.astimezone(UTC).replace(microsecond=0)
    if step == ONE_MINUTE:
        moment = moment.replace(second=0)
    while moment <= after:
        moment += step
    return moment


# --- properties ----------------------------------------------------------------------------------


def check_next_after(expr: CronExpression, zone: ZoneInfo, after: datetime) -> None:
    found = next_after(expr, after, zone)
    assert found is not None
    assert found > after
    assert found.tzinfo is UTC
    assert found.microsecond == 0
    assert is_occurrence(expr, zone, found), (found, found.astimezone(zone))
    # Nothing skipped: no instant between `after` and the result is an occurrence.
    step = ONE_MINUTE if expr.seconds == {0} else ONE_SECOND
    window = timedelta(hours=12) if step == ONE_MINUTE else timedelta(minutes=30)
    moment = scan_start(after, step)
    stop = min(found, after + window)
    while moment < stop:
        assert not is_occurrence(expr, zone, moment), (moment, moment.astimezone(zone), found)
        moment += step


@CRON_SETTINGS
@given(expression=EXPRESSIONS, zone_and_moment=zones_and_moments())
def test_next_after_is_the_first_occurrence_after(
    expression: str, zone_and_moment: tuple[ZoneInfo, datetime]
) -> None:
    zone, after = zone_and_moment
    check_next_after(parsed(expression), zone, after)


@st.composite
def around_offset_changes(draw: st.DrawFn) -> tuple[str, ZoneInfo, datetime]:
    """An expression aimed at the local hours a change skips or repeats, and an instant near it."""
    zone_name = draw(st.sampled_from([name for name in ZONE_NAMES if transitions(name)]))
    zone = ZoneInfo(zone_name)
    change = draw(st.sampled_from(transitions(zone_name)))
    hours = sorted(
        {(change + timedelta(hours=shift)).astimezone(zone).hour for shift in (-2, -1, 0, 1)}
        | {(change - ONE_SECOND).astimezone(zone).hour}
    )
    hour = draw(
        st.one_of(
            st.just("*"),
            st.sampled_from(hours).map(str),
            st.lists(st.sampled_from(hours), min_size=2, max_size=3).map(
                lambda values: ",".join(map(str, values))
            ),
            st.just(f"{hours[0]}-{hours[-1]}"),
        )
    )
    minute = draw(
        st.one_of(st.sampled_from(["*", "*/15", "0", "30", "45", "0,30", "*/7", "59"]), field(0, 59))
    )
    second = draw(st.sampled_from(["", "", "0 ", "*/20 ", "30 ", "*/7 "]))
    expression = f"{second}{minute} {hour} * * *"
    after = change + timedelta(seconds=draw(st.integers(-3 * 3600, 3 * 3600)))
    return expression, zone, after


@CRON_SETTINGS
@given(case=around_offset_changes())
def test_next_after_around_offset_changes(case: tuple[str, ZoneInfo, datetime]) -> None:
    expression, zone, after = case
    check_next_after(parse(expression), zone, after)


@CRON_SETTINGS
@given(expression=EXPRESSIONS, zone_and_moment=zones_and_moments())
def test_occurrences_increase_and_previous_agrees(
    expression: str, zone_and_moment: tuple[ZoneInfo, datetime]
) -> None:
    zone, after = zone_and_moment
    expr = parsed(expression)
    runs = list(itertools.islice(occurrences(expr, after, zone), 8))
    assert len(runs) == 8
    assert all(earlier < later for earlier, later in itertools.pairwise(runs))
    # previous() mirrors next_after(): the run before each one is the one before it in the series.
    assert [previous(expr, run, zone) for run in runs[1:]] == runs[:-1]
    before_first = previous(expr, runs[0], zone)
    assert before_first is not None
    assert before_first <= after
    assert next_after(expr, before_first, zone) == runs[0]


@CRON_SETTINGS
@given(expression=EXPRESSIONS, zone_name=st.sampled_from(ZONE_NAMES))
def test_normalised_means_the_same_and_describe_never_fails(expression: str, zone_name: str) -> None:
    expr = parsed(expression)
    again = parse(expr.normalised)
    assert again == expr
    assert again.normalised == expr.normalised
    assert hash(again) == hash(expr)
    text = describe(expr, zone_name)
    assert text
    assert text.isprintable()


@CRON_SETTINGS
@given(
    seconds=st.integers(1, 366 * 86400),
    anchor=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
    ),
    offset=st.integers(-(10**13), 10**13),
    zone_name=st.sampled_from(ZONE_NAMES),
)
def test_every_is_a_lattice_around_the_anchor(
    seconds: int, anchor: datetime, offset: int, zone_name: str
) -> None:
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    expr = parse(f"@every {days}d{hours}h{rest}s" if days else f"@every {hours}h{rest}s")
    interval = timedelta(seconds=seconds)
    assert expr.interval == interval
    after = anchor + timedelta(microseconds=offset)
    zone = ZoneInfo(zone_name)
    found = next_after(expr, after, zone, anchor=anchor)
    assert found is not None
    assert after < found <= after + interval
    assert (found - anchor) % interval == timedelta(0)
    before = previous(expr, after, zone, anchor=anchor)
    assert before is not None
    assert after - interval <= before < after
    assert (before - anchor) % interval == timedelta(0)
    assert parse(expr.normalised) == expr
    assert describe(expr, zone_name).startswith("every ")


TOKENS = st.sampled_from(
    [
        "*",
        "?",
        "/",
        "-",
        ",",
        "0",
        "7",
        "59",
        "60",
        "31",
        "99",
        "MON",
        "jan",
        "L",
        "W",
        "#",
        "@every",
        "@daily",
        "1h",
    ]
)


@CRON_SETTINGS
@given(
    text=st.one_of(
        st.text(max_size=40),
        st.lists(st.lists(TOKENS, min_size=1, max_size=4).map("".join), max_size=8).map(" ".join),
    )
)
def test_any_text_parses_or_raises_a_cron_error(text: str) -> None:
    outcome = parse_or_error(text)
    if isinstance(outcome, CronError):
        assert outcome.field_name in FIELD_NAMES
        assert str(outcome)
    else:
        assert parse(outcome.normalised) == outcome
        assert describe(outcome, "UTC")


FIELD_NAMES = {"expression", "second", "minute", "hour", "day_of_month", "month", "day_of_week"}


def parse_or_error(text: str) -> CronExpression | CronError:
    try:
        return parse(text)
    except CronError as error:
        return error
