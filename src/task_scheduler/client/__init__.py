"""The operator's client of a running service, over its HTTP API (never the database).

`ApiClient` is the timer and schedule API as typed methods; `add_timers_commands` are
`task-scheduler timers create | get | list | cancel | retry | replay | bulk | bulk-status |
bulk-cancel | import` on top of it, `add_schedules_commands` `task-scheduler schedules create |
list | get | pause | resume | trigger | backfill | delete`, `add_destinations_commands`
`task-scheduler destinations list | get | pause | unpause | resume`, and `run_client_command` runs
any of them.
Output is a readable table, or with `--json` the API's JSON as it came (one document). Exit codes:
0 done, 1 the API or the network said no (the error goes to stderr), 2 a usage error (argparse).

The modules are private; what is public is named here.
"""

from __future__ import annotations

from task_scheduler.client._api import (
    DEFAULT_URL,
    ApiClient,
    ApiResponse,
    ScheduleCreateBody,
    ScheduleFilter,
    TimerCreateBody,
    TimerFilter,
)
from task_scheduler.client._arguments import parse_duration
from task_scheduler.client._commands import add_timers_commands, run_client_command
from task_scheduler.client._destinations import add_destinations_commands
from task_scheduler.client._errors import ApiError, ClientError, UnexpectedAnswer, Unreachable
from task_scheduler.client._schedules import add_schedules_commands

__all__ = [
    "DEFAULT_URL",
    "ApiClient",
    "ApiError",
    "ApiResponse",
    "ClientError",
    "ScheduleCreateBody",
    "ScheduleFilter",
    "TimerCreateBody",
    "TimerFilter",
    "UnexpectedAnswer",
    "Unreachable",
    "add_destinations_commands",
    "add_schedules_commands",
    "add_timers_commands",
    "parse_duration",
    "run_client_command",
]
