"""Cron expressions (issue 14): parsing and its error messages, the normalised form, occurrences,
the DST rules on real transition dates of three zones, and the plain-language description."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from task_scheduler.schedules.cron import (
    CronError,
    describe,
    next_after,
    occurrences,
    occurrences_between,
    parse,
    previous,
)

UTC_ZONE = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
ADELAIDE = ZoneInfo("Australia/Adelaide")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def between(
    expression: str, start: datetime, end: datetime, tz: ZoneInfo, limit: int = 100
) -> list[datetime]:
    return occurrences_between(parse(expression), start, end, tz, limit=limit)


# --- parsing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "normalised"),
    [
        ("* * * * *", "* * * * *"),
        ("0 9 * * 1-5", "0 9 * * 1-5"),
        ("0 9 * * mon-FRI", "0 9 * * 1-5"),
        ("0 0 1 jan,Jul *", "0 0 1 1,7 *"),
        ("0 0 1 */4 *", "0 0 1 */4 *"),
        ("*/15 * * * *", "*/15 * * * *"),
        ("0-59/15 * * * *", "*/15 * * * *"),
        ("5/20 * * * *", "5-45/20 *  * * *".replace("  ", " ")),
        ("1,2,3,10 * * * *", "1-3,10 * * * *"),
        ("0 0 * * 7", "0 0 * * 0"),
        ("0 0 * * 0,7", "0 0 * * 0"),
        ("0 0 * * 5-7", "0 0 * * 0,5-6"),
        ("0 0 ? * MON", "0 0 * * 1"),
        ("0 0 1 * ?", "0 0 1 * *"),
        ("0 0 */2 * *", "0 0 */2 * *"),
        ("0 0 1-31/2 * 1", "0 0 1-31/2 * 1"),  # not star-first: stays restricted (OR rule)
        ("0 0 1-31 * 0-6", "0 0 1-31 * 0-6"),
        ("  0   9  * *  1-5 ", "0 9 * * 1-5"),
        ("0 0 9 * * *", "0 9 * * *"),  # a seconds field of 0 is the five-field form
        ("30 0 9 * * *", "30 0 9 * * *"),
        ("*/10 * * * * *", "*/10 * * * * *"),
        ("0,30 * * * * *", "0,30 * * * * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@HOURLY", "0 * * * *"),
        ("@every 90s", "@every 1m30s"),
        ("@every 6h", "@every 6h"),
        ("@every 1h30m", "@every 1h30m"),
        ("@every 2d", "@every 2d"),
        ("@every\t1H", "@every 1h"),
        ("@every 3600s", "@every 1h"),
    ],
)
def test_valid_forms_and_their_normalised_spelling(expression: str, normalised: str) -> None:
    parsed = parse(expression)
    assert parsed.normalised == normalised
    assert parse(parsed.normalised) == parsed
    assert parsed.expression == expression.strip()


def test_fields_become_sets_of_values() -> None:
    parsed = parse("0-10/5 8-9 1,15 */6 MON-WED")
    assert parsed.minutes == {0, 5, 10}
    assert parsed.hours == {8, 9}
    assert parsed.days_of_month == {1, 15}
    assert parsed.months == {1, 7}
    assert parsed.days_of_week == {1, 2, 3}
    assert parsed.seconds == {0}
    assert parsed.day_or  # both day fields restricted


def test_equal_meaning_is_equal_whatever_the_spelling() -> None:
    assert parse("0 9 * * MON-FRI") == parse("0 9 * * 1-5") == parse("0 0 9 ? * 1,2,3,4,5")
    assert parse("@daily") == parse("@midnight") == parse("0 0 * * *")
    assert parse("@every 90s") == parse("@every 1m30s")
    assert hash(parse("@weekly")) == hash(parse("0 0 * * SUN"))
    assert parse("0 0 * * *") != parse("0 0 * * * *")
    # Star-first or not decides AND versus OR, so these differ although their sets are equal.
    assert parse("0 0 */2 * 1") != parse("0 0 1-31/2 * 1")


@pytest.mark.parametrize(
    ("expression", "field_name", "message"),
    [
        ("", "expression", "the expression is empty"),
        ("* * * *", "expression", "expected 5 or 6 fields, got 4"),
        ("* * * * * * *", "expression", "expected 5 or 6 fields, got 7"),
        ("x" * 300, "expression", "longer than 256 characters"),
        ("@fortnightly", "expression", "unknown alias @fortnightly"),
        ("@daily 5", "expression", "@daily takes nothing after it"),
        ("@every", "expression", "@every needs a duration"),
        ("@every 0s", "expression", "at least 1 second"),
        ("@every 500ms", "expression", "'500ms' is not a duration"),
        ("@every 30m1h", "expression", "in that order"),
        ("@every 367d", "expression", "at most 366 days"),
        ("60 * * * *", "minute", "field 1 (minute): 60 is out of range 0-59"),
        ("* 25 * * *", "hour", "field 2 (hour): 25 is out of range 0-23"),
        ("0 * 25 * * *", "hour", "field 3 (hour): 25 is out of range 0-23"),
        ("60 * * * * *", "second", "field 1 (second): 60 is out of range 0-59"),
        ("* * 0 * *", "day_of_month", "field 3 (day of month): 0 is out of range 1-31"),
        ("* * 32 * *", "day_of_month", "field 3 (day of month): 32 is out of range 1-31"),
        ("* * * 13 *", "month", "field 4 (month): 13 is out of range 1-12"),
        ("* * * FOO *", "month", "field 4 (month): 'FOO' is not a number or a month name"),
        ("* * * * 8", "day_of_week", "field 5 (day of week): 8 is out of range 0-7"),
        ("* * * * MON-XYZ", "day_of_week", "'XYZ' is not a number or a day name"),
        ("* MON * * *", "hour", "field 2 (hour): 'MON' is not a number"),
        ("*/0 * * * *", "minute", "step 0 is out of range 1-60"),
        ("*/61 * * * *", "minute", "step 61 is out of range 1-60"),
        ("*/x * * * *", "minute", "the step in '*/x' is not a number"),
        ("22-2 * * * *", "minute", "range 22-2 runs backwards"),
        ("* 22-2 * * *", "hour", "field 2 (hour): range 22-2 runs backwards"),
        ("1,,2 * * * *", "minute", "a value is missing in '1,,2'"),
        ("-5 * * * *", "minute", "a value is missing"),
        ("1,* * * * *", "minute", "stand alone"),
        ("? * * * *", "minute", "'?' is only allowed in the day-of-month and day-of-week fields"),
        ("* * L * *", "day_of_month", "'L' is not a number"),
        ("* * * * 5#3", "day_of_week", "'5#3' is not a number or a day name"),
        ("٣ * * * *", "minute", "is not a number"),  # Arabic-Indic three: ASCII digits only
        ("0 0 30 2 *", "day_of_month", "field 3 (day of month): day 30 never occurs in February"),
        ("0 0 31 4,6,9,11 *", "day_of_month", "day 31 never occurs in April, June, September or November"),
        ("0 0 0 30-31 2 *", "day_of_month", "field 4 (day of month): days 30-31 never occur in February"),
        ("0 0 30 2 */2", "day_of_month", "never occurs in February"),  # star-first weekday: AND
    ],
)
def test_invalid_expressions_name_the_field_and_why(expression: str, field_name: str, message: str) -> None:
    with pytest.raises(CronError, match=None) as caught:
        parse(expression)
    assert message in str(caught.value)
    assert caught.value.field_name == field_name
    assert isinstance(caught.value, ValueError)


def test_day_30_in_february_is_fine_when_the_or_rule_allows_other_days() -> None:
    # Both day fields restricted: February 30 never comes, but every Monday of February does.
    assert next_after(parse("0 0 30 2 1"), utc(2026, 1, 1), UTC_ZONE) == utc(2026, 2, 2)


# --- ordinary occurrences ------------------------------------------------------------------------


def test_next_is_strictly_after_and_in_utc() -> None:
    expr = parse("0 9 * * *")
    found = next_after(expr, utc(2026, 6, 3, 9), UTC_ZONE)
    assert found == utc(2026, 6, 4, 9)
    assert found is not None
    assert found.tzinfo is UTC
    assert next_after(expr, datetime(2026, 6, 3, 8, 59, 59, 999999, tzinfo=UTC), UTC_ZONE) == utc(
        2026, 6, 3, 9
    )


def test_after_may_be_in_any_zone() -> None:
    after = datetime(2026, 6, 3, 10, 30, tzinfo=BERLIN)  # 08:30 UTC
    assert next_after(parse("0 9 * * *"), after, UTC_ZONE) == utc(2026, 6, 3, 9)


def test_weekdays_skip_the_weekend() -> None:
    found = between("0 9 * * 1-5", utc(2026, 6, 4), utc(2026, 6, 10), BERLIN)  # Thursday to Wednesday
    assert found == [utc(2026, 6, day, 7) for day in (4, 5, 8, 9)]  # 09:00 CEST is 07:00 UTC


def test_seconds_field() -> None:
    found = between("*/20 * * * * *", utc(2026, 6, 3, 12), utc(2026, 6, 3, 12, 1), UTC_ZONE)
    assert found == [utc(2026, 6, 3, 12, 0, 20), utc(2026, 6, 3, 12, 0, 40), utc(2026, 6, 3, 12, 1)]


def test_every_minute_at_second_zero_is_the_top_of_each_minute() -> None:
    expr = parse("0 * * * * *")
    assert next_after(expr, datetime(2026, 6, 3, 12, 0, 0, 1, tzinfo=UTC), BERLIN) == utc(2026, 6, 3, 12, 1)


def test_leap_day() -> None:
    expr = parse("0 0 29 2 *")
    assert list(occurrences_between(expr, utc(2026, 1, 1), utc(2037, 1, 1), UTC_ZONE, limit=10)) == [
        utc(2028, 2, 29),
        utc(2032, 2, 29),
        utc(2036, 2, 29),
    ]
    assert previous(expr, utc(2026, 1, 1), UTC_ZONE) == utc(2024, 2, 29)


def test_leap_day_that_must_also_be_a_sunday() -> None:
    # Day of week written star-first: AND. February 29 falls on a Sunday in 2032, then 2060.
    expr = parse("0 0 29 2 */7")
    assert next_after(expr, utc(2026, 1, 1), UTC_ZONE) == utc(2032, 2, 29)
    assert next_after(expr, utc(2032, 3, 1), UTC_ZONE) == utc(2060, 2, 29)


def test_day_of_month_or_day_of_week_when_both_are_restricted() -> None:
    # The 13th or any Friday (Vixie cron): June 2026 has Fridays 5, 12, 19, 26.
    found = between("0 0 13 * FRI", utc(2026, 6, 1), utc(2026, 7, 1), UTC_ZONE)
    assert [moment.day for moment in found] == [5, 12, 13, 19, 26]


def test_day_of_month_and_day_of_week_when_one_is_star_first() -> None:
    # Odd days that are Fridays: June 2026's Fridays 5 and 19.
    found = between("0 0 */2 * FRI", utc(2026, 6, 1), utc(2026, 7, 1), UTC_ZONE)
    assert [moment.day for moment in found] == [5, 19]
    # Only the weekday restricted: every Friday.
    found = between("0 0 * * FRI", utc(2026, 6, 1), utc(2026, 7, 1), UTC_ZONE)
    assert [moment.day for moment in found] == [5, 12, 19, 26]


def test_end_of_month() -> None:
    found = between("0 12 31 * *", utc(2026, 1, 1), utc(2027, 1, 1), UTC_ZONE)
    assert [moment.month for moment in found] == [1, 3, 5, 7, 8, 10, 12]
    found = between("0 0 28-31 2 *", utc(2027, 1, 1), utc(2029, 1, 1), UTC_ZONE)
    assert found == [utc(2027, 2, 28), utc(2028, 2, 28), utc(2028, 2, 29)]


def test_year_rollover() -> None:
    assert next_after(parse("@yearly"), utc(2026, 12, 31, 23, 59, 59), UTC_ZONE) == utc(2027, 1, 1)
    assert next_after(parse("59 23 31 12 *"), utc(2026, 12, 31, 23, 59), UTC_ZONE) == utc(
        2027, 12, 31, 23, 59
    )


def test_occurrences_iterates_in_order() -> None:
    iterator = occurrences(parse("@hourly"), utc(2026, 6, 3, 10, 30), UTC_ZONE)
    assert [next(iterator) for _ in range(3)] == [utc(2026, 6, 3, hour) for hour in (11, 12, 13)]


def test_occurrences_between_is_half_open_and_limited() -> None:
    expr = parse("0 * * * *")
    found = occurrences_between(expr, utc(2026, 6, 3, 10), utc(2026, 6, 3, 13), UTC_ZONE, limit=10)
    assert found == [utc(2026, 6, 3, hour) for hour in (11, 12, 13)]  # start excluded, end included
    inclusive = occurrences_between(
        expr, utc(2026, 6, 3, 10) - timedelta(microseconds=1), utc(2026, 6, 3, 13), UTC_ZONE, limit=10
    )
    assert inclusive[0] == utc(2026, 6, 3, 10)
    assert occurrences_between(expr, utc(2026, 6, 3), utc(2026, 6, 4), UTC_ZONE, limit=2) == [
        utc(2026, 6, 3, 1),
        utc(2026, 6, 3, 2),
    ]
    with pytest.raises(ValueError, match="limit must be at least 1"):
        occurrences_between(expr, utc(2026, 6, 3), utc(2026, 6, 4), UTC_ZONE, limit=0)


def test_previous_is_strictly_before() -> None:
    expr = parse("*/15 * * * *")
    assert previous(expr, utc(2026, 6, 3, 10, 15), BERLIN) == utc(2026, 6, 3, 10)
    assert previous(expr, utc(2026, 6, 3, 10, 15, 1), BERLIN) == utc(2026, 6, 3, 10, 15)
    assert previous(parse("0 9 * * 1-5"), utc(2026, 6, 8, 6), BERLIN) == utc(
        2026, 6, 5, 7
    )  # Friday 09:00 CEST


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_after(parse("* * * * *"), datetime(2026, 6, 3), UTC_ZONE)
    with pytest.raises(ValueError, match="timezone-aware"):
        previous(parse("* * * * *"), datetime(2026, 6, 3), UTC_ZONE)
    with pytest.raises(ValueError, match="timezone-aware"):
        next_after(parse("@every 1h"), utc(2026, 6, 3), UTC_ZONE, anchor=datetime(2026, 1, 1))


def test_the_end_of_time_is_none() -> None:
    assert next_after(parse("0 0 1 1 *"), utc(9999, 6, 1), UTC_ZONE) is None
    assert next_after(parse("0 0 1 1 *"), utc(9999, 6, 1), BERLIN) is None
    assert next_after(parse("* * * * *"), utc(9999, 12, 31, 23, 59), UTC_ZONE) is None
    assert list(occurrences(parse("0 0 1 12 *"), utc(9998, 6, 1), UTC_ZONE)) == [
        utc(9998, 12, 1),
        utc(9999, 12, 1),
    ]
    assert previous(parse("0 0 1 1 *"), datetime(1, 6, 1, tzinfo=UTC), UTC_ZONE) is None


# --- @every --------------------------------------------------------------------------------------


def test_every_runs_from_the_anchor() -> None:
    expr = parse("@every 90s")
    anchor = utc(2026, 6, 3, 12, 0, 10)
    found = occurrences_between(expr, anchor, anchor + timedelta(minutes=5), BERLIN, limit=10, anchor=anchor)
    assert found == [anchor + timedelta(seconds=90 * step) for step in (1, 2, 3)]
    # The anchor itself counts, and the lattice reaches before it too.
    assert next_after(expr, anchor - timedelta(microseconds=1), BERLIN, anchor=anchor) == anchor
    assert next_after(expr, anchor - timedelta(seconds=100), BERLIN, anchor=anchor) == anchor - timedelta(
        seconds=90
    )
    assert previous(expr, anchor, BERLIN, anchor=anchor) == anchor - timedelta(seconds=90)
    assert previous(expr, anchor + timedelta(seconds=1), BERLIN, anchor=anchor) == anchor


def test_every_without_an_anchor_counts_from_the_unix_epoch() -> None:
    assert next_after(parse("@every 6h"), utc(2026, 6, 3, 7), NEW_YORK) == utc(2026, 6, 3, 12)


def test_every_keeps_real_time_through_daylight_saving() -> None:
    anchor = utc(2026, 10, 24, 22, 0, 0)
    found = occurrences_between(
        parse("@every 1h30m"), anchor, utc(2026, 10, 25, 6), BERLIN, limit=10, anchor=anchor
    )
    assert {b - a for a, b in itertools.pairwise(found)} == {timedelta(minutes=90)}


def test_every_keeps_the_anchors_microseconds() -> None:
    anchor = datetime(2026, 6, 3, 12, 0, 0, 250000, tzinfo=UTC)
    assert next_after(parse("@every 1s"), anchor, UTC_ZONE, anchor=anchor) == anchor + timedelta(seconds=1)


# --- daylight saving time on real transition dates -----------------------------------------------
# Berlin: CET+1 -> CEST+2 at 01:00 UTC on the last Sunday of March, back on the last Sunday of October.
# New York: EST-5 -> EDT-4 at 02:00 local on the second Sunday of March, back on the first Sunday of November.
# Adelaide: ACDT+10:30 -> ACST+9:30 at 03:00 local on the first Sunday of April, back on the first
# Sunday of October at 02:00 local.

TRANSITIONS = [
    # zone, instant of the change (UTC), kind
    (BERLIN, utc(2026, 3, 29, 1), "spring"),
    (BERLIN, utc(2026, 10, 25, 1), "fall"),
    (BERLIN, utc(2027, 3, 28, 1), "spring"),
    (BERLIN, utc(2027, 10, 31, 1), "fall"),
    (NEW_YORK, utc(2026, 3, 8, 7), "spring"),
    (NEW_YORK, utc(2026, 11, 1, 6), "fall"),
    (NEW_YORK, utc(2027, 3, 14, 7), "spring"),
    (NEW_YORK, utc(2027, 11, 7, 6), "fall"),
    (ADELAIDE, utc(2026, 4, 4, 16, 30), "fall"),
    (ADELAIDE, utc(2026, 10, 3, 16, 30), "spring"),
    (ADELAIDE, utc(2027, 4, 3, 16, 30), "fall"),
    (ADELAIDE, utc(2027, 10, 2, 16, 30), "spring"),
]
TRANSITION_IDS = [f"{zone.key}-{moment:%Y-%m}-{kind}" for zone, moment, kind in TRANSITIONS]


@pytest.mark.parametrize(("zone", "moment", "kind"), TRANSITIONS, ids=TRANSITION_IDS)
def test_the_transition_dates_are_real(zone: ZoneInfo, moment: datetime, kind: str) -> None:
    before = (moment - timedelta(seconds=1)).astimezone(zone).utcoffset()
    after = moment.astimezone(zone).utcoffset()
    assert before is not None
    assert after is not None
    assert after - before == (timedelta(hours=1) if kind == "spring" else timedelta(hours=-1))


@pytest.mark.parametrize(
    ("zone", "expression", "start", "expected"),
    [
        # 02:30 does not exist on the spring-forward day: it runs once, at the end of the gap (03:00).
        (BERLIN, "30 2 * * *", "2026-03-28 00:00", ["2026-03-28 01:30", "2026-03-29 01:00", "2026-03-30 00:30"]),
        (BERLIN, "30 2 * * *", "2027-03-27 00:00", ["2027-03-27 01:30", "2027-03-28 01:00", "2027-03-29 00:30"]),
        (NEW_YORK, "30 2 * * *", "2026-03-07 00:00", ["2026-03-07 07:30", "2026-03-08 07:00", "2026-03-09 06:30"]),
        (NEW_YORK, "30 2 * * *", "2027-03-13 00:00", ["2027-03-13 07:30", "2027-03-14 07:00", "2027-03-15 06:30"]),
        (ADELAIDE, "30 2 * * *", "2026-10-02 00:00", ["2026-10-02 17:00", "2026-10-03 16:30", "2026-10-04 16:00"]),
        (ADELAIDE, "30 2 * * *", "2027-10-01 00:00", ["2027-10-01 17:00", "2027-10-02 16:30", "2027-10-03 16:00"]),
        # 02:30 happens twice on the fall-back day: it runs once, at the first instant (summer time).
        (BERLIN, "30 2 * * *", "2026-10-24 00:00", ["2026-10-24 00:30", "2026-10-25 00:30", "2026-10-26 01:30"]),
        (BERLIN, "30 2 * * *", "2027-10-30 00:00", ["2027-10-30 00:30", "2027-10-31 00:30", "2027-11-01 01:30"]),
        (NEW_YORK, "30 1 * * *", "2026-10-31 00:00", ["2026-10-31 05:30", "2026-11-01 05:30", "2026-11-02 06:30"]),
        (NEW_YORK, "30 1 * * *", "2027-11-06 00:00", ["2027-11-06 05:30", "2027-11-07 05:30", "2027-11-08 06:30"]),
        (ADELAIDE, "30 2 * * *", "2026-04-03 00:00", ["2026-04-03 16:00", "2026-04-04 16:00", "2026-04-05 17:00"]),
        (ADELAIDE, "30 2 * * *", "2027-04-02 00:00", ["2027-04-02 16:00", "2027-04-03 16:00", "2027-04-04 17:00"]),
        # Several skipped times fold into the one run at the end of the gap, with 03:00's own run.
        (BERLIN, "0,30 2,3 * * *", "2026-03-29 00:00", ["2026-03-29 01:00", "2026-03-29 01:30"]),
        (BERLIN, "*/15 2 * * *", "2026-03-29 00:00", ["2026-03-29 01:00"]),
        # Every quarter hour of a named hour: the first pass only.
        (BERLIN, "*/15 2 * * *", "2026-10-25 00:00", [f"2026-10-25 00:{minute:02d}" for minute in (0, 15, 30, 45)]),
        (NEW_YORK, "0 1 * * *", "2026-11-01 00:00", ["2026-11-01 05:00"]),
        # A named hour outside the change is untouched.
        (NEW_YORK, "0 9 * * *", "2026-03-07 00:00", ["2026-03-07 14:00", "2026-03-08 13:00"]),
    ],
)  # fmt: skip
def test_wall_clock_times_run_once_per_local_day(
    zone: ZoneInfo, expression: str, start: str, expected: list[str]
) -> None:
    start_at = datetime.fromisoformat(start).replace(tzinfo=UTC)
    runs = [datetime.fromisoformat(run).replace(tzinfo=UTC) for run in expected]
    end = runs[-1] if len(runs) > 1 else start_at + timedelta(hours=23)
    assert between(expression, start_at - timedelta(microseconds=1), end, zone) == runs


@pytest.mark.parametrize(("zone", "moment", "kind"), TRANSITIONS, ids=TRANSITION_IDS)
@pytest.mark.parametrize(
    ("expression", "spacing"),
    [
        ("*/15 * * * *", timedelta(minutes=15)),
        ("0 * * * *", timedelta(hours=1)),
        ("*/30 * * * * *", timedelta(seconds=30)),
        ("*/20 * * * *", timedelta(minutes=20)),
    ],
)
def test_interval_like_expressions_keep_their_real_time_spacing(
    zone: ZoneInfo, moment: datetime, kind: str, expression: str, spacing: timedelta
) -> None:
    # Every hour matches, so the skipped hour is skipped and the repeated hour runs twice.
    start = moment - timedelta(hours=3)
    found = between(expression, start, moment + timedelta(hours=3), zone, limit=1000)
    # Adelaide's offset is a half hour, so its hour-aligned runs sit at :30 UTC.
    assert found[0] == start + spacing
    assert {later - earlier for earlier, later in itertools.pairwise(found)} == {spacing}
    assert found[-1] == moment + timedelta(hours=3)


def test_quarter_hours_through_berlins_fall_back_in_local_time() -> None:
    found = between("*/15 * * * *", utc(2026, 10, 24, 23, 50), utc(2026, 10, 25, 1, 20), BERLIN)
    local = [moment.astimezone(BERLIN).strftime("%H:%M%Z") for moment in found]
    assert local == ["02:00CEST", "02:15CEST", "02:30CEST", "02:45CEST", "02:00CET", "02:15CET"]


def test_quarter_hours_through_new_yorks_spring_forward_in_local_time() -> None:
    found = between("*/15 * * * *", utc(2026, 3, 8, 6, 30), utc(2026, 3, 8, 7, 15), NEW_YORK)
    local = [moment.astimezone(NEW_YORK).strftime("%H:%M%Z") for moment in found]
    assert local == ["01:45EST", "03:00EDT", "03:15EDT"]


def test_next_after_from_inside_the_repeated_hour() -> None:
    expr = parse("30 2 * * *")
    second_pass = utc(2026, 10, 25, 1, 10)  # 02:10 CET, after 02:30 CEST has run
    assert next_after(expr, second_pass, BERLIN) == utc(2026, 10, 26, 1, 30)
    first_pass = utc(2026, 10, 25, 0, 10)  # 02:10 CEST
    assert next_after(expr, first_pass, BERLIN) == utc(2026, 10, 25, 0, 30)
    # Every second of hour 2: the whole first pass lies behind; the search steps over it.
    assert next_after(parse("* * 2 * * *"), second_pass, BERLIN) == utc(2026, 10, 26, 1)


def test_next_after_the_end_of_the_gap_moves_on() -> None:
    expr = parse("30 2 * * *")
    assert next_after(expr, utc(2026, 3, 29, 1), BERLIN) == utc(2026, 3, 30, 0, 30)
    assert previous(expr, utc(2026, 3, 30, 0, 30), BERLIN) == utc(2026, 3, 29, 1)
    assert previous(expr, utc(2026, 10, 26, 1, 30), BERLIN) == utc(2026, 10, 25, 0, 30)


def test_lord_howe_shifts_half_an_hour() -> None:
    # +10:30 -> +11 at 02:00 local on 4 October 2026: 02:15 does not exist and runs at 02:30.
    zone = ZoneInfo("Australia/Lord_Howe")
    assert next_after(parse("15 2 * * *"), utc(2026, 10, 3, 12), zone) == utc(2026, 10, 3, 15, 30)
    quarter_hours = between("*/15 * * * *", utc(2026, 10, 3, 14), utc(2026, 10, 3, 17), zone)
    assert {b - a for a, b in itertools.pairwise(quarter_hours)} == {timedelta(minutes=15)}


# --- describe ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "text"),
    [
        ("0 9 * * 1-5", "at 09:00 on weekdays, Europe/Berlin"),
        ("*/15 * * * *", "every 15 minutes"),
        ("@every 90s", "every 90 seconds"),
        ("@every 1h30m", "every 90 minutes"),
        ("@every 6h", "every 6 hours"),
        ("@every 1d", "every day"),
        ("@every 1s", "every second"),
        ("5 * * * *", "at minute 5 past every hour"),
        ("0 0 1 * *", "at 00:00 on day 1 of the month, Europe/Berlin"),
        ("@daily", "at 00:00 every day, Europe/Berlin"),
        ("@weekly", "at 00:00 on Sundays, Europe/Berlin"),
        ("@yearly", "at 00:00 on day 1 of the month in January, Europe/Berlin"),
        ("* * * * *", "every minute"),
        ("* * * * * *", "every second"),
        ("*/10 * * * * *", "every 10 seconds"),
        ("30 15 9 * * *", "at 09:15:30 every day, Europe/Berlin"),
        ("0 9,17 * * *", "at 09:00 and 17:00 every day, Europe/Berlin"),
        ("*/15 9-17 * * 1-5", "every 15 minutes from 09:00 to 17:45 on weekdays, Europe/Berlin"),
        ("0 */2 * * *", "at minute 0 past every 2nd hour, Europe/Berlin"),
        ("0 0 * * 0,6", "at 00:00 on weekends, Europe/Berlin"),
        ("0 0 13 * 5", "at 00:00 on day 13 of the month or on Fridays, Europe/Berlin"),
        ("0 0 1-7 * */7", "at 00:00 on days 1-7 of the month that fall on Sundays, Europe/Berlin"),
        (
            "0 12 * 1-3,7 MON,WED",
            "at 12:00 on Mondays and Wednesdays in January to March and July, Europe/Berlin",
        ),
        ("*/7 * * * *", "at minutes 0, 7, 14, 21, 28, 35, 42, 49 and 56 of every hour"),
        ("0,30 0-29 9 * * *", "at seconds 0 and 30 of minutes 0-29 of hour 9 every day, Europe/Berlin"),
        ("0 * 1 * *", "at minute 0 past every hour on day 1 of the month, Europe/Berlin"),
    ],
)
def test_describe(expression: str, text: str) -> None:
    assert describe(parse(expression), "Europe/Berlin") == text


def test_instants_in_a_dst_zone_are_compared_as_instants() -> None:
    # Python compares and subtracts aware datetimes of one zone by wall clock; the module must not.
    second_pass = datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=BERLIN)  # 01:30 UTC
    assert previous(parse("*/15 * * * *"), second_pass, BERLIN) == utc(2026, 10, 25, 1, 15)
    assert next_after(parse("*/15 * * * *"), second_pass, BERLIN) == utc(2026, 10, 25, 1, 45)
    anchor = datetime(2026, 10, 25, 1, 0, tzinfo=BERLIN)  # 23:00 UTC the day before
    assert next_after(parse("@every 1h"), second_pass, BERLIN, anchor=anchor) == utc(2026, 10, 25, 2)
    assert previous(parse("@every 1h"), second_pass, BERLIN, anchor=anchor) == utc(2026, 10, 25, 1)
