"""What the commands print: the JSON document with `--json`, or else a readable rendering."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from task_scheduler.client._api import ApiResponse, M
from task_scheduler_client import RunView, ScheduleView, TimerView

URL_COLUMN_WIDTH = 60


def print_result(args: argparse.Namespace, *, document: str, render: Callable[[], None]) -> None:
    """`document` (JSON text) with --json, else `render()`, which parses only when it is called."""
    if args.json:
        print(document)
    else:
        render()


def print_answer(args: argparse.Namespace, response: ApiResponse[M], render: Callable[[M], None]) -> None:
    """The answer's JSON as it came with --json, else its model rendered."""
    print_result(args, document=response.text, render=lambda: render(response.parse()))


def print_pairs(rows: Sequence[tuple[str, str]]) -> None:
    width = max(len(key) for key, _ in rows)
    for key, value in rows:
        print(f"{key.ljust(width)}  {value}")


def print_timer_table(views: Sequence[TimerView]) -> None:
    if not views:
        print("no timers")
        return
    header = ("ID", "STATUS", "DUE_AT", "TIME_LEFT", "ATTEMPTS", "URL")
    print_table(
        header,
        [
            (
                str(view.timer_id),
                view.status,
                when(view.due_at),
                time_left(view.time_left),
                str(view.attempts),
                short_url(view.url),
            )
            for view in views
        ],
    )


def print_schedule_table(views: Sequence[ScheduleView]) -> None:
    if not views:
        print("no schedules")
        return
    header = ("ID", "STATUS", "CRON", "TIMEZONE", "NEXT_RUN", "RUNS", "URL")
    print_table(
        header,
        [
            (
                str(view.schedule_id),
                view.status,
                view.cron,
                view.timezone,
                when(view.next_runs[0].utc) if view.next_runs and view.status == "active" else "-",
                runs_of(view),
                short_url(view.url),
            )
            for view in views
        ],
    )


def print_run_table(runs: Sequence[RunView]) -> None:
    if not runs:
        print("no runs")
        return
    header = ("TIMER_ID", "OCCURRENCE_AT", "STATUS", "DUE_AT", "ATTEMPTS", "DELIVERY_ID")
    print_table(
        header,
        [
            (
                str(run.timer_id),
                when(run.occurrence_at) if run.occurrence_at else "- (triggered)",
                run.status,
                when(run.due_at),
                str(run.attempts),
                run.delivery_id,
            )
            for run in runs
        ],
    )


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Columns padded to their widest cell; the last one (a URL, an id) is not padded."""
    table = [header, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])


def short_url(url: str) -> str:
    return url if len(url) <= URL_COLUMN_WIDTH else url[: URL_COLUMN_WIDTH - 3] + "..."


def runs_of(view: ScheduleView) -> str:
    """Runs so far, of max_runs when there is a limit."""
    return f"{view.runs}/{view.max_runs}" if view.max_runs is not None else str(view.runs)


def time_left(seconds: int) -> str:
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")) if n]
    return "".join(parts) or "0s"


def when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
