"""`task-scheduler schedules create | list | get | pause | resume | trigger | backfill | delete`:
recurring schedules of a running service, as the `timers` commands do it (same flags for what a
run sends, same output: a table, or the API's JSON with --json; same errors and exit codes)."""

from __future__ import annotations

import argparse
import json

from task_scheduler.client._api import LIST_MAX_PAGE, ApiClient, ScheduleCreateBody, ScheduleFilter
from task_scheduler.client._arguments import (
    add_backfill_arguments,
    add_schedule_create_arguments,
    add_schedule_delete_arguments,
    add_schedule_id_argument,
    add_schedule_list_arguments,
)
from task_scheduler.client._commands import Subcommand, add_command_group, delivery_fields, print_listing
from task_scheduler.client._output import (
    print_answer,
    print_pairs,
    print_run_table,
    print_schedule_table,
    runs_of,
    when,
)
from task_scheduler_client import BackfillCreated, RunView, ScheduleView


def add_schedules_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Registers `schedules ...` on the main parser's subcommands."""
    add_command_group(
        commands,
        "schedules",
        help="create and manage recurring schedules on a running service",
        subcommands=_SUBCOMMANDS,
    )


# The flags of `schedules create` that go into the body as they are, by their API name.
_SCHEDULE_FIELDS = (
    "timezone",
    "start_at",
    "end_at",
    "max_runs",
    "jitter_seconds",
    "overlap",
    "catchup",
    "catchup_window_seconds",
)


async def _create(api: ApiClient, args: argparse.Namespace) -> int:
    schedule = ScheduleCreateBody(cron=args.cron, url=args.webhook)
    for name in _SCHEDULE_FIELDS:
        if getattr(args, name) is not None:
            schedule[name] = getattr(args, name)  # type: ignore[literal-required]  # names of the body
    schedule.update(delivery_fields(args))  # type: ignore[typeddict-item]  # the keys of ScheduleCreateBody
    print_answer(args, await api.create_schedule(schedule=schedule), _print_schedule)
    return 0


async def _get(api: ApiClient, args: argparse.Namespace) -> int:
    print_answer(args, await api.get_schedule(schedule_id=args.schedule_id), _print_schedule)
    return 0


def _print_schedule(view: ScheduleView) -> None:
    retry = view.retry
    next_runs = [f"{when(run.utc)} ({run.local.isoformat()})" for run in view.next_runs]
    catchup = view.catchup + (f", window {view.catchup_window_seconds:g} s" if view.catchup == "all" else "")
    print_pairs(
        [
            ("schedule_id", str(view.schedule_id)),
            ("status", view.status),
            (
                "cron",
                view.cron if view.cron == view.expression else f"{view.cron} (given: {view.expression})",
            ),
            ("description", view.description),
            ("timezone", view.timezone),
            ("next_occurrence_at", when(view.next_occurrence_at) if view.next_occurrence_at else "-"),
            ("next_runs", ", ".join(next_runs) or "-"),
            ("runs", runs_of(view)),
            ("start_at", view.start_at.isoformat() if view.start_at else "-"),
            ("end_at", view.end_at.isoformat() if view.end_at else "-"),
            ("jitter_seconds", f"{view.jitter_seconds:g}"),
            ("overlap", view.overlap),
            ("catchup", catchup),
            ("url", view.url),
            ("method", view.method),
            ("headers", "; ".join(f"{k}: {v}" for k, v in sorted(view.headers.items())) or "-"),
            ("body", "- (the default JSON body)" if view.body is None else json.dumps(view.body)),
            ("labels", ", ".join(f"{k}={v}" for k, v in sorted(view.labels.items())) or "-"),
            (
                "max_lateness",
                f"{view.max_lateness_seconds:g} s" if view.max_lateness_seconds is not None else "-",
            ),
            (
                "retry",
                f"{retry.max_attempts} attempts, backoff {retry.backoff_base_seconds:g}-"
                f"{retry.backoff_cap_seconds:g} s, timeout {retry.timeout_seconds:g} s",
            ),
            ("created_at", view.created_at.isoformat()),
            ("updated_at", view.updated_at.isoformat()),
        ]
    )


def _print_status(view: ScheduleView) -> None:
    active = view.status == "active" and view.next_occurrence_at is not None
    following = f", next run {when(view.next_occurrence_at)}" if active and view.next_occurrence_at else ""
    print(f"schedule {view.schedule_id} is {view.status}{following}")


async def _pause(api: ApiClient, args: argparse.Namespace) -> int:
    print_answer(args, await api.pause_schedule(schedule_id=args.schedule_id), _print_status)
    return 0


async def _resume(api: ApiClient, args: argparse.Namespace) -> int:
    print_answer(args, await api.resume_schedule(schedule_id=args.schedule_id), _print_status)
    return 0


async def _delete(api: ApiClient, args: argparse.Namespace) -> int:
    response = await api.delete_schedule(schedule_id=args.schedule_id, cancel_pending=args.cancel_pending)
    print_answer(args, response, _print_status)
    return 0


async def _trigger(api: ApiClient, args: argparse.Namespace) -> int:
    def render(run: RunView) -> None:
        print(f"schedule {args.schedule_id}: run {run.timer_id} is {run.status}, due {when(run.due_at)}")

    print_answer(args, await api.trigger_schedule(schedule_id=args.schedule_id), render)
    return 0


async def _backfill(api: ApiClient, args: argparse.Namespace) -> int:
    def render(created: BackfillCreated) -> None:
        if created.runs:
            print_run_table(created.runs)
        print(f"created {len(created.runs)} runs; {created.already_run} occurrences of the range had one")

    response = await api.backfill_schedule(schedule_id=args.schedule_id, start=args.start, end=args.end)
    print_answer(args, response, render)
    return 0


async def _list(api: ApiClient, args: argparse.Namespace) -> int:
    where = ScheduleFilter(status=args.status, labels=dict(args.labels))
    return await print_listing(
        args,
        key="schedules",
        one_page=lambda: api.list_schedules(where=where, limit=args.limit, cursor=args.cursor),
        every_page=lambda: api.iter_schedule_pages(
            where=where, page_size=args.limit or LIST_MAX_PAGE, cursor=args.cursor, max_schedules=args.max
        ),
        items=lambda page: page.schedules,
        render=print_schedule_table,
    )


# In the order `schedules --help` lists them.
_SUBCOMMANDS: dict[str, Subcommand] = {
    "create": Subcommand("create a recurring schedule", add_schedule_create_arguments, _create),
    "list": Subcommand("list schedules, by id", add_schedule_list_arguments, _list),
    "get": Subcommand("show a schedule and its next runs", add_schedule_id_argument, _get),
    "pause": Subcommand("pause a schedule (its pending run is cancelled)", add_schedule_id_argument, _pause),
    "resume": Subcommand("resume a paused schedule", add_schedule_id_argument, _resume),
    "trigger": Subcommand("one extra run now, outside the series", add_schedule_id_argument, _trigger),
    "backfill": Subcommand("runs for the occurrences of a past range", add_backfill_arguments, _backfill),
    "delete": Subcommand("end a schedule (its past runs stay)", add_schedule_delete_arguments, _delete),
}
