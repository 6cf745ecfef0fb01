"""The operator's client of a running service, over its HTTP API (never the database).

`ApiClient` is the timer API as typed methods; `add_timers_commands`/`run_timers` are
`task-scheduler timers create | get | list | cancel | retry | replay | bulk | bulk-status |
bulk-cancel | import` on top of it. Output is a readable table, or with `--json` the API's JSON as
it came (one document). Exit codes: 0 done, 1 the API or the network said no (the error goes to
stderr), 2 a usage error (argparse).

The modules are private; what is public is named here.
"""

from __future__ import annotations

from task_scheduler.client._api import (
    DEFAULT_URL,
    ApiClient,
    ApiResponse,
    TimerCreateBody,
    TimerFilter,
)
from task_scheduler.client._arguments import parse_duration
from task_scheduler.client._commands import add_timers_commands, run_timers
from task_scheduler.client._errors import ApiError, ClientError, UnexpectedAnswer, Unreachable

__all__ = [
    "DEFAULT_URL",
    "ApiClient",
    "ApiError",
    "ApiResponse",
    "ClientError",
    "TimerCreateBody",
    "TimerFilter",
    "UnexpectedAnswer",
    "Unreachable",
    "add_timers_commands",
    "parse_duration",
    "run_timers",
]
