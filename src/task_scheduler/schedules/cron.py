"""Cron expressions: parse, normalise, describe, and find their occurrences in a time zone.

Pure computation (no I/O, no database, no clock). Time zones come from the standard library's
`zoneinfo`; every datetime given must be aware, every datetime returned is aware and in UTC.

Syntax
    Five fields `minute hour day-of-month month day-of-week`, or six with a leading `second`.
    Each field is `*`, a value, a range `a-b`, a step `*/n`, `a-b/n` or `a/n` (= `a-max/n`), or a
    comma list of values, ranges and stepped ranges (`*` stands alone, never inside a list). Months
    and days of week also take names (JAN-DEC, SUN-SAT, any case); day of week 0 and 7 are both
    Sunday; `?` means `*` in the two day fields. A range never wraps (`22-2` is an error: write
    `22-23,0-2`). Aliases: `@yearly` = `@annually` = `0 0 1 1 *`, `@monthly` = `0 0 1 * *`,
    `@weekly` = `0 0 * * 0`, `@daily` = `@midnight` = `0 0 * * *`, `@hourly` = `0 * * * *`.
    `@every <duration>` (`90s`, `6h`, `1h30m`, `2d`: units d h m s in that order, 1 s to 366 d)
    runs at `anchor + k * duration` for every integer k; the caller gives the anchor (the
    schedule's start), the Unix epoch if it gives none. Its time zone plays no part.

Day of month and day of week (Vixie cron)
    When both fields are restricted, a day matches if EITHER matches (`0 0 1 * MON` = the 1st and
    every Monday). A field written with a leading `*` or `?` (`*`, `*/2`) is not restricted in
    this sense, and then both must match (`0 0 */2 * MON` = odd days that are Mondays).

Never-matching expressions
    A day of month that no chosen month has (`0 0 30 2 *`, `0 0 31 4,6 *`) is a `CronError` at
    parse time. Every other valid expression matches within 28 years, so the searches below end.
    `next_after` returns None only when no occurrence exists before the end of year 9999.

Normalised form
    The canonical spelling of what an expression means: aliases expanded (`@daily` -> `0 0 * * *`),
    names as numbers, Sunday as 0, `?` as `*`, each field rewritten from its set of values (`*`,
    `*/n`, `a-b/n`, or a list of values and ranges), five fields when the seconds are just 0, six
    otherwise; `@every` as `@every 1h30m` (units d h m s). `parse(e.normalised) == parse(e)`.

Daylight saving time (issue 14). An expression runs in one of two modes, chosen by its hour field:
    * Wall-clock mode: the hour field names specific hours (`30 2 * * *`, `0 9-17 * * 1-5`).
      Each matching local date and time runs once. A local time that does not exist (spring
      forward) runs at the end of the gap, the first instant after it (02:30 on the day Berlin
      skips 02:00-02:59 runs at 03:00 CEST); several such times fold into that one run, together
      with a run the expression has at that instant anyway. A local time that happens twice
      (fall back) runs once, at its first instant (02:30 CEST, not again at 02:30 CET).
    * Real-time mode: the hour field covers every hour (`*/15 * * * *`, `0 * * * *`,
      `*/10 * * * * *`, `30 * 1 * *`). It runs at every real instant whose local time matches:
      the local times of the skipped hour never happen so nothing runs for them, and the repeated
      hour runs in both passes. So `*/15 * * * *` stays 15 minutes apart in real time through both
      changes (no 0- or 75-minute gap), and `0 * * * *` stays an hour apart. This holds for every
      zone whose changes shift whole hours (nearly all; Australia/Adelaide's offsets are
      half-hour but its shift is an hour). In a zone that shifts by 30 minutes (Australia/Lord_Howe)
      an hourly run simply follows the local clock.
    Offset changes are found by sampling a zone's offset every 6 hours per year and bisecting to
    the second (cached per zone and year): two changes less than 6 hours apart would be missed (no
    current rule has them; old history was not checked).

Speed: field sets become lookup tables at parse time ("next allowed value at or after x"), the
matching days of a month are cached per (day fields, year, month), so `next_after` costs 5-7 µs
for ordinary expressions. `parse` caches each field spelling and the last 1,024 expressions
(figures and the library comparison in docs/performance.md).
"""

from __future__ import annotations

import calendar
import re
from bisect import bisect_right
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Final, NamedTuple
from zoneinfo import ZoneInfo

__all__ = [
    "CronError",
    "CronExpression",
    "describe",
    "next_after",
    "occurrences",
    "occurrences_between",
    "parse",
    "previous",
]

MAX_EXPRESSION_LENGTH: Final = 256
MAX_INTERVAL: Final = timedelta(days=366)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_SECOND: Final = timedelta(seconds=1)
_ONE_MICROSECOND: Final = timedelta(microseconds=1)

_MONTH_NAMES: Final = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_DAY_NAMES: Final = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_DAYS_IN_MONTH_AT_MOST: Final = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

_ALIASES: Final[Mapping[str, str]] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_DURATION = re.compile(r"(?:([0-9]{1,9})d)?(?:([0-9]{1,9})h)?(?:([0-9]{1,9})m)?(?:([0-9]{1,9})s)?")


class CronError(ValueError):
    """An invalid expression. `field_name` is the field at fault: second, minute, hour,
    day_of_month, month, day_of_week, or `expression` when the whole is wrong (field count,
    unknown alias, an `@every` duration)."""

    def __init__(self, message: str, *, field_name: str) -> None:
        super().__init__(message)
        self.field_name = field_name


@dataclass(frozen=True, slots=True)
class _Field:
    name: str  # as in CronError.field_name
    label: str  # as in messages
    low: int
    high: int  # where `*` and `a/n` end
    highest_allowed: int  # 7 for day of week: 7 is Sunday too
    names: Mapping[str, int]

    @property
    def size(self) -> int:
        return self.high - self.low + 1


_SECOND: Final = _Field("second", "second", 0, 59, 59, {})
_MINUTE: Final = _Field("minute", "minute", 0, 59, 59, {})
_HOUR: Final = _Field("hour", "hour", 0, 23, 23, {})
_DAY_OF_MONTH: Final = _Field("day_of_month", "day of month", 1, 31, 31, {})
_MONTH: Final = _Field(
    "month", "month", 1, 12, 12, {name[:3].lower(): number for number, name in enumerate(_MONTH_NAMES, 1)}
)
_DAY_OF_WEEK: Final = _Field(
    "day_of_week",
    "day of week",
    0,
    6,
    7,
    {name[:3].lower(): number for number, name in enumerate(_DAY_NAMES)},
)
_FIELDS: Final = (_SECOND, _MINUTE, _HOUR, _DAY_OF_MONTH, _MONTH, _DAY_OF_WEEK)


class _Tables(NamedTuple):
    """What the search reads, built once at parse time: `next_x[v]` is the smallest allowed value
    >= v, or -1 (one slot past the field's end, so an overflow needs no special case)."""

    next_second: tuple[int, ...]
    next_minute: tuple[int, ...]
    next_hour: tuple[int, ...]
    next_month: tuple[int, ...]
    day_of_month_mask: int
    day_of_week_mask: int
    day_or: bool
    wall_clock: bool  # the hour field names specific hours: see "Daylight saving time" above


@dataclass(frozen=True, eq=False, slots=True)
class CronExpression:
    """A parsed expression. Equal when they mean the same fields (or the same `@every` duration),
    whatever the spelling; `expression` keeps the text as given."""

    expression: str
    normalised: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]  # 0 = Sunday
    day_of_month_star: bool  # written `*`, `?` or `*/n`: not "restricted" for the OR rule
    day_of_week_star: bool
    interval: timedelta | None  # `@every`; then the field sets are empty
    _tables: _Tables | None = field(repr=False)

    @property
    def day_or(self) -> bool:
        """Both day fields restricted: a day matches when either does (Vixie cron)."""
        return not self.day_of_month_star and not self.day_of_week_star

    @property
    def wall_clock(self) -> bool:
        """The DST mode: True when the hour field names specific hours (see the module docstring)."""
        return self._tables is not None and self._tables.wall_clock

    def _key(self) -> tuple[object, ...]:
        return (
            self.seconds,
            self.minutes,
            self.hours,
            self.days_of_month,
            self.months,
            self.days_of_week,
            self.day_of_month_star,
            self.day_of_week_star,
            self.interval,
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CronExpression) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


# ---------------------------------------------------------------------------------------------
# Parsing


def parse(expression: str) -> CronExpression:
    """Parse a cron expression; raises CronError naming the field at fault and why."""
    return _parse(expression.strip())


@lru_cache(maxsize=1024)  # the engine meets the same few expressions again and again
def _parse(text: str) -> CronExpression:
    if not text:
        raise CronError("the expression is empty", field_name="expression")
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise CronError(
            f"the expression is longer than {MAX_EXPRESSION_LENGTH} characters", field_name="expression"
        )
    if text.startswith("@"):
        return _parse_alias(text)
    parts = text.split()
    if len(parts) not in (5, 6):
        raise CronError(f"expected 5 or 6 fields, got {len(parts)}", field_name="expression")
    if len(parts) == 5:
        parts.insert(0, "0")
        positions: Sequence[int] = (0, 1, 2, 3, 4, 5)  # the seconds field was not written
    else:
        positions = (1, 2, 3, 4, 5, 6)
    parsed = [
        _parse_field(part, index, position)
        for index, (part, position) in enumerate(zip(parts, positions, strict=True))
    ]
    return _build(text, *parsed, day_of_month_position=positions[3])


def _parse_alias(text: str) -> CronExpression:
    word, *more = text.split(maxsplit=1)  # `text` is stripped, so `more` is empty or one word onwards
    word, rest = word.lower(), "".join(more)
    if word == "@every":
        return _parse_every(text, rest)
    if word in _ALIASES and not rest:
        return replace(parse(_ALIASES[word]), expression=text)
    if word in _ALIASES:
        raise CronError(f"{word} takes nothing after it, got {rest!r}", field_name="expression")
    raise CronError(
        f"unknown alias {word} (expected one of {', '.join(_ALIASES)} or @every <duration>)",
        field_name="expression",
    )


def _parse_every(text: str, duration: str) -> CronExpression:
    if not duration:
        raise CronError("@every needs a duration such as 90s, 6h or 1h30m", field_name="expression")
    match = _DURATION.fullmatch(duration.lower())
    if match is None or not any(match.groups()):
        raise CronError(
            f"@every: {duration!r} is not a duration such as 90s, 6h or 1h30m (units d, h, m, s in that order)",
            field_name="expression",
        )
    days, hours, minutes, seconds = (int(group or 0) for group in match.groups())
    total = days * 86400 + hours * 3600 + minutes * 60 + seconds
    if total < 1:
        raise CronError("@every: the duration must be at least 1 second", field_name="expression")
    if total > MAX_INTERVAL.total_seconds():
        raise CronError(
            f"@every: the duration must be at most {MAX_INTERVAL.days} days (use fields for longer periods)",
            field_name="expression",
        )
    empty: frozenset[int] = frozenset()
    return CronExpression(
        expression=text,
        normalised=f"@every {_compact_duration(total)}",
        seconds=empty,
        minutes=empty,
        hours=empty,
        days_of_month=empty,
        months=empty,
        days_of_week=empty,
        day_of_month_star=True,
        day_of_week_star=True,
        interval=timedelta(seconds=total),
        _tables=None,
    )


def _compact_duration(total: int) -> str:
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, total = divmod(total, size)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)


class _ParsedField(NamedTuple):
    values: frozenset[int]
    star: bool  # written star-first (`*`, `?`, `*/n`): matters for the day-of-month/day-of-week rule
    normalised: str
    upcoming: tuple[int, ...]  # next allowed value at or after v, -1 past the end (see _Tables)


@lru_cache(maxsize=1024)  # fields repeat across expressions (`*`, `0`, `1-5`): parse each spelling once
def _parse_field(text: str, index: int, position: int) -> _ParsedField:
    """One field; `index` into _FIELDS, `position` as the user counts (0: the implied seconds)."""
    spec = _FIELDS[index]

    def fail(why: str) -> CronError:
        where = f"field {position} ({spec.label})" if position else f"the {spec.label} field"
        return CronError(f"{where}: {why}", field_name=spec.name)

    def value(token: str) -> int:
        if not token:
            raise fail(f"a value is missing in {text!r}")
        if token.isascii() and token.isdigit():
            number = int(token) if len(token) <= 6 else spec.highest_allowed + 1
            if not spec.low <= number <= spec.highest_allowed:
                raise fail(f"{token} is out of range {spec.low}-{spec.highest_allowed}")
            return number
        named = spec.names.get(token.lower())
        if named is None:
            kind = f"a number or a {spec.label.split()[0]} name" if spec.names else "a number"
            raise fail(f"{token!r} is not {kind}")
        return named

    items = text.split(",")
    if len(items) > 1 and any(item.startswith(("*", "?")) for item in items):
        raise fail(f"'*' and '?' stand alone and cannot be part of a list ({text!r})")
    values: set[int] = set()
    star = False
    for item in items:
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not (step_text.isascii() and step_text.isdigit()):
                raise fail(f"the step in {item!r} is not a number")
            step = int(step_text) if len(step_text) <= 6 else spec.size + 1
            if not 1 <= step <= spec.size:
                raise fail(f"step {step_text} is out of range 1-{spec.size}")
        if base in ("*", "?"):
            if base == "?" and spec not in (_DAY_OF_MONTH, _DAY_OF_WEEK):
                raise fail("'?' is only allowed in the day-of-month and day-of-week fields")
            star = True
            first, last = spec.low, spec.high
        elif "-" in base:
            start_text, _, end_text = base.partition("-")
            first, last = value(start_text), value(end_text)
            if first > last:
                raise fail(f"range {base} runs backwards (a range never wraps: split it in two)")
        else:
            first = value(base)
            last = max(first, spec.high) if slash else first
        values.update(range(first, last + 1, step))
    if spec is _DAY_OF_WEEK and 7 in values:
        values.discard(7)
        values.add(0)
    frozen = frozenset(values)
    if spec not in (_DAY_OF_MONTH, _DAY_OF_WEEK):
        star = _is_star_progression(frozen, spec)  # only the day fields keep how they were written
    return _ParsedField(frozen, star, _render(frozen, spec, star=star), _next_table(frozen, spec.high + 1))


def _build(
    text: str,
    seconds: _ParsedField,
    minutes: _ParsedField,
    hours: _ParsedField,
    days_of_month: _ParsedField,
    months: _ParsedField,
    days_of_week: _ParsedField,
    *,
    day_of_month_position: int,
) -> CronExpression:
    dom, dow = days_of_month.values, days_of_week.values
    day_or = not days_of_month.star and not days_of_week.star
    if not day_or:
        # Day of month must match: some chosen month must have one of the chosen days.
        longest = max(_DAYS_IN_MONTH_AT_MOST[month] for month in months.values)
        if min(dom) > longest:
            plural = "day" if len(dom) == 1 else "days"
            verb = "never occurs" if len(dom) == 1 else "never occur"
            month_words = _join_words([_MONTH_NAMES[month - 1] for month in sorted(months.values)], last="or")
            where = f"field {day_of_month_position} (day of month)"
            raise CronError(
                f"{where}: {plural} {_number_words(sorted(dom))} {verb} in {month_words}",
                field_name=_DAY_OF_MONTH.name,
            )
    fields = (seconds, minutes, hours, days_of_month, months, days_of_week)
    written = fields[1:] if seconds.values == {0} else fields  # five fields when the seconds are just 0
    rendered = [parsed.normalised for parsed in written]
    tables = _Tables(
        next_second=seconds.upcoming,
        next_minute=minutes.upcoming,
        next_hour=hours.upcoming,
        next_month=months.upcoming,
        day_of_month_mask=sum(1 << day for day in dom),
        day_of_week_mask=sum(1 << day for day in dow),
        day_or=day_or,
        wall_clock=len(hours.values) < 24,
    )
    return CronExpression(
        expression=text,
        normalised=" ".join(rendered),
        seconds=seconds.values,
        minutes=minutes.values,
        hours=hours.values,
        days_of_month=dom,
        months=months.values,
        days_of_week=dow,
        day_of_month_star=days_of_month.star,
        day_of_week_star=days_of_week.star,
        interval=None,
        _tables=tables,
    )


def _next_table(values: frozenset[int], end: int) -> tuple[int, ...]:
    table = [-1] * (end + 1)
    upcoming = -1
    for candidate in range(end - 1, -1, -1):
        if candidate in values:
            upcoming = candidate
        table[candidate] = upcoming
    return tuple(table)


def _is_star_progression(values: frozenset[int], spec: _Field) -> bool:
    ordered = sorted(values)
    if len(ordered) < 3 or ordered[0] != spec.low:  # `0,30` reads better than `*/30`
        return False
    return ordered == list(range(spec.low, spec.high + 1, ordered[1] - ordered[0]))


def _render(values: frozenset[int], spec: _Field, *, star: bool) -> str:
    ordered = sorted(values)
    if star:
        if len(ordered) == spec.size:
            return "*"
        return f"*/{ordered[1] - ordered[0] if len(ordered) > 1 else spec.size}"
    if len(ordered) >= 3:
        step = ordered[1] - ordered[0]
        if step > 1 and ordered == list(range(ordered[0], ordered[-1] + 1, step)):
            return f"{ordered[0]}-{ordered[-1]}/{step}"
    return ",".join(f"{first}" if first == last else f"{first}-{last}" for first, last in _runs(ordered))


def _runs(ordered: Sequence[int]) -> list[tuple[int, int]]:
    """Consecutive runs: [1, 2, 3, 7] -> [(1, 3), (7, 7)]."""
    runs: list[tuple[int, int]] = []
    for value in ordered:
        if runs and runs[-1][1] == value - 1:
            runs[-1] = (runs[-1][0], value)
        else:
            runs.append((value, value))
    return runs


# ---------------------------------------------------------------------------------------------
# Occurrences


def next_after(
    expr: CronExpression, after: datetime, tz: ZoneInfo, *, anchor: datetime | None = None
) -> datetime | None:
    """The first occurrence strictly after `after` (aware), in UTC; None past the year 9999.

    `tz` is where the fields are read; `anchor` is where an `@every` interval starts (default
    the Unix epoch), ignored by field expressions."""
    _require_aware(after, "after")
    try:
        if expr.interval is not None:
            return _every_next(expr.interval, after, anchor)
        tables = expr._tables
        assert tables is not None  # every field expression has them
        if tables.wall_clock:
            return _next_wall_clock(tables, after, tz)
        return _next_real_time(tables, after, tz)
    except OverflowError:
        return None


def occurrences(
    expr: CronExpression, after: datetime, tz: ZoneInfo, *, anchor: datetime | None = None
) -> Iterator[datetime]:
    """The occurrences strictly after `after`, in order, in UTC (endless for all practical purposes)."""
    current = after
    while (found := next_after(expr, current, tz, anchor=anchor)) is not None:
        yield found
        current = found


def occurrences_between(
    expr: CronExpression,
    start: datetime,
    end: datetime,
    tz: ZoneInfo,
    *,
    limit: int,
    anchor: datetime | None = None,
) -> list[datetime]:
    """The occurrences in (start, end], in order, at most `limit` of them (catch-up and backfill).
    Half-open so that consecutive ranges never share one; a result of exactly `limit` items may be
    cut short: ask again from its last item. Pass `start - timedelta(microseconds=1)` to include
    `start` itself."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    _require_aware(end, "end")
    found: list[datetime] = []
    for occurrence in occurrences(expr, start, tz, anchor=anchor):
        if occurrence > end:
            break
        found.append(occurrence)
        if len(found) >= limit:
            break
    return found


_PREVIOUS_HORIZON: Final = timedelta(days=400 * 366)


def previous(
    expr: CronExpression, before: datetime, tz: ZoneInfo, *, anchor: datetime | None = None
) -> datetime | None:
    """The last occurrence strictly before `before`, in UTC (catch-up "latest"); None if there is
    none in the 400 years before it. Defined through `next_after`, so both always agree."""
    _require_aware(before, "before")
    before = before.astimezone(
        UTC
    )  # arithmetic and comparisons on aware datetimes of one zone are wall-clock
    try:
        if expr.interval is not None:
            return _every_previous(expr.interval, before, anchor)
        # Widen a window back from `before` until it holds an occurrence...
        width = _ONE_SECOND
        low = before - width
        while (found := next_after(expr, low, tz)) is None or found >= before:
            if width > _PREVIOUS_HORIZON:
                return None
            width *= 2
            low = before - width
        # ...then bisect: next_after(x) < before exactly when x is before the last occurrence.
        high = before
        while high - low > _ONE_SECOND:
            middle = low + (high - low) / 2
            found = next_after(expr, middle, tz)
            if found is not None and found < before:
                low = middle
            else:
                high = middle
        # (low, high] holds the last occurrence and spans at most a second; occurrences are whole seconds.
        return next_after(expr, low, tz)
    except OverflowError:
        return None


def _require_aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {moment.isoformat()}")


def _every_next(interval: timedelta, after: datetime, anchor: datetime | None) -> datetime:
    base = _utc_anchor(anchor)
    after = after.astimezone(UTC)
    steps = ((after - base) // _ONE_MICROSECOND) // (interval // _ONE_MICROSECOND) + 1
    return (base + interval * steps).astimezone(UTC)


def _every_previous(interval: timedelta, before: datetime, anchor: datetime | None) -> datetime:
    base = _utc_anchor(anchor)
    elapsed = (before - base) // _ONE_MICROSECOND
    steps = -(-elapsed // (interval // _ONE_MICROSECOND)) - 1  # ceil(elapsed / interval) - 1
    return (base + interval * steps).astimezone(UTC)


def _utc_anchor(anchor: datetime | None) -> datetime:
    if anchor is None:
        return _EPOCH
    _require_aware(anchor, "anchor")
    return anchor.astimezone(UTC)


def _naive_utc(moment: datetime) -> datetime:
    if moment.tzinfo is UTC:  # the common case, at a fifth of the cost
        return moment.replace(tzinfo=None)
    return moment.astimezone(UTC).replace(tzinfo=None)


def _next_wall_clock(tables: _Tables, after: datetime, tz: ZoneInfo) -> datetime | None:
    """Walk matching local times in order; each maps to one instant (see the module docstring)."""
    after_utc = _naive_utc(after)
    local = after.astimezone(tz)
    start = (local.year, local.month, local.day, local.hour, local.minute, local.second + 1)
    while (found := _search(tables, *start)) is not None:
        instant = _wall_to_instant(tz, datetime(*found))
        if instant > after_utc:  # not so for the first pass of a repeated hour seen from its second
            return instant.replace(tzinfo=UTC)
        year, month, day, hour, minute, second = found
        start = (year, month, day, hour, minute, second + 1)
    return None


def _next_real_time(tables: _Tables, after: datetime, tz: ZoneInfo) -> datetime | None:
    """Within a stretch of constant UTC offset local time is a plain shift of UTC: search the local
    times of that stretch, else move on to the next stretch."""
    instant = _naive_utc(after)
    end, offset = _segment(tz, instant)
    wall = instant + offset
    start = (wall.year, wall.month, wall.day, wall.hour, wall.minute, wall.second + 1)
    while (found := _search(tables, *start)) is not None:
        candidate = datetime(*found) - offset
        if candidate < end:
            return candidate.replace(tzinfo=UTC)
        instant = end
        end, offset = _segment(tz, instant)
        wall = instant + offset
        start = (wall.year, wall.month, wall.day, wall.hour, wall.minute, wall.second)
    return None


def _search(
    tables: _Tables, year: int, month: int, day: int, hour: int, minute: int, second: int
) -> tuple[int, int, int, int, int, int] | None:
    """The first local time at or after the given one (fields may overflow by one) that the fields
    allow; None past the year 9999."""
    next_second, next_minute, next_hour, next_month = (
        tables.next_second,
        tables.next_minute,
        tables.next_hour,
        tables.next_month,
    )
    while year <= 9999:
        found_month = next_month[month]
        if found_month < 0:
            year, month, day, hour, minute, second = year + 1, 1, 1, 0, 0, 0
            continue
        if found_month != month:
            month, day, hour, minute, second = found_month, 1, 0, 0, 0
        days = _day_table(tables.day_of_month_mask, tables.day_of_week_mask, tables.day_or, year, month)
        found_day = days[day]
        if found_day == 0:
            month, day, hour, minute, second = month + 1, 1, 0, 0, 0
            continue
        if found_day != day:
            day, hour, minute, second = found_day, 0, 0, 0
        found_hour = next_hour[hour]
        if found_hour < 0:
            day, hour, minute, second = day + 1, 0, 0, 0
            continue
        if found_hour != hour:
            hour, minute, second = found_hour, 0, 0
        found_minute = next_minute[minute]
        if found_minute < 0:
            hour, minute, second = hour + 1, 0, 0
            continue
        if found_minute != minute:
            minute, second = found_minute, 0
        found_second = next_second[second]
        if found_second < 0:
            minute, second = minute + 1, 0
            continue
        return year, month, day, hour, minute, found_second
    return None


@lru_cache(maxsize=8192)
def _day_table(
    day_of_month_mask: int, day_of_week_mask: int, day_or: bool, year: int, month: int
) -> tuple[int, ...]:
    """table[d] = the first matching day >= d of that month, 0 if none (d up to 32)."""
    first_weekday, length = calendar.monthrange(year, month)  # Monday = 0
    table = [0] * 33
    upcoming = 0
    for day in range(length, 0, -1):
        in_month = day_of_month_mask >> day & 1
        in_week = day_of_week_mask >> ((first_weekday + day) % 7) & 1  # cron counts Sunday = 0
        if (in_month or in_week) if day_or else (in_month and in_week):
            upcoming = day
        table[day] = upcoming
    return tuple(table)


def _offset(tz: ZoneInfo, wall: datetime) -> timedelta:
    offset = tz.utcoffset(wall)
    assert offset is not None  # a ZoneInfo always has one
    return offset


def _offset_at(tz: ZoneInfo, instant: datetime) -> timedelta:
    """The UTC offset in force at a naive UTC instant."""
    return _offset(tz, tz.fromutc(instant.replace(tzinfo=tz)))


def _wall_to_instant(tz: ZoneInfo, wall: datetime) -> datetime:
    """A local time's instant (naive UTC) in wall-clock mode: its first one if it happens twice,
    the end of the gap if it does not exist."""
    offset_before = _offset(tz, wall)  # fold=0: the offset before a transition
    offset_after = _offset(tz, wall.replace(fold=1))
    if offset_before >= offset_after:
        return wall - offset_before
    return _transition(tz, wall - offset_after, wall - offset_before)


def _transition(tz: ZoneInfo, low: datetime, high: datetime) -> datetime:
    """The first whole second in (low, high] whose UTC offset differs from low's (there is one)."""
    base = _offset_at(tz, low)
    below, above = 0, int((high - low).total_seconds())
    while above - below > 1:
        middle = (below + above) // 2
        if _offset_at(tz, low + timedelta(seconds=middle)) == base:
            below = middle
        else:
            above = middle
    return low + timedelta(seconds=above)


@lru_cache(maxsize=1024)
def _transitions(tz: ZoneInfo, year: int) -> tuple[tuple[datetime, ...], tuple[timedelta, ...]]:
    """The instants (naive UTC) in a year when the zone's UTC offset changes, and the offsets:
    offsets[i] is in force before instants[i], the last one after the last instant."""
    step = timedelta(hours=6)
    moment = datetime(year, 1, 1)
    stop = datetime(year + 1, 1, 1) if year < 9999 else datetime(9999, 12, 31, 18)
    offsets = [_offset_at(tz, moment)]
    instants = []
    while moment < stop:
        following = moment + step
        following_offset = _offset_at(tz, following)
        if following_offset != offsets[-1]:
            instants.append(_transition(tz, moment, following))
            offsets.append(following_offset)
        moment = following
    return tuple(instants), tuple(offsets)


def _segment(tz: ZoneInfo, instant: datetime) -> tuple[datetime, timedelta]:
    """When the stretch of constant offset around a naive UTC instant ends, and that offset.
    (A year's end also ends a stretch here; the next one goes on with the same offset.)"""
    instants, offsets = _transitions(tz, instant.year)
    index = bisect_right(instants, instant)
    if index < len(instants):
        return instants[index], offsets[index]
    return datetime(instant.year + 1, 1, 1) if instant.year < 9999 else datetime.max, offsets[index]


# ---------------------------------------------------------------------------------------------
# Plain language


def describe(expr: CronExpression, tz_name: str) -> str:
    """A plain-language description: "at 09:00 on weekdays, Europe/Berlin", "every 15 minutes".
    Common shapes read naturally; anything else is described field by field, never wrongly.
    The time zone is named when the description names local hours, days or months."""
    if expr.interval is not None:
        return f"every {_duration_words(int(expr.interval.total_seconds()))}"
    parts = [_describe_time(expr)]
    days = _describe_days(expr)
    if days:
        parts.append(days)
    elif expr.wall_clock and "every" not in parts[0]:
        parts.append("every day")
    if len(expr.months) < 12:
        parts.append(f"in {_month_words(sorted(expr.months))}")
    text = " ".join(parts)
    if expr.wall_clock or days or len(expr.months) < 12:
        text += f", {tz_name}"
    return text


def _describe_time(expr: CronExpression) -> str:
    seconds, minutes, hours = sorted(expr.seconds), sorted(expr.minutes), sorted(expr.hours)
    on_the_minute = seconds == [0]
    if len(seconds) == 1 and len(minutes) == 1 and len(hours) * len(minutes) <= 6 and len(hours) < 24:
        times = [_clock(hour, minutes[0], seconds[0]) for hour in hours]
        return f"at {_join_words(times)}"
    if len(hours) == 24:
        if len(minutes) == 60 and (len(seconds) == 60 or _even_step(seconds, 60)):
            return _every_unit(seconds, "second")
        if on_the_minute and (len(minutes) == 60 or _even_step(minutes, 60)):
            return _every_unit(minutes, "minute")
        if on_the_minute and len(minutes) == 1:
            return f"at minute {minutes[0]} past every hour"
    if on_the_minute and len(minutes) == 1 and _even_step(hours, 24):
        return f"at minute {minutes[0]} past every {_ordinal(hours[1] - hours[0])} hour"
    if on_the_minute and (len(minutes) == 60 or _even_step(minutes, 60)) and _is_run(hours):
        last = _clock(hours[-1], minutes[-1], 0)
        return f"{_every_unit(minutes, 'minute')} from {_clock(hours[0], 0, 0)} to {last}"
    # Field by field.
    pieces = [] if on_the_minute else [_unit_words(seconds, "second", 60)]
    pieces.append(_unit_words(minutes, "minute", 60))
    pieces.append(_unit_words(hours, "hour", 24))
    text = " of ".join(pieces)
    return text if text.startswith("every") else f"at {text}"


def _describe_days(expr: CronExpression) -> str:
    dom, dow = sorted(expr.days_of_month), sorted(expr.days_of_week)
    dom_words = f"{'day' if len(dom) == 1 else 'days'} {_number_words(dom)} of the month"
    if dow == [1, 2, 3, 4, 5]:
        dow_words = "weekdays"
    elif dow == [0, 6]:
        dow_words = "weekends"
    else:
        dow_words = _join_words([f"{_DAY_NAMES[day]}s" for day in dow])
    if expr.day_or:
        return f"on {dom_words} or on {dow_words}"
    dom_all, dow_all = len(dom) == 31, len(dow) == 7
    if not dom_all and not dow_all:
        return f"on {dom_words} that fall on {dow_words}"
    if not dom_all:
        return f"on {dom_words}"
    if not dow_all:
        return f"on {dow_words}"
    return ""


def _clock(hour: int, minute: int, second: int) -> str:
    return f"{hour:02d}:{minute:02d}" + (f":{second:02d}" if second else "")


def _even_step(values: Sequence[int], size: int) -> bool:
    """0, n, 2n, ... with n dividing `size` evenly: the runs are n apart, also across the wrap."""
    if len(values) < 2 or values[0] != 0:
        return False
    step = values[1]
    return size % step == 0 and list(values) == list(range(0, size, step))


def _is_run(values: Sequence[int]) -> bool:
    return list(values) == list(range(values[0], values[-1] + 1))


def _every_unit(values: Sequence[int], unit: str) -> str:
    step = values[1] - values[0] if len(values) > 1 else 1
    return f"every {unit}" if step == 1 else f"every {step} {unit}s"


def _unit_words(values: Sequence[int], unit: str, size: int) -> str:
    if len(values) == size:
        return f"every {unit}"
    return f"{unit if len(values) == 1 else unit + 's'} {_number_words(values)}"


def _duration_words(total: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if total % size == 0:
            count = total // size
            return unit if count == 1 else f"{count} {unit}s"
    return "second" if total == 1 else f"{total} seconds"


def _ordinal(number: int) -> str:
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def _number_words(values: Sequence[int]) -> str:
    return _join_words([f"{first}" if first == last else f"{first}-{last}" for first, last in _runs(values)])


def _month_words(months: Sequence[int]) -> str:
    words = []
    for first, last in _runs(months):
        if last - first >= 2:
            words.append(f"{_MONTH_NAMES[first - 1]} to {_MONTH_NAMES[last - 1]}")
        else:
            words.extend(_MONTH_NAMES[month - 1] for month in range(first, last + 1))
    return _join_words(words)


def _join_words(words: Sequence[str], *, last: str = "and") -> str:
    if len(words) <= 1:
        return "".join(words)
    return f"{', '.join(words[:-1])} {last} {words[-1]}"
