"""The `timers` and `schedules` sub-commands' arguments: one builder per sub-command, and the
argument types (a bad value is a usage error, exit 2, with argparse's message)."""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable
from datetime import datetime
from urllib.parse import urlsplit

from task_scheduler.client._api import DEFAULT_URL, LIST_MAX_PAGE
from task_scheduler.schedules.models import Catchup, Overlap, ScheduleStatus
from task_scheduler.timers.models import TimerStatus

IMPORT_DESCRIPTION = (
    "Each line is a POST /timer body; sent in batches of up to 1,000. Blank lines are "
    "skipped. A rejected batch is reported with its lines and the others go on."
)


def common_arguments() -> argparse.ArgumentParser:
    """The parent of every sub-command: where the service is, the key, and --json."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        type=_base_url,
        default=os.environ.get("TASK_SCHEDULER_URL") or DEFAULT_URL,
        help=f"the service's base URL (default: TASK_SCHEDULER_URL or {DEFAULT_URL})",
    )
    common.add_argument(
        "--api-key",
        metavar="KEY",
        default=os.environ.get("TASK_SCHEDULER_API_KEY", ""),
        help="sent as 'Authorization: Bearer'; prefer TASK_SCHEDULER_API_KEY, flags show up in ps "
        "(none: protected mode serves loopback clients without a key)",
    )
    common.add_argument("--json", action="store_true", help="print the API's JSON instead of a table")
    return common


def add_create_arguments(create: argparse.ArgumentParser) -> None:
    when = create.add_mutually_exclusive_group(required=True)
    when.add_argument(
        "--in",
        dest="delay",
        metavar="DURATION",
        type=parse_duration,
        help="fire after 1h30m45s, 90m, 45s, 5445",
    )
    when.add_argument(
        "--at", dest="fire_at", metavar="TIME", type=_rfc3339, help="fire at an RFC 3339 time with an offset"
    )
    _add_delivery(create)
    create.add_argument(
        "--idempotency-key", metavar="KEY", help="the same key and request return the same timer"
    )


def _add_delivery(create: argparse.ArgumentParser) -> None:
    """What a timer and a schedule's runs send: --webhook, --method, --header, --body, --label,
    --max-lateness."""
    create.add_argument("--webhook", required=True, metavar="URL", help="the http(s) URL to call")
    create.add_argument("--method", type=str.upper, choices=["POST", "GET", "PUT", "PATCH", "DELETE"])
    _add_repeated(
        create,
        "--header",
        dest="headers",
        metavar="'NAME: VALUE'",
        parse=_header,
        text="an extra webhook header",
    )
    create.add_argument("--body", help="request body: JSON, or else sent as a string")
    _add_labels(create)
    create.add_argument(
        "--max-lateness", type=_seconds, metavar="SECONDS", help="expire rather than be later"
    )


def add_schedule_create_arguments(create: argparse.ArgumentParser) -> None:
    create.add_argument(
        "--cron",
        required=True,
        metavar="EXPR",
        help="5 fields, 6 with leading seconds, @daily..., or '@every 90s' (quote it)",
    )
    create.add_argument("--timezone", metavar="ZONE", help="IANA time zone of the expression (UTC)")
    _add_delivery(create)
    create.add_argument("--start-at", metavar="TIME", type=_rfc3339, help="no occurrence before (RFC 3339)")
    create.add_argument("--end-at", metavar="TIME", type=_rfc3339, help="no occurrence after (RFC 3339)")
    create.add_argument("--max-runs", metavar="N", type=_bounded_int(1), help="end after this many runs")
    create.add_argument(
        "--jitter-seconds", metavar="SECONDS", type=_seconds, help="a random delay of each run, below this"
    )
    create.add_argument(
        "--overlap",
        choices=[overlap.value for overlap in Overlap],
        help="a run while an earlier one is unfinished (allow)",
    )
    create.add_argument(
        "--catchup",
        choices=[catchup.value for catchup in Catchup],
        help="occurrences missed while no instance ran or paused (latest)",
    )
    create.add_argument(
        "--catchup-window-seconds", metavar="SECONDS", type=_seconds, help="how far back 'all' replays (3600)"
    )


def add_schedule_id_argument(command: argparse.ArgumentParser) -> None:
    command.add_argument("schedule_id", type=_bounded_int(1), metavar="ID")


def add_schedule_delete_arguments(command: argparse.ArgumentParser) -> None:
    add_schedule_id_argument(command)
    command.add_argument(
        "--cancel-pending", action="store_true", help="also cancel its pending run (else it still fires)"
    )


def add_backfill_arguments(command: argparse.ArgumentParser) -> None:
    add_schedule_id_argument(command)
    command.add_argument(
        "--from", dest="start", required=True, metavar="TIME", type=_rfc3339_time, help="included (RFC 3339)"
    )
    command.add_argument(
        "--to",
        dest="end",
        required=True,
        metavar="TIME",
        type=_rfc3339_time,
        help="included, not in the future",
    )


def add_schedule_list_arguments(listing: argparse.ArgumentParser) -> None:
    listing.add_argument("--status", choices=[status.value for status in ScheduleStatus])
    _add_labels(listing)
    _add_paging(listing, "schedules")


def add_timer_id_argument(command: argparse.ArgumentParser) -> None:
    command.add_argument("timer_id", type=_bounded_int(1), metavar="ID")


def add_replay_arguments(replay: argparse.ArgumentParser) -> None:
    add_timer_id_argument(replay)
    when = replay.add_mutually_exclusive_group()
    when.add_argument(
        "--in",
        dest="delay",
        metavar="DURATION",
        type=parse_duration,
        help="due after 1h30m45s, 90m, 45s, 5445 (default: now)",
    )
    when.add_argument(
        "--at", dest="fire_at", metavar="TIME", type=_rfc3339, help="due at an RFC 3339 time with an offset"
    )


def add_bulk_arguments(bulk: argparse.ArgumentParser) -> None:
    bulk.add_argument("--action", required=True, choices=["cancel", "retry", "reschedule"])
    bulk.add_argument(
        "--offset",
        metavar="DURATION",
        type=_signed_duration,
        help="reschedule: move due times by 1h30m, 45s, 5445; earlier: --offset=-10m",
    )
    bulk.add_argument("--status", choices=[status.value for status in TimerStatus])
    _add_labels(bulk)
    bulk.add_argument("--due-after", metavar="TIME", type=_rfc3339, help="due at or after this RFC 3339 time")
    bulk.add_argument("--due-before", metavar="TIME", type=_rfc3339, help="due before this RFC 3339 time")
    bulk.add_argument("--host", help="the webhook URL's host")
    bulk.add_argument("--error-class", help="the error class of the timer's latest attempt, e.g. timeout")
    bulk.add_argument(
        "--destination", metavar="KEY", help="the destination key, exactly, e.g. https://api.example.com:443"
    )
    bulk.add_argument("--dry-run", action="store_true", help="only count the timers it would take now")


def add_job_id_argument(command: argparse.ArgumentParser) -> None:
    command.add_argument("job_id", type=_bounded_int(1), metavar="JOB")


def add_list_arguments(listing: argparse.ArgumentParser) -> None:
    listing.add_argument("--status", choices=[status.value for status in TimerStatus])
    _add_labels(listing)
    listing.add_argument(
        "--due-after", metavar="TIME", type=_rfc3339, help="due at or after this RFC 3339 time"
    )
    listing.add_argument("--due-before", metavar="TIME", type=_rfc3339, help="due before this RFC 3339 time")
    _add_paging(listing, "timers")


def _add_paging(listing: argparse.ArgumentParser, things: str) -> None:
    listing.add_argument(
        "--limit",
        metavar="N",
        type=_bounded_int(1, LIST_MAX_PAGE),
        help=f"{things} per page (default: the API's 100, or {LIST_MAX_PAGE} with --all)",
    )
    listing.add_argument("--cursor", help="next_cursor of a previous page")
    listing.add_argument("--all", action="store_true", help="follow next_cursor through every page")
    listing.add_argument(
        "--max",
        metavar="N",
        type=_bounded_int(1),
        default=10_000,
        help="with --all, stop after this many (10000)",
    )


def add_import_arguments(importing: argparse.ArgumentParser) -> None:
    importing.add_argument("file", metavar="FILE", help="a .jsonl file, or - for stdin")


def _add_labels(command: argparse.ArgumentParser) -> None:
    _add_repeated(command, "--label", dest="labels", metavar="KEY=VALUE", parse=_label, text="key=value")


def _add_repeated(
    command: argparse.ArgumentParser,
    flag: str,
    *,
    dest: str,
    metavar: str,
    parse: Callable[[str], tuple[str, str]],
    text: str,
) -> None:
    command.add_argument(
        flag, dest=dest, metavar=metavar, type=parse, action="append", default=[], help=f"{text}; repeatable"
    )


def _base_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an http:// or https:// URL (from --url or TASK_SCHEDULER_URL)"
        )
    return value


_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse_duration(value: str) -> dict[str, int]:
    """`1h30m45s`, `90m`, `2d`, or plain seconds (`5445`) as the API's hours/minutes/seconds."""
    text = value.replace(" ", "").lower()
    if text.isdigit():
        return {"hours": 0, "minutes": 0, "seconds": int(text)}
    match = _DURATION.fullmatch(text)
    if not text or match is None:
        raise argparse.ArgumentTypeError(f"{value!r} is not a duration like 1h30m45s, 90m, 45s or 5445")
    days, hours, minutes, seconds = (int(group or 0) for group in match.groups())
    return {"hours": days * 24 + hours, "minutes": minutes, "seconds": seconds}


def duration_seconds(duration: dict[str, int]) -> int:
    """What parse_duration read, in seconds."""
    return duration["hours"] * 3600 + duration["minutes"] * 60 + duration["seconds"]


def _signed_duration(value: str) -> int:
    """A duration as parse_duration reads it, in seconds, with an optional leading minus."""
    negative = value.strip().startswith("-")
    seconds = duration_seconds(parse_duration(value.strip().removeprefix("-")))
    return -seconds if negative else seconds


def _rfc3339(value: str) -> str:
    _rfc3339_time(value)
    return value


def _rfc3339_time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an RFC 3339 time with an offset, e.g. 2026-12-24T18:00:00+01:00"
        )
    return parsed


def _header(value: str) -> tuple[str, str]:
    name, sep, header_value = value.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"{value!r} is not 'Name: value'")
    return name.strip(), header_value.strip()


def _label(value: str) -> tuple[str, str]:
    key, sep, label = value.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{value!r} is not key=value")
    return key, label


def _seconds(value: str) -> int | float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not number >= 0 or number == float("inf"):
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds")
    return int(number) if number.is_integer() else number


def _bounded_int(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            number = low - 1
        if number < low or (high is not None and number > high):
            bounds = f"{low}-{high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"{value!r} is not a whole number {bounds}")
        return number

    return parse
