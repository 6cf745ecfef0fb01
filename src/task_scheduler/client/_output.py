"""What the commands print: the JSON document with `--json`, or else a readable rendering."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from task_scheduler.client._api import ApiResponse, M
from task_scheduler_client import TimerView

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
    rows = [("ID", "STATUS", "DUE_AT", "TIME_LEFT", "ATTEMPTS", "URL")]
    for view in views:
        url = view.url if len(view.url) <= URL_COLUMN_WIDTH else view.url[: URL_COLUMN_WIDTH - 3] + "..."
        rows.append(
            (
                str(view.timer_id),
                view.status,
                when(view.due_at),
                time_left(view.time_left),
                str(view.attempts),
                url,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])


def time_left(seconds: int) -> str:
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")) if n]
    return "".join(parts) or "0s"


def when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
